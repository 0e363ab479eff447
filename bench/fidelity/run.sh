#!/bin/bash
# bench/fidelity/run.sh: the VLMAE paper in miniature on the synthetic world (bench/fidelity/README.md).
# Never part of make check.
#
#   bench/fidelity/run.sh [--quick] [--seeds N] [--steps N] [--out DIR] [options]
#
# For each seed s = 1..N: `vlmae synth --seed s --focal-probe` (data/SYNTH.md) and `vlmae pack`
# (pre-training: pretrain.json + vg.json; retrieval train/test; the focal probe; VQA train/test);
# then for each configuration (albef, tcl, and the paper's Table 6: no MIM, MIM with random
# masking on all patches, RMIM, RMIM + IFR = vlmae), one after the other (one training job at a
# time):
#   1. vlmae pretrain (the shared recipe: --config + --set, the configuration's switches, --steps,
#      train.seed = s) under /usr/bin/time: CPU seconds (user + system) and wall time;
#   2. zero-shot retrieval on the held-out test pairs (vlmae eval, configs/demo_retrieval.yaml);
#   3. zero-shot retrieval on the focal probe (captions that name only small objects, which no
#      pre-training caption of such an image names);
#   4. retrieval fine-tuning (configs/demo_retrieval.yaml, --ft-steps) + its test pairs and probe;
#   5. VQA fine-tuning (bench/fidelity/vqa.yaml, --vqa-steps) + VQA accuracy on the test questions;
#   6. vlmae attnmap of the pre-trained image encoder over the first --attn-images test images;
# and appends one JSON line per run to DIR/runs.jsonl (bench/fidelity/record.py). MACs per sample
# come from the MAC counter (`vlmae bench` at the run's preset, batch and text length; checked
# against the FLOPs the pre-training log's MFU implies). At the end: report.py -> DIR/report.md
# and the PNG charts.
#
# Options:
#   --quick          plumbing check: 1 seed, 40 pre-training steps, 40 + 40 fine-tuning steps,
#                    600 images (each option below still overrides it)
#   --seeds N        seeds per configuration (default 3)
#   --steps N        pre-training steps per run (default: the config's train.max_steps)
#   --ft-steps N     retrieval fine-tuning steps (default 300, configs/demo_retrieval.yaml's)
#   --vqa-steps N    VQA fine-tuning steps (default: one epoch of the train questions)
#   --images N       synthetic images per seed (default 2000: 1600 train, 200 val, 200 test)
#   --attn-images N  test images for the attention statistics (default 50)
#   --config FILE    pre-training config (default configs/demo.yaml)
#   --set KEY=VALUE  pre-training override, repeatable (the shared recipe; the configurations'
#                    own switches come after it and win)
#   --only LIST      comma-separated configurations (default all six:
#                    albef,tcl,nomim,mim_random,rmim,vlmae)
#   --work DIR       data and run directories (default ${TMPDIR:-/tmp}/vlmae-fidelity; kept, so
#                    that --resume and a look at any run's logs stay possible)
#   --resume         keep DIR/runs.jsonl and skip the (configuration, seed) pairs it holds
#   --note TEXT      a sentence for report.md's setup (where the recipe and the budget came from)
#   --no-report      do not run report.py
#   --out DIR        runs.jsonl, report.md, charts (default bench/fidelity)
# Environment: VLMAE (default ./vlmae of the build directory, else the source tree), PYTHON
# (default /usr/bin/python3; the report needs numpy + matplotlib), OMP_NUM_THREADS (default 2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$here
quick=0 seeds= steps= ft_steps= vqa_steps= images= attn_n=50 config=$top/configs/demo.yaml
only=albef,tcl,nomim,mim_random,rmim,vlmae work= resume=0 report=1 note=
recipe=()
args="$*"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --seeds) seeds=$2; shift ;;
    --steps) steps=$2; shift ;;
    --ft-steps) ft_steps=$2; shift ;;
    --vqa-steps) vqa_steps=$2; shift ;;
    --images) images=$2; shift ;;
    --attn-images) attn_n=$2; shift ;;
    --config) config=$2; shift ;;
    --set) recipe+=(--set "$2"); shift ;;
    --only) only=$2; shift ;;
    --work) work=$2; shift ;;
    --resume) resume=1 ;;
    --no-report) report=0 ;;
    --note) note=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set /{/^set /!p}' "$0"; exit 0 ;;
    *) echo "bench/fidelity/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ $quick = 1 ]; then
    seeds=${seeds:-1} steps=${steps:-40} ft_steps=${ft_steps:-40} vqa_steps=${vqa_steps:-40} images=${images:-600}
fi
seeds=${seeds:-3} ft_steps=${ft_steps:-300} images=${images:-2000}
VLMAE=${VLMAE:-}
if [ -z "$VLMAE" ]; then
    if [ -x ./vlmae ]; then VLMAE=$(pwd)/vlmae; else VLMAE=$top/vlmae; fi
fi
[ -x "$VLMAE" ] || { echo "bench/fidelity/run.sh: no vlmae binary at $VLMAE (build first, or set VLMAE)" >&2; exit 2; }
"$VLMAE" synth --help | grep -q -- --focal-probe || { echo "bench/fidelity/run.sh: $VLMAE has no synth --focal-probe" >&2; exit 2; }
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c "import numpy" 2>/dev/null || { echo "bench/fidelity/run.sh: $PY lacks numpy" >&2; exit 2; }
[ -f "$config" ] || { echo "bench/fidelity/run.sh: no config $config" >&2; exit 2; }
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# The tiny model's GEMMs gain nothing from OpenBLAS threads, whose spinning costs system time.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${work:-${TMPDIR:-/tmp}/vlmae-fidelity}
mkdir -p "$work"
work=$(cd "$work" && pwd)
runs=$out/runs.jsonl
if [ $resume = 0 ] && [ -s "$runs" ]; then mv "$runs" "$runs.old"; fi
touch "$runs"
RET=$top/configs/demo_retrieval.yaml
VQA=$here/vqa.yaml
log() { echo "== $(date -u +%H:%M:%S) $*"; }
t_campaign=$(date +%s)

# The configurations: name, then the --set switches that make it (after the shared recipe).
switches() {
    case $1 in
    albef) echo "model.objective=albef" ;;
    tcl) echo "model.objective=tcl" ;;
    nomim) echo "model.objective=vlmae losses.rmim=0 losses.ifr=0" ;;                 # masked input kept
    mim_random) echo "model.objective=vlmae model.mim_regional=false losses.ifr=0" ;;  # MIM on all patches
    rmim) echo "model.objective=vlmae model.mim_regional=true losses.ifr=0" ;;
    vlmae) echo "model.objective=vlmae model.mim_regional=true" ;;                     # RMIM + IFR
    *) echo "bench/fidelity/run.sh: unknown configuration $1" >&2; return 1 ;;
    esac
}
for c in ${only//,/ }; do switches "$c" >/dev/null; done

{
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(getconf _NPROCESSORS_ONLN) logical CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); $(uname -sr)"
    echo "Threads: OMP_NUM_THREADS=$OMP_NUM_THREADS, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "Revision: $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git -C "$top" status --porcelain -- src 2>/dev/null)" ] && echo ' + local changes')"
    echo "Command: bench/fidelity/run.sh $args"
} > "$out/machine.txt"
# The setup, for the report.
"$PY" - "$out/setup.json" "$config" "$seeds" "${steps:-config}" "$ft_steps" "${vqa_steps:-1 epoch}" "$images" \
    "$attn_n" "$quick" "$only" "$note" "${recipe[@]}" <<'PYEOF'
import json, sys
a = sys.argv
sets = [a[i + 1] for i in range(12, len(a) - 1, 2) if a[i] == '--set']
json.dump({'config': a[2], 'seeds': int(a[3]), 'steps': a[4], 'ft_steps': int(a[5]), 'vqa_steps': a[6],
           'images': int(a[7]), 'attn_images': int(a[8]), 'quick': a[9] == '1', 'configurations': a[10].split(','),
           'recipe_sets': sets, 'note': a[11]}, open(a[1], 'w'), indent=1)
PYEOF

# pack FORMAT DATA NAME ANN...: annotation files (under DATA/synth) into DATA/shards/NAME.
pack() {
    local fmt=$1 d=$2 name=$3 anns=()
    shift 3
    for a in "$@"; do anns+=(--ann "$d/synth/$a"); done
    "$VLMAE" pack "$fmt" "${anns[@]}" --images "$d/synth" --out "$d/shards/$name" --threads 2 --quiet 2>> "$d/pack.log"
}
# Run a command under /usr/bin/time into $1.time ("user system wall" seconds), its output in $1.out.
timed() {
    local f=$1; shift
    /usr/bin/time -f '%U %S %e' -o "$f.time" "$@" > "$f.out" 2>&1 || { tail -n 20 "$f.out" >&2; return 1; }
}
# The mean test recall of `vlmae eval` of checkpoint $2 on shard glob $3, into $1.out.
zeroshot() {
    timed "$1" "$VLMAE" eval -c "$RET" --ckpt "$2" --out "$1" --split test --set "task.test=[\"$3\"]"
}

bench_done=0
s=1
while [ "$s" -le "$seeds" ]; do
    D=$work/seed$s
    if [ "$(cat "$D/packed" 2>/dev/null)" != "$images" ]; then  # the data of this seed and size
        log "seed $s: synth ($images images, --focal-probe) + pack"
        rm -rf "$D" && mkdir -p "$D"
        "$VLMAE" synth --out "$D/synth" --seed "$s" --images "$images" --focal-probe > "$D/synth.log"
        pack albef "$D" synth pretrain.json vg.json
        pack albef "$D" retrieval_train retrieval_train.json
        pack albef "$D" retrieval_test retrieval_test.json
        pack albef "$D" focal_probe focal_probe.json
        pack vqa "$D" vqa_train vqa_train.json
        pack vqa "$D" vqa_test vqa_test.json
        echo "$images" > "$D/packed"
    fi
    # the first attn_n test images (the last tenth of the images is test)
    n_test=$(( images / 10 > 0 ? images / 10 : 1 ))
    attn_imgs=()
    for ((i = images - n_test + 1; i <= images - n_test + attn_n && i <= images; i++)); do
        attn_imgs+=("$D/synth/images/$(printf %06d "$i").jpg")
    done
    export DATA=$D  # the task configs find their shards under ${DATA}/shards
    for c in ${only//,/ }; do
        if [ $resume = 1 ] && grep -q "\"configuration\": \"$c\", \"seed\": $s," "$runs"; then
            log "seed $s $c: in $runs already"; continue
        fi
        R=$D/$c
        rm -rf "$R" && mkdir -p "$R"
        sw=()
        for kv in $(switches "$c"); do sw+=(--set "$kv"); done
        st=()
        [ -n "$steps" ] && st=(--set "train.max_steps=$steps")
        t0=$(date +%s)
        log "seed $s $c: pretrain ($(basename "$config") ${recipe[*]} ${sw[*]} ${st[*]})"
        timed "$R/pretrain" "$VLMAE" pretrain -c "$config" --run-dir "$R/pre" \
            --set "data.datasets=[{name: synth, shards: [\"$D/shards/synth-*.h5\"]}]" "${recipe[@]}" "${sw[@]}" \
            "${st[@]}" --set "train.seed=$s"
        ck=$(ls "$R"/pre/ckpt-*.h5 | tail -n 1)
        if [ $bench_done = 0 ]; then  # the MAC counter at the run's preset, batch and text length
            read -r preset batch tlen < <("$PY" "$here/record.py" --dims "$R/pre/config.yaml")
            log "MAC counter: vlmae bench --model $preset --batch $batch --text-len $tlen"
            "$VLMAE" bench --model "$preset" --objective albef,tcl,vlmae --batch "$batch" --text-len "$tlen" \
                --steps 3 --warmup 1 --json "$out/bench_macs.json" > "$work/bench.out" 2>&1
            bench_done=1
        fi
        log "seed $s $c: zero-shot retrieval (test pairs, focal probe)"
        zeroshot "$R/zs" "$ck" "$D/shards/retrieval_test-*.h5"
        zeroshot "$R/probe" "$ck" "$D/shards/focal_probe-*.h5"
        log "seed $s $c: retrieval fine-tuning ($ft_steps steps)"
        timed "$R/ft" "$VLMAE" finetune -c "$RET" --init "$ck" --run-dir "$R/ft" --set 'task.val=[]' \
            --set "train.max_steps=$ft_steps" --set "train.seed=$s"
        fck=$(ls "$R"/ft/ckpt-*.h5 | tail -n 1)
        zeroshot "$R/ftprobe" "$fck" "$D/shards/focal_probe-*.h5"
        vs=()
        [ -n "$vqa_steps" ] && vs=(--set "train.max_steps=$vqa_steps")
        log "seed $s $c: VQA fine-tuning (${vqa_steps:-1 epoch})"
        timed "$R/vqa" "$VLMAE" finetune -c "$VQA" --init "$ck" --run-dir "$R/vqa" "${vs[@]}" --set "train.seed=$s"
        log "seed $s $c: attention spread over ${#attn_imgs[@]} test images"
        timed "$R/attn" "$VLMAE" attnmap --ckpt "$ck" --images "${attn_imgs[@]}" --out "$R/attn"
        "$PY" "$here/record.py" --run "$R" --configuration "$c" --seed "$s" --switches "$(switches "$c")" \
            --bench "$out/bench_macs.json" --seconds $(( $(date +%s) - t0 )) >> "$runs"
        log "seed $s $c: $(tail -n 1 "$runs" | "$PY" "$here/record.py" --summary)"
    done
    s=$((s + 1))
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); campaign wall time $(( $(date +%s) - t_campaign )) s" >> "$out/machine.txt"
if [ $report = 1 ]; then
    "$PY" "$here/report.py" --out "$out"
fi
