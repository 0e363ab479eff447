#!/bin/sh
# test_watchdog.sh: no hangs -- the watchdog (src/train/watchdog.h, runtime.timeout_s) of `vlmae
# pretrain` end to end (tiny config, synthetic shards, CPU, 2 MPI ranks; 1 rank without MPI):
#  1. a healthy run with runtime.timeout_s=10 and a checkpoint every 2 steps never trips it (every
#     phase fits: setup, the first step, each checkpoint write, the collectives);
#  2. SIGSTOP to rank 1 mid-run: rank 0's watchdog prints rank, host, step and phase and aborts the
#     job (MPI_Abort): it ends within the timeout + margin with exit status 98 and no rank left
#     running; the last checkpoint is intact, and --resume auto continues from it and finishes with
#     the final checkpoint of the uninterrupted run, bit for bit;
#  3. a rank stuck inside a step (test hook VLMAE_TEST_STALL_STEP, read in src/train/trainer.c; no
#     MPI needed, so the sanitizer build runs it too): exit 98, phase 'step' (or 'allreduce' on the
#     rank waiting for it);
#  4. a checkpoint write held past the timeout (test hook VLMAE_TEST_CKPT_SLEEP): phase
#     'checkpoint', exit 98, the previous checkpoint intact, no new one; resuming reproduces the
#     uninterrupted run bit for bit.
# Every run is under `timeout`: a hang fails the test instead of blocking CI.
set -eu
B=${top_builddir:-.}
S=${top_srcdir:-.}
PY=${PYTHON:-/usr/bin/python3}
VLMAE="$B/vlmae"
if ! "$PY" -c "import h5py, numpy" 2>/dev/null; then echo "SKIP: $PY has no h5py (apt-get install python3-h5py)"; exit 77; fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/test_watchdog.XXXXXX")
cleanup() {
    # Processes this test started carry $dir in their command line; none may outlive it (a stopped
    # one is continued so that it dies).
    for p in $(pgrep -f "vlmae pretrain .*$dir/" 2>/dev/null || true); do
        kill -CONT "$p" 2>/dev/null || true
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1 DATA="$dir"
unset VLMAE_TEST_NAN_STEP VLMAE_TEST_NAN_RANK VLMAE_TEST_NAN_WHAT VLMAE_TEST_CKPT_SLEEP VLMAE_TEST_STALL_STEP \
    VLMAE_TEST_STALL_RANK 2>/dev/null || true
cfg="$S/configs/tiny.yaml"
T=10       # runtime.timeout_s of every run here (a few seconds, but a step on 2 cores shared with other
           # jobs can take several)
MARGIN=20  # the job must end within T + MARGIN seconds of the hang (tick 1 s, MPI_Abort, a loaded machine)
common="--set train.log_every=1 --set train.ckpt_every=2 --set train.max_steps=40 --set data.threads=1 --set runtime.timeout_s=$T"
LIMIT=180  # seconds: no single run may take longer
if [ -n "${MPIEXEC:-}" ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    NP=2
    run() { timeout -s KILL $LIMIT $MPIEXEC -np 2 "$VLMAE" "$@"; }
else
    NP=1
    run() { timeout -s KILL $LIMIT "$VLMAE" "$@"; }
fi
host=$(uname -n)

. "$S/tests/ranks.sh"  # ok, bad, show, wait_for, rank_pid
left() { pgrep -f "vlmae pretrain .*--run-dir $1( |\$)" || true; }
newest() { ls "$1" | grep '^ckpt-[0-9]*\.h5$' | tail -n 1; }
# report_re R P: the watchdog's report line (a regex) for rank R in phase P (both may be regexes).
report_re() {
    echo "^vlmae: watchdog: rank $1 of $NP on $host: phase '$2' of step [0-9][0-9]* has not completed within $T s (runtime.timeout_s); aborting the job (exit status 98)\$"
}

cat > "$dir/check.py" <<'PYEOF'
import json, sys, h5py, numpy as np
def losses(d):
    return {r["step"]: [r[k] for k in ("itc", "itm", "mlm", "rmim", "ifr")] for r in map(json.loads, open(d + "/log.jsonl"))}
def datasets(f):
    names = []
    f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
    return names
cmd = sys.argv[1]
if cmd == "same":  # same RUN_A RUN_B FIRST LAST CKPT: losses of steps FIRST..LAST and the checkpoint equal
    a, b, lo, hi, ck = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    la, lb = losses(a), losses(b)
    bad = [s for s in range(lo, hi + 1) if s not in la or s not in lb or la[s] != lb[s]]
    fa, fb = h5py.File(a + "/" + ck, "r"), h5py.File(b + "/" + ck, "r")
    names = datasets(fa)
    diff = [n for n in names if n not in fb or not np.array_equal(fa[n][()], fb[n][()])]
    attrs = [k for k in ("step", "epoch", "epoch_step") if fa.attrs[k] != fb.attrs[k]]
    print("losses of steps %d..%d equal: %s; %s equal in %d datasets (differing: %s %s)"
          % (lo, hi, "yes" if not bad else "NO, steps %s" % bad, ck, len(names), diff[:5], attrs))
    sys.exit(0 if not bad and not diff and not attrs and len(names) > 100 else 1)
if cmd == "intact":  # intact CKPT: complete, every value finite
    f = h5py.File(sys.argv[2], "r")
    nonfin = [n for n in datasets(f) if f[n].dtype.kind == "f" and not np.isfinite(f[n][()]).all()]
    print("%s: complete=%s, non-finite datasets %s" % (sys.argv[2], f.attrs.get("complete"), nonfin[:5]))
    sys.exit(0 if f.attrs.get("complete") == 1 and not nonfin else 1)
sys.exit(2)
PYEOF
chk() { "$PY" "$dir/check.py" "$@"; }

"$VLMAE" synth --out "$dir/syn" --seed 3 --images 60 >/dev/null
"$VLMAE" pack albef --ann "$dir/syn/pretrain.json" --ann "$dir/syn/vg.json" --images "$dir/syn" --out "$dir/shards/synth" >/dev/null 2>&1

# ---- 1. A healthy run never trips the watchdog; it is the reference of the resumes below.
st=0
run pretrain -c "$cfg" $common --run-dir "$dir/straight" > "$dir/straight.out" 2>&1 || st=$?
if [ "$st" = 0 ] && ! grep -q "^vlmae: watchdog:" "$dir/straight.out" && [ -f "$dir/straight/ckpt-00000040.h5" ]; then
    ok "healthy run on $NP rank(s), runtime.timeout_s=$T, a checkpoint every 2 steps: 40 steps, the watchdog never fired"
else
    bad "healthy run: exit $st"; show "$dir/straight.out"
    exit 1
fi

# resume_same RUN WHAT: --resume auto finishes; the final checkpoint and losses equal the straight run.
resume_same() {
    st=0
    run pretrain -c "$cfg" $common --run-dir "$1" --resume auto > "$1.resume.out" 2>&1 || st=$?
    k=$(sed -n 's/^resumed from .*ckpt-0*\([0-9][0-9]*\)\.h5 at step.*/\1/p' "$1.resume.out")
    if [ "$st" = 0 ] && [ -n "$k" ] && ! grep -q "^vlmae: watchdog:" "$1.resume.out" &&
       chk same "$dir/straight" "$1" $((k + 1)) 40 ckpt-00000040.h5; then
        ok "$2: --resume auto continued from step $k and finished with the uninterrupted run's losses and final checkpoint, bit for bit"
    else
        bad "$2: the resumed run (exit $st, from step '$k') does not reproduce the uninterrupted run"; show "$1.resume.out"
    fi
}

# ---- 2. SIGSTOP to rank 1 mid-run.
if [ "$NP" = 2 ]; then
    r="$dir/stop"
    run pretrain -c "$cfg" $common --run-dir "$r" > "$r.out" 2>&1 &
    bg=$!
    if wait_for "$r.out" "^step 3/" && p=$(rank_pid "$r" 1); then
        kill -STOP "$p"
        t0=$(date +%s)
        st=0
        wait $bg || st=$?
        dt=$(( $(date +%s) - t0 ))
        lr=$(left "$r")
        ck=$(newest "$r")
        line=$(grep "^vlmae: watchdog:" "$r.out" | head -n 1)
        if [ "$st" = 98 ] && [ $dt -ge $((T - 1)) ] && [ $dt -le $((T + MARGIN)) ] && [ -z "$lr" ] &&
           grep -q "$(report_re 0 '[a-z]*')" "$r.out" && [ -n "$ck" ] && chk intact "$r/$ck" >/dev/null; then
            ok "SIGSTOP to rank 1: the job ended ${dt}s later (timeout ${T}s), exit 98, no rank left running, $ck intact; $line"
        else
            bad "SIGSTOP to rank 1: exit $st after ${dt}s (timeout ${T}s), left running: '$lr', newest checkpoint '$ck'"; show "$r.out"
        fi
        resume_same "$r" "SIGSTOP"
    else
        bad "SIGSTOP: the run never reached step 3"; show "$r.out"
        wait $bg || true
    fi
else
    echo "SKIP (SIGSTOP to one of 2 ranks): built without MPI"
fi

# ---- 3. A rank stuck inside step 7 (the last rank; with 2 ranks rank 0 then waits in the all-reduce).
r="$dir/stall"
st=0
t0=$(date +%s)
VLMAE_TEST_STALL_STEP=7 VLMAE_TEST_STALL_RANK=$((NP - 1)) run pretrain -c "$cfg" $common --run-dir "$r" > "$r.out" 2>&1 || st=$?
dt=$(( $(date +%s) - t0 ))
want=$(report_re $((NP - 1)) step)
[ "$NP" = 2 ] && want="$want\\|$(report_re 0 allreduce)"
if [ "$st" = 98 ] && grep -q "TEST HOOK VLMAE_TEST_STALL_STEP: rank $((NP - 1)) stalls in step 7" "$r.out" &&
   grep "^vlmae: watchdog:" "$r.out" | grep -q "step 7 " && grep -q "$want" "$r.out" && [ -z "$(left "$r")" ] &&
   [ "$(newest "$r")" = ckpt-00000006.h5 ] && chk intact "$r/ckpt-00000006.h5" >/dev/null; then
    ok "rank $((NP - 1)) stuck in step 7: exit 98 (the whole run took ${dt}s), ckpt-6 intact; $(grep '^vlmae: watchdog:' "$r.out" | head -n 1)"
else
    bad "stuck step: exit $st after ${dt}s, newest checkpoint $(newest "$r")"; show "$r.out"
fi

# ---- 4. The next checkpoint write (step 8) held past the timeout, then resumed.
st=0
VLMAE_TEST_CKPT_SLEEP=$((3 * T)) run pretrain -c "$cfg" $common --run-dir "$r" --resume auto > "$r.ck.out" 2>&1 || st=$?
if [ "$st" = 98 ] && grep -q "$(report_re '[0-9]' checkpoint)" "$r.ck.out" && grep "^vlmae: watchdog:" "$r.ck.out" | grep -q "step 8 " &&
   [ "$(newest "$r")" = ckpt-00000006.h5 ] && [ -f "$r/ckpt-00000008.h5.tmp" ] && chk intact "$r/ckpt-00000006.h5" >/dev/null; then
    ok "checkpoint write of step 8 held for $((3 * T))s: exit 98 in phase 'checkpoint', ckpt-6 intact, no ckpt-8"
else
    bad "held checkpoint write: exit $st, newest checkpoint $(newest "$r")"; show "$r.ck.out"; ls "$r"
fi
resume_same "$r" "stuck step, then a held checkpoint write"
exit $fail
