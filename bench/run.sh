#!/bin/sh
# bench/run.sh: regenerate the benchmark report -- bench/report.md, report.json, step_time.png,
# scaling.png, scaling_cpu.png -- in one command (also `make bench`). Never part of make check.
#
#   bench/run.sh [--quick] [--out DIR] [--keep-raw DIR] [-- REPORT_OPTIONS...]
#
# 1. base model, batch 2, 16 tokens, objectives albef, tcl, vlmae: `vlmae bench` and the PyTorch
#    yardstick (bench/torch/torch_bench.py), alternately per objective so both see the same load,
#    in BENCH_ROUNDS rounds (default 2; the report keeps each side's best round: on a shared machine
#    the least disturbed one);
# 2. tiny model, batch 8: the same pair (more steps, quick);
# 3. scaling: `vlmae bench --model small` under $MPIEXEC with 1 and 2 ranks x 1 thread, and 1 rank
#    x 2 threads (skipped without MPI);
# 4. bench/report.py: the tables, the multi-node model (bench/README.md) and the PNG charts.
# --quick: tiny model everywhere and few steps (a smoke test of the pipeline, minutes).
# Environment: VLMAE (default ./vlmae of the build directory, else the source tree), PYTHON
# (default /usr/bin/python3, needs torch + numpy), MPIEXEC (default mpiexec if found; empty = no
# scaling runs), OMP_NUM_THREADS (default all CPUs), BENCH_STEPS / BENCH_WARMUP / BENCH_ROUNDS,
# BENCH_GIT (the revision named in the report; default git rev-parse of the source tree).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
out=$here
keep=
quick=0
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --keep-raw) keep=$2; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
VLMAE=${VLMAE:-}
if [ -z "$VLMAE" ]; then
    if [ -x ./vlmae ]; then VLMAE=$(pwd)/vlmae; else VLMAE=$top/vlmae; fi
fi
[ -x "$VLMAE" ] || { echo "bench/run.sh: no vlmae binary at $VLMAE (build first, or set VLMAE)" >&2; exit 2; }
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c "import torch, numpy" 2>/dev/null || { echo "bench/run.sh: $PY lacks torch/numpy" >&2; exit 2; }
if [ -z "${MPIEXEC+set}" ]; then MPIEXEC=$(command -v mpiexec || true); fi
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$NCPU}
# Idle OpenMP workers must sleep, not spin: on a loaded (shared) machine spinning costs both sides
# dearly. vlmae sets this itself; PyTorch's OpenMP reads the same variable.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

if [ -n "$keep" ]; then raw=$keep; mkdir -p "$raw"; else raw=$(mktemp -d); trap 'rm -rf "$raw"' EXIT; fi
if [ $quick = 1 ]; then
    MODEL=tiny BATCH=8 STEPS=${BENCH_STEPS:-3} WARMUP=${BENCH_WARMUP:-1} SMALL=tiny TSTEPS=5 SSTEPS=3
else
    MODEL=base BATCH=2 STEPS=${BENCH_STEPS:-3} WARMUP=${BENCH_WARMUP:-1} SMALL=small TSTEPS=20 SSTEPS=8
fi
ROUNDS=${BENCH_ROUNDS:-2}  # the main pair is measured ROUNDS times; the report takes each side's best round
TEXT=16
log() { echo "== $(date -u +%H:%M:%S) $*"; }

{
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') (vendor $(grep -m1 vendor_id /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(grep -m1 -o -w 'avx512f' /proc/cpuinfo || echo 'no avx512f')), $NCPU logical CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory; $(uname -sr)"
    echo "Compiler: $(${CC:-cc} --version 2>/dev/null | head -1); BLAS: $(pkg-config --modversion openblas 2>/dev/null | sed 's/^/OpenBLAS /' || echo unknown)"
    echo "Threads: OMP_NUM_THREADS=$OMP_NUM_THREADS, OMP_WAIT_POLICY=$OMP_WAIT_POLICY; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$raw/machine.txt"

r=1
while [ $r -le $ROUNDS ]; do
    for obj in albef tcl vlmae; do
        log "round $r/$ROUNDS: vlmae bench, $MODEL model, $obj"
        "$VLMAE" bench --model $MODEL --objective $obj --batch $BATCH --text-len $TEXT --steps $STEPS \
            --warmup $WARMUP --out "$raw/base-vlmae-$obj-r$r"
        log "round $r/$ROUNDS: PyTorch, $MODEL model, $obj"
        "$PY" "$here/torch/torch_bench.py" --model $MODEL --objective $obj --batch $BATCH --text-len $TEXT \
            --steps $STEPS --warmup $WARMUP --json "$raw/base-torch-$obj-r$r.json"
    done
    r=$((r + 1))
done
log "tiny model, all objectives"
"$VLMAE" bench --model tiny --objective all --batch 8 --text-len $TEXT --steps $TSTEPS --warmup 3 --out "$raw/tiny-vlmae"
"$PY" "$here/torch/torch_bench.py" --model tiny --objective all --batch 8 --text-len $TEXT --steps $TSTEPS \
    --warmup 3 --json "$raw/tiny-torch.json"

if [ -n "$MPIEXEC" ]; then
    for cfg in 1:1 2:1 1:2; do
        np=${cfg%:*} th=${cfg#*:}
        [ "$th" -le "$NCPU" ] || continue
        log "scaling: $np rank(s) x $th thread(s), $SMALL model"
        OMP_NUM_THREADS=$th $MPIEXEC -np $np "$VLMAE" bench --model $SMALL --objective vlmae --batch 4 \
            --text-len $TEXT --steps $SSTEPS --warmup 2 --out "$raw/scale-np${np}t${th}" || echo "(scaling run failed)"
    done
else
    log "no MPI launcher: scaling runs skipped"
fi
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$raw/machine.txt"

rev=${BENCH_GIT:-$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)}
if [ -z "${BENCH_GIT:-}" ] && [ -n "$rev" ] && [ -n "$(git -C "$top" status --porcelain -- src 2>/dev/null)" ]; then
    rev="$rev+local changes"
fi
"$PY" "$here/report.py" --raw "$raw" --out "$out" --git "$rev" "$@"
