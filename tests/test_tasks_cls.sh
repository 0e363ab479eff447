#!/bin/sh
# test_tasks_cls.sh: VQA, SNLI-VE and NLVR2 end to end on the synthetic dataset, with a tiny
# randomly initialised model (32 px, no dropout, no colour augmentation: the statements name
# colours), and `vlmae attnmap`. Sections 1-3 train with the default ALBEF momentum distillation
# (task.distill: true, alpha 0.4 ramped up over the first epoch):
#   synth (3000 images) -> vlmae pack vqa / ve / nlvr (train, val, test) and grounding ->
#   1. ve: 300 steps; mean of val and test accuracy >= 55% (chance 33.3%; measured 96.5%, with
#      distillation and without: the synthetic hypotheses are largely decidable from their wording
#      alone -- neutral ones name materials, contradictions are short "there is a ..." statements
#      -- so this shows the task learns, not that it looks). `vlmae eval` of the last checkpoint
#      (+ its .extra head) gives the same test accuracy as the end of fine-tuning.
#   2. nlvr2: 4 epochs (600 steps, 2400 pairs); mean of val and test accuracy (600 pairs) >= 55%
#      (chance 50%: both labels are equally frequent; measured 58.3-60.3% over six seeds with
#      distillation, 56.7-61.0% without).
#   3. vqa: 1 epoch (450 steps); the answer decoder ranks the 26 candidates of answer_list.json,
#      writes vqa_result_test.json ([{"question_id", "answer"}] for every test question) and a VQA
#      accuracy >= 20% (always "yes" scores 7-9%; measured 34.8% with distillation, 37.6% without).
#   4. attnmap of the NLVR2 model on three test images: one PNG overlay each, attnmap.tsv, the
#      statistic printed.
#   5. momentum distillation, 3 steps of each task with a checkpoint after every step, alpha
#      without ramp, model.momentum 0.9, dropout 0.1 (the teacher must not shift the student's
#      masks): (a) task.distill true at train.alpha 0 equals
#      task.distill false bit for bit (losses, every parameter and AdamW moment); (b) at alpha 0.4
#      the loss differs from the first step (the teacher's soft targets are in it), and the
#      teacher is the momentum model: frozen (model.momentum 1) it trains other parameters; (c) every
#      momentum copy -- the Model's tower in the .h5 and the task's in the .extra file -- moves
#      by the EMA m_k = mu m_(k-1) + (1 - mu) p_(k-1) before each step; (d) ve: stop after 2 +
#      --resume gives the straight run's losses and .extra (momentum copies included) bit for
#      bit; a checkpoint without momentum copies does not resume with distillation, and says why.
#      The checks of parameters read the checkpoints with h5py ($PYTHON) and skip without it.
# About 80 s on 2 cores (OPENBLAS_NUM_THREADS=1: the tiny model's GEMMs gain nothing from
# OpenBLAS threads, whose spinning costs a lot of system time next to OpenMP's).
set -eu
B=${top_builddir:-.}
VLMAE="$B/vlmae"
PY=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OPENBLAS_NUM_THREADS=1
fail=0
say() { echo "$@"; }
bad() { echo "FAIL: $*"; fail=1; }

"$VLMAE" synth --out "$dir/syn" --images 3000 --quiet
for t in vqa ve nlvr; do
    for s in train val test; do
        "$VLMAE" pack "$t" --ann "$dir/syn/${t}_$s.json" --images "$dir/syn" --out "$dir/shards/$t-$s" \
            --threads 2 --quiet 2> "$dir/pack.err" || { cat "$dir/pack.err"; bad "pack $t $s"; }
    done
done
"$VLMAE" pack grounding --ann "$dir/syn/grounding_val.json" --images "$dir/syn" --out "$dir/shards/gr-val" \
    --threads 2 --quiet 2> "$dir/pack.err" || { cat "$dir/pack.err"; bad "pack grounding"; }
grep -q "skipped images: 0 " "$dir/pack.err" || { cat "$dir/pack.err"; bad "pack grounding skipped images"; }

cat > "$dir/ft.yaml" <<EOF
model:
  preset: tiny
  hidden_dropout: 0.0
  attn_dropout: 0.0
task:
  image_size: 32
  text_max_len: 30
  eval_every: 0
  answer_list: "$dir/syn/answer_list.json"
  k_test: 128
train:
  batch_size: 16
  lr: 1.0e-3
  warmup_lr: 1.0e-4
  min_lr: 1.0e-4
  warmup_steps: 20
  log_every: 100
  ckpt_every: 0
  keep_checkpoints: 1
data:
  threads: 2
  augment: {randaugment: false, color_jitter: false, grayscale: false, blur: false}
EOF

# $1 task, $2 shard name; more --set arguments follow
finetune() {
    task=$1 name=$2
    shift 2
    "$VLMAE" finetune -c "$dir/ft.yaml" --run-dir "$dir/run-$task" --set task.name="$task" \
        --set "task.train=[\"$dir/shards/$name-train-*.h5\"]" --set "task.val=[\"$dir/shards/$name-val-*.h5\"]" \
        --set "task.test=[\"$dir/shards/$name-test-*.h5\"]" "$@" > "$dir/$task.out" 2>&1 ||
        { cat "$dir/$task.out"; bad "vlmae finetune $task"; }
}
# metric $2 of the last "$1: ..." line of file $3
metric() { grep "^$1:" "$3" | tail -n 1 | awk -v k="$2" '{ for (i = 2; i < NF; i++) if ($i == k) print $(i + 1) }'; }
# awk comparison "$1 >= $2"
atleast() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }'; }

# 1. SNLI-VE
finetune ve ve --set train.max_steps=300
va=$(metric val acc "$dir/ve.out"); ta=$(metric test acc "$dir/ve.out")
mean=$(awk -v a="$va" -v b="$ta" 'BEGIN { printf "%.2f", (a + b) / 2 }')
if atleast "$mean" 55; then say "ok ve: val $va% test $ta% (bound: mean >= 55%, chance 33.3%)"; else cat "$dir/ve.out"; bad "ve accuracy val $va test $ta"; fi
ck=$(ls "$dir"/run-ve/ckpt-*.h5 | tail -n 1)
[ -f "$ck.extra" ] || bad "ve: no $ck.extra next to the checkpoint"
"$VLMAE" eval -c "$dir/ft.yaml" --ckpt "$ck" --split test --set task.name=ve \
    --set "task.test=[\"$dir/shards/ve-test-*.h5\"]" > "$dir/ve-eval.out" 2>&1 || { cat "$dir/ve-eval.out"; bad "vlmae eval ve"; }
ea=$(metric test acc "$dir/ve-eval.out")
[ -n "$ea" ] && [ "$ea" = "$ta" ] && say "ok ve: vlmae eval of $(basename "$ck") reproduces test accuracy $ea%" ||
    { cat "$dir/ve-eval.out"; bad "ve: vlmae eval gives '$ea', fine-tuning ended with '$ta'"; }

# 2. NLVR2
finetune nlvr2 nlvr --set train.epochs=4
va=$(metric val acc "$dir/nlvr2.out"); ta=$(metric test acc "$dir/nlvr2.out")
mean=$(awk -v a="$va" -v b="$ta" 'BEGIN { printf "%.2f", (a + b) / 2 }')
if atleast "$mean" 55; then say "ok nlvr2: val $va% test $ta% (bound: mean >= 55%, chance 50%)"; else cat "$dir/nlvr2.out"; bad "nlvr2 accuracy val $va test $ta"; fi

# 3. VQA (test questions only: they keep their answers in the synthetic data)
finetune vqa vqa --set train.epochs=1 --set 'task.val=[]'
res="$dir/run-vqa/vqa_result_test.json"
nq=$(grep -c '"question_id": [0-9]*, "answer": "[^"]*"' "$res" 2>/dev/null || true)
want=$(grep -o '"question_id"' "$dir/syn/vqa_test.json" | wc -l)
[ "$nq" = "$want" ] && say "ok vqa: $res answers all $want test questions" || bad "vqa: $nq of $want answers in $res"
acc=$(metric test vqa_acc "$dir/vqa.out")
if atleast "$acc" 20; then say "ok vqa: VQA accuracy $acc% (bound >= 20%; always \"yes\": 7-9%)"; else cat "$dir/vqa.out"; bad "vqa accuracy '$acc'"; fi

# 4. attnmap (the NLVR2 model's image encoder: the VE one hardly needs its images)
ck=$(ls "$dir"/run-nlvr2/ckpt-*.h5 | tail -n 1)
"$VLMAE" attnmap --ckpt "$ck" --images "$dir/syn/images/002901.jpg" "$dir/syn/images/002902.jpg" \
    "$dir/syn/images/002903.jpg" --out "$dir/attn" > "$dir/attn.out" 2>&1 || { cat "$dir/attn.out"; bad "vlmae attnmap"; }
n=$(ls "$dir"/attn/*_attn.png 2>/dev/null | wc -l)
grep -q "^mean over 3 images: low [0-9.]*%  top10 [0-9.]*%  entropy [0-9.]*" "$dir/attn.out" &&
    grep -q "^mean	" "$dir/attn/attnmap.tsv" && [ "$n" -eq 3 ] &&
    say "ok attnmap: 3 overlays, $(grep '^mean over' "$dir/attn.out")" || { cat "$dir/attn.out"; bad "attnmap outputs"; }

# 5. Momentum distillation. md TASK SHARDS RUN [--set ...]: 3 steps, a checkpoint after each.
md() {
    task=$1 name=$2 run=$3
    shift 3
    "$VLMAE" finetune -c "$dir/ft.yaml" --run-dir "$dir/md-$run" --set task.name="$task" \
        --set "task.train=[\"$dir/shards/$name-train-*.h5\"]" --set 'task.val=[]' --set 'task.test=[]' \
        --set train.max_steps=3 --set train.log_every=1 --set train.ckpt_every=1 --set train.keep_checkpoints=3 \
        --set train.alpha_ramp=false --set model.momentum=0.9 --set model.hidden_dropout=0.1 \
        --set model.attn_dropout=0.1 "$@" > "$dir/md-$run.out" 2>&1
}
losses() { sed 's/, "samples_per_s.*//' "$dir/md-$1/log.jsonl"; }  # the log without its speed
first_loss() { head -n 1 "$dir/md-$1/log.jsonl" | sed 's/.*"epoch": [0-9.]*, "[a-z]*": \([0-9.]*\).*/\1/'; }
have_h5py=0
"$PY" -c "import h5py, numpy" 2>/dev/null && have_h5py=1 || say "skip: $PY has no h5py: the bit-for-bit and EMA checks of section 5"
for tn in ve:ve nlvr2:nlvr vqa:vqa; do
    t=${tn%%:*} n=${tn#*:}
    md "$t" "$n" "$t-off" --set task.distill=false || { cat "$dir/md-$t-off.out"; bad "$t: distill off"; }
    md "$t" "$n" "$t-a0" --set train.alpha=0 || { cat "$dir/md-$t-a0.out"; bad "$t: distill at alpha 0"; }
    md "$t" "$n" "$t-on" --set train.alpha=0.4 || { cat "$dir/md-$t-on.out"; bad "$t: distill at alpha 0.4"; }
    md "$t" "$n" "$t-mu1" --set train.alpha=0.4 --set model.momentum=1 || { cat "$dir/md-$t-mu1.out"; bad "$t: mu 1"; }
    if [ -n "$(losses "$t-off")" ] && [ "$(losses "$t-off")" = "$(losses "$t-a0")" ]; then
        say "ok $t: distillation at alpha 0 logs the losses of no distillation"
    else
        losses "$t-off"; losses "$t-a0"; bad "$t: alpha 0 with distillation != no distillation"
    fi
    a=$(first_loss "$t-off") b=$(first_loss "$t-on")
    if [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ]; then
        say "ok $t: first-step loss $b at alpha 0.4 (teacher's soft targets), $a without distillation"
    else
        bad "$t: alpha 0.4 gives first-step loss '$b', no distillation '$a'"
    fi
    [ $have_h5py = 1 ] || continue
    "$PY" - "$dir" "$t" 0.9 <<'PYEOF' || bad "$t: checkpoints of the distillation runs"
import struct, sys
import h5py, numpy as np
d, t, mu = sys.argv[1], sys.argv[2], np.float32(sys.argv[3])
def blobs(path):  # finetune.c's .extra format: "VLMAEBLB", u32 count, (u32 len, name, u64 bytes, data)*
    b = open(path, "rb").read()
    assert b[:8] == b"VLMAEBLB"
    n, o, r = struct.unpack_from("<I", b, 8)[0], 12, {}
    for _ in range(n):
        nl = struct.unpack_from("<I", b, o)[0]
        name = b[o + 4:o + 4 + nl].decode()
        nb = struct.unpack_from("<Q", b, o + 4 + nl)[0]
        o += 12 + nl
        r[name] = b[o:o + nb]
        o += nb
    return r
def ckpt(run, k):
    h = {}
    with h5py.File("%s/md-%s/ckpt-%08d.h5" % (d, run, k), "r") as f:
        f.visititems(lambda n, o: h.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return h, blobs("%s/md-%s/ckpt-%08d.h5.extra" % (d, run, k))
ok = True
def check(cond, msg):
    global ok
    print(("ok " if cond else "FAIL ") + t + ": " + msg)
    ok = ok and cond
# (a) alpha 0: the same parameters, momentum-free state and AdamW moments, bit for bit
h0, x0 = ckpt(t + "-off", 3)
h1, x1 = ckpt(t + "-a0", 3)
same_h5 = [k for k in h0 if k.startswith(("params/", "adam/")) and np.array_equal(h0[k], h1[k])]
n_h5 = sum(k.startswith(("params/", "adam/")) for k in h0)
online = [k for k in x0 if not k.startswith("p:m.")]
mom = [k for k in x1 if k.startswith("p:m.")]
check(len(same_h5) == n_h5 > 100 and all(x0[k] == x1[k] for k in online) and not any(k.startswith("p:m.") for k in x0)
      and len(mom) == sum(k.startswith("p:") for k in x0) > 0,
      "alpha 0 == no distillation bit for bit after 3 steps (%d/%d model datasets, %d task blobs; %d momentum "
      "copies of task parameters)" % (len(same_h5), n_h5, len(online), len(mom)))
# (b) the teacher is the momentum model: frozen (model.momentum 1) it trains the online model
# elsewhere (mu reaches the online parameters through the teacher only)
h2, x2 = ckpt(t + "-mu1", 3)
h3, x3 = ckpt(t + "-on", 3)
diff = [k for k in h3 if k.startswith("params/") and not np.array_equal(h2[k], h3[k])]
diff += [k for k in x3 if k.startswith("p:") and not k.startswith("p:m.") and x2[k] != x3[k]]
check(len(diff) > 0, "a frozen teacher (model.momentum 1) trains other parameters in 3 steps (%d tensors differ, "
      "e.g. %s)" % (len(diff), diff[:1]))
# (c) the EMA before each step: momentum of checkpoint k from momentum and parameters of k-1
def f32(b): return np.frombuffer(b, dtype=np.float32)
worst, moved, total = 0.0, 0, 0
prev = ckpt(t + "-on", 1)
for k in (2, 3):
    cur = ckpt(t + "-on", k)
    pairs = [(cur[0]["momentum/" + n], prev[0]["momentum/" + n], prev[0]["params/" + n[2:]]) for n in
             (m[len("momentum/"):] for m in cur[0] if m.startswith("momentum/"))]
    pairs += [(f32(cur[1][n]), f32(prev[1][n]), f32(prev[1]["p:" + n[4:]])) for n in cur[1] if n.startswith("p:m.")]
    for m_k, m_1, p_1 in pairs:
        want = mu * m_1 + (np.float32(1) - mu) * p_1
        ulp = np.spacing(np.maximum(np.abs(m_1), np.abs(p_1)).astype(np.float32))
        worst = max(worst, float(np.max(np.abs(m_k - want) / ulp)))
        moved += int(np.count_nonzero(m_k != m_1))
        total += m_k.size
    prev = cur
check(worst <= 2.0 and moved > total // 10,
      "momentum copies (tower and task) follow m_k = %.1f m_k-1 + %.1f p_k-1 within %.1f ulp at steps 2 and 3 "
      "(%d of %d values moved)" % (mu, 1 - mu, worst, moved, total))
sys.exit(0 if ok else 1)
PYEOF
done

# (d) resume with momentum copies, and a checkpoint that has none.
md ve ve ve-res --set train.alpha=0.4 --stop-after 2 || { cat "$dir/md-ve-res.out"; bad "ve: distillation, stop after 2"; }
md ve ve ve-res --set train.alpha=0.4 --resume auto || { cat "$dir/md-ve-res.out"; bad "ve: distillation, resume"; }
if grep -q "resumed from .*ckpt-00000002.h5 at step 2" "$dir/md-ve-res.out" && [ "$(losses ve-on)" = "$(losses ve-res)" ] &&
    cmp -s "$dir/md-ve-on/ckpt-00000003.h5.extra" "$dir/md-ve-res/ckpt-00000003.h5.extra"; then
    say "ok ve: distillation resumes exactly (losses; head, its momentum copy and AdamW state bit for bit)"
else
    cat "$dir/md-ve-res.out"; bad "ve: resume with distillation"
fi
if md ve ve ve-old --set train.alpha=0.4 --resume "$dir/md-ve-off/ckpt-00000002.h5"; then
    bad "ve: a checkpoint without momentum copies resumed with distillation"
elif grep -q "no momentum copy .*--set task.distill=false" "$dir/md-ve-old.out"; then
    say "ok ve: a checkpoint without momentum copies: $(grep -o 'no momentum copy [^ ]*' "$dir/md-ve-old.out")"
else
    cat "$dir/md-ve-old.out"; bad "ve: resuming a checkpoint without momentum copies fails without saying why"
fi

exit $fail
