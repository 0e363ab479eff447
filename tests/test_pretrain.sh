#!/bin/sh
# test_pretrain.sh: the `vlmae pretrain` program end to end on the synthetic dataset (synth ->
# pack -> pretrain, tiny config):
#  1. exact resume: 20 steps straight == 10 steps, stop, --resume auto, 10 more steps: the logged
#     losses of steps 11..20 and the final checkpoint (parameters, momentum, AdamW, queues) are
#     equal bit for bit;
#  2. 2 MPI ranks with --check-sync 1 keep parameters, momentum copies and queues bit-identical;
#  3. SIGUSR1 to one of 2 ranks: every rank stops at the same step, one checkpoint, exit 99;
#  4. runtime.device: guard (the device-resident step on a guarded "device", src/engine/ops_guard.h):
#     10 steps, stop, resume, 10 steps give the CPU run's losses and final checkpoint bit for bit
#     (the device <-> host mirror paths of pretrain: checkpoint, resume); with 2 ranks (gradients
#     averaged through host buffers, --check-sync through the mirrors) the CPU 2-rank losses.
set -eu
B=${top_builddir:-.}
S=${top_srcdir:-.}
PY=${PYTHON:-/usr/bin/python3}
VLMAE="$B/vlmae"
if ! "$PY" -c "import h5py, numpy" 2>/dev/null; then echo "SKIP: $PY has no h5py (apt-get install python3-h5py)"; exit 77; fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export OMP_NUM_THREADS=1 DATA="$dir"
cfg="$S/configs/tiny.yaml"
common="--set train.log_every=1 --set train.ckpt_every=0 --set train.max_steps=20 --set data.threads=1"

"$VLMAE" synth --out "$dir/syn" --seed 3 --images 60 >/dev/null
"$VLMAE" pack albef --ann "$dir/syn/pretrain.json" --ann "$dir/syn/vg.json" --images "$dir/syn" --out "$dir/shards/synth" >/dev/null 2>&1

fail=0
# 1. Resume.
"$VLMAE" pretrain -c "$cfg" $common --run-dir "$dir/straight" >/dev/null
"$VLMAE" pretrain -c "$cfg" $common --run-dir "$dir/resumed" --stop-after 10 >/dev/null
"$VLMAE" pretrain -c "$cfg" $common --run-dir "$dir/resumed" --resume auto > "$dir/resumed.out"
grep -q "resumed from .*ckpt-00000010.h5 at step 10" "$dir/resumed.out" || { echo "FAIL: the second run did not resume from step 10"; cat "$dir/resumed.out"; fail=1; }
# compare A B FIRST WHAT: losses of steps FIRST..20 and the final checkpoints of run dirs A, B
compare() {
"$PY" - "$1" "$2" "$3" "$4" <<'PYEOF'
import json, sys, h5py, numpy as np
a, b, first, what = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def losses(d):
    rows = [json.loads(l) for l in open(d + "/log.jsonl")]
    return {r["step"]: [r[k] for k in ("itc", "itm", "mlm", "rmim", "ifr")] for r in rows}
la, lb = losses(a), losses(b)
ok = all(la[s] == lb[s] for s in range(first, 21))
print(("ok" if ok else "FAIL"), "losses of steps %d..20 equal %s" % (first, what))
if not ok:
    for s in range(first, 21): print(s, la[s], lb[s])
fa, fb = h5py.File(a + "/ckpt-00000020.h5", "r"), h5py.File(b + "/ckpt-00000020.h5", "r")
names = []
fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) else None)
diff = [n for n in names if not np.array_equal(fa[n][()], fb[n][()])]
attrs = [k for k in ("step", "epoch", "epoch_step") if fa.attrs[k] != fb.attrs[k]]
print(("ok" if not diff and not attrs and len(names) > 100 else "FAIL"),
      "final checkpoints equal bit for bit %s (%d datasets; differing: %s %s)" % (what, len(names), diff[:5], attrs))
sys.exit(0 if ok and not diff and not attrs and len(names) > 100 else 1)
PYEOF
}
compare "$dir/straight" "$dir/resumed" 11 "after resume" || fail=1

# 4. The guarded device: stop + resume, compared with the straight CPU run.
guard="--set runtime.device=guard"
"$VLMAE" pretrain -c "$cfg" $common $guard --run-dir "$dir/guard" --stop-after 10 >/dev/null
"$VLMAE" pretrain -c "$cfg" $common $guard --run-dir "$dir/guard" --resume auto > "$dir/guard.out"
grep -q "backend: guard" "$dir/guard.out" || { echo "FAIL: the guard run did not use the guard backend"; cat "$dir/guard.out"; fail=1; }
compare "$dir/straight" "$dir/guard" 1 "on the guarded device (stop + resume) and the CPU" || fail=1

if [ -n "${MPIEXEC:-}" ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    # 2. Two ranks stay in sync.
    if $MPIEXEC -np 2 "$VLMAE" pretrain -c "$cfg" $common --run-dir "$dir/mpi" --check-sync 1 > "$dir/mpi.out" 2>&1; then
        echo "ok 2 ranks: parameters, momentum and queues bit-identical at every one of 20 steps"
    else
        echo "FAIL 2 ranks diverged or failed:"; cat "$dir/mpi.out"; fail=1
    fi
    # 4b. Two ranks on the guarded device: host-staged gradient average, sync checks via mirrors.
    if $MPIEXEC -np 2 "$VLMAE" pretrain -c "$cfg" $common $guard --run-dir "$dir/mpi_guard" --check-sync 5 > "$dir/mpi_guard.out" 2>&1; then
        compare "$dir/mpi" "$dir/mpi_guard" 1 "with 2 ranks on the guarded device and on the CPU" || fail=1
    else
        echo "FAIL 2 ranks on the guarded device:"; cat "$dir/mpi_guard.out"; fail=1
    fi
    # 3. SIGUSR1 to one rank.
    $MPIEXEC -np 2 "$VLMAE" pretrain -c "$cfg" --set train.log_every=1 --set train.max_steps=100000 \
        --set data.threads=1 --run-dir "$dir/sig" > "$dir/sig.out" 2>&1 &
    mpipid=$!
    i=0
    while ! grep -q "^step 3/" "$dir/sig.out" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
    victim=$(pgrep -f "vlmae pretrain .*$dir/sig" | tail -n 1)
    kill -USR1 "$victim"
    st=0
    wait $mpipid || st=$?
    n=$(ls "$dir/sig" | grep -c '^ckpt-.*\.h5$' || true)
    if [ "$st" = 99 ] && [ "$n" = 1 ] && grep -q "signal received: checkpointing" "$dir/sig.out"; then
        echo "ok SIGUSR1 to one rank: checkpoint $(ls "$dir/sig" | grep '^ckpt-'), exit 99"
    else
        echo "FAIL SIGUSR1: exit $st, $n checkpoints"; cat "$dir/sig.out"; fail=1
    fi
else
    echo "SKIP (MPI parts): built without MPI"
fi
exit $fail
