#!/bin/sh
# test_faults.sh: `vlmae pretrain` under faults (tiny config, synthetic shards, CPU). A multi-day run
# on a shared cluster must never lose work or hang:
#  1. kill -9 during a checkpoint write (test hook VLMAE_TEST_CKPT_SLEEP holds the save with
#     ckpt-N.h5.tmp written): the previous checkpoint stays loadable, --resume auto picks it (a torn
#     ckpt file next to it is skipped), and the resumed run reproduces the straight run bit for bit;
#  2. 2 MPI ranks, kill -9 of one rank mid-step: the job ends non-zero within 60 s, no rank is left
#     running; --resume auto continues from the last complete checkpoint and reproduces the
#     uninterrupted run's losses and final checkpoint bit for bit;
#  3. SIGTERM to one of 2 ranks: every rank stops at the same step, one checkpoint, exit 99, and
#     the run resumes from it (SIGUSR1 is in test_pretrain.sh);
#  4. a NaN injected into one rank's gradient or loss (test hook VLMAE_TEST_NAN_STEP/_RANK/_WHAT,
#     read in src/train/trainer.c) is caught on every rank at the same step: train.nonfinite=stop ends
#     the run (exit 3) naming the value, the ranks and the step, no checkpoint after it; =skip
#     skips the step, counts it in log.jsonl (valid JSON), ranks stay in sync and no NaN reaches a
#     checkpoint;
#  5. disk full at checkpoint time (a small tmpfs when mount works, else ulimit -f): a clear error,
#     exit 4, the previous checkpoint kept; with space back the run continues exactly;
#  6. run directory gone at checkpoint time (replaced by a file while the save is held by the test
#     hook; chmod does not stop root): a clear error, exit 4, the previous checkpoint kept and
#     resumed exactly.
# Every run is under `timeout`: a hang fails the test instead of blocking CI.
# Without MPI the 2-rank parts run on 1 rank (kill -9 part skipped).
set -eu
B=${top_builddir:-.}
S=${top_srcdir:-.}
PY=${PYTHON:-/usr/bin/python3}
VLMAE="$B/vlmae"
if ! "$PY" -c "import h5py, numpy" 2>/dev/null; then echo "SKIP: $PY has no h5py (apt-get install python3-h5py)"; exit 77; fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/test_faults.XXXXXX")
mnt=""
cleanup() {
    # Processes this test started carry $dir in their command line; none may outlive it.
    for p in $(pgrep -f "vlmae pretrain .*$dir/" 2>/dev/null || true); do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$mnt" ]; then umount "$mnt" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1 DATA="$dir"
unset VLMAE_TEST_NAN_STEP VLMAE_TEST_NAN_RANK VLMAE_TEST_NAN_WHAT VLMAE_TEST_CKPT_SLEEP 2>/dev/null || true
cfg="$S/configs/tiny.yaml"
common="--set train.log_every=1 --set train.ckpt_every=5 --set train.max_steps=40 --set data.threads=1"
T=120  # seconds: no single run here may take longer (a hang fails the test instead of CI)
if [ -n "${MPIEXEC:-}" ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    NP=2
    run2() { timeout -s KILL $T $MPIEXEC -np 2 "$VLMAE" "$@"; }
else
    NP=1
    run2() { timeout -s KILL $T "$VLMAE" "$@"; }
fi
run1() { timeout -s KILL $T "$VLMAE" "$@"; }

. "$S/tests/ranks.sh"  # ok, bad, show, wait_for, rank_pid
# sig SIGNAL D R: send SIGNAL to rank R of the run in D.
sig() {
    p=$(rank_pid "$2" "$3") && [ -n "$p" ] && [ "$p" -gt 1 ] || { echo "no rank $3 process for $2"; return 1; }
    kill "-$1" "$p"
}

cat > "$dir/check.py" <<'PYEOF'
import json, math, sys, h5py, numpy as np
def rows(d):
    out = []
    for line in open(d + "/log.jsonl"):
        # strict JSON: NaN/Infinity are not JSON
        out.append(json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError("non-JSON " + c))))
    return out
def losses(d):
    return {r["step"]: [r[k] for k in ("itc", "itm", "mlm", "rmim", "ifr")] for r in rows(d)}  # last row per step wins
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
    diff = [n for n in names if not np.array_equal(fa[n][()], fb[n][()])]
    print("losses of steps %d..%d equal: %s; %s equal in %d datasets (differing: %s)"
          % (lo, hi, "yes" if not bad else "NO, steps %s" % bad, ck, len(names), diff[:5]))
    sys.exit(0 if not bad and not diff and len(names) > 100 else 1)
if cmd == "finite":  # finite CKPT...: complete checkpoints, every value finite
    for p in sys.argv[2:]:
        f = h5py.File(p, "r")
        nonfin = [n for n in datasets(f) if f[n].dtype.kind == "f" and not np.isfinite(f[n][()]).all()]
        if f.attrs.get("complete") != 1 or nonfin:
            print("%s: complete=%s, non-finite datasets %s" % (p, f.attrs.get("complete"), nonfin[:5]))
            sys.exit(1)
    sys.exit(0)
if cmd == "laststep":  # laststep RUN: the last logged step
    print(max(r["step"] for r in rows(sys.argv[2])))
    sys.exit(0)
if cmd == "skipped":  # skipped RUN STEP: log.jsonl is strict JSON, nothing non-finite; 'skipped' at STEP
    rs = rows(sys.argv[2])
    nonfin = [r["step"] for r in rs if any(isinstance(v, float) and not math.isfinite(v) for v in r.values())]
    at = {r["step"]: r["skipped"] for r in rs}
    print(at.get(int(sys.argv[3]), "missing"), nonfin)
    sys.exit(0)
sys.exit(2)
PYEOF
chk() { "$PY" "$dir/check.py" "$@"; }

"$VLMAE" synth --out "$dir/syn" --seed 3 --images 60 >/dev/null
"$VLMAE" pack albef --ann "$dir/syn/pretrain.json" --ann "$dir/syn/vg.json" --images "$dir/syn" --out "$dir/shards/synth" >/dev/null 2>&1

# Reference: the uninterrupted 1-rank run.
run1 pretrain -c "$cfg" $common --run-dir "$dir/straight" > "$dir/straight.out" 2>&1 || { show "$dir/straight.out"; exit 1; }

# ---- 1. kill -9 while a checkpoint is being written.
r="$dir/ckkill"
run1 pretrain -c "$cfg" $common --run-dir "$r" --stop-after 10 > "$dir/ck1.out" 2>&1 || bad "ckpt-kill: first run failed"
VLMAE_TEST_CKPT_SLEEP=60 run1 pretrain -c "$cfg" $common --run-dir "$r" --resume auto > "$dir/ck2.out" 2>&1 &
bg=$!
if wait_for "$dir/ck2.out" "TEST HOOK VLMAE_TEST_CKPT_SLEEP: .*ckpt-00000015.h5.tmp written"; then
    [ -f "$r/ckpt-00000015.h5.tmp" ] && [ ! -e "$r/ckpt-00000015.h5" ] || bad "ckpt-kill: no ckpt-15 .tmp, or ckpt-15 already in place"
    sig KILL "$r" 0 || bad "ckpt-kill: no process to kill"
else
    bad "ckpt-kill: the save of step 15 never started"
fi
wait $bg 2>/dev/null || true
# A torn checkpoint file (e.g. copied half-way by hand) must be skipped too.
head -c 100000 "$r/ckpt-00000010.h5" > "$r/ckpt-00000015.h5"
chk finite "$r/ckpt-00000010.h5" || bad "ckpt-kill: the previous checkpoint ckpt-10 is not intact"
run1 pretrain -c "$cfg" $common --run-dir "$r" --resume auto > "$dir/ck3.out" 2>&1 || bad "ckpt-kill: the resumed run failed"
if grep -q "resumed from .*ckpt-00000010.h5 at step 10" "$dir/ck3.out" && grep -q "skipping checkpoint .*ckpt-00000015.h5" "$dir/ck3.out" &&
   chk same "$dir/straight" "$r" 11 40 ckpt-00000040.h5 && [ -z "$(ls "$r" | grep '\.tmp$' || true)" ]; then
    ok "kill -9 during a checkpoint write: ckpt-10 kept, the torn ckpt-15 skipped, resume reproduces steps 11..40, no .tmp left"
else
    bad "kill -9 during a checkpoint write"; show "$dir/ck2.out" "$dir/ck3.out"; ls -la "$r"
fi

# ---- 2. kill -9 of one of 2 ranks mid-step.
if [ "$NP" = 2 ]; then
    long="--set train.log_every=1 --set train.ckpt_every=5 --set train.max_steps=40 --set data.threads=1"
    run2 pretrain -c "$cfg" $long --run-dir "$dir/straight2" > "$dir/straight2.out" 2>&1 || { bad "2-rank reference run"; show "$dir/straight2.out"; }
    r="$dir/k9"
    # (checkpoints every 2 steps: there is one to resume from however early the kill lands)
    run2 pretrain -c "$cfg" $long --set train.ckpt_every=2 --run-dir "$r" > "$dir/k9.out" 2>&1 &
    bg=$!
    if wait_for "$dir/k9.out" "^step 3/"; then
        # Freeze rank 1 first: rank 0 then sits in the next collective of its step, waiting for a
        # peer that dies -- the case that must not hang.
        sig STOP "$r" 1 || true
        sleep 0.5
        t0=$(date +%s)
        sig KILL "$r" 1 || true
        st=0
        wait $bg || st=$?
        dt=$(( $(date +%s) - t0 ))
        left=$(pgrep -f "vlmae pretrain .*--run-dir $r( |\$)" || true)
        if [ "$st" != 0 ] && [ $dt -le 60 ] && [ -z "$left" ]; then
            ok "kill -9 of rank 1 mid-step: the job ended (exit $st) ${dt}s after the kill, no rank left running"
        else
            bad "kill -9 of rank 1: exit $st after ${dt}s (${T}s = hung until the test's timeout), left running: $left"; show "$dir/k9.out"
        fi
        run2 pretrain -c "$cfg" $long --set train.ckpt_every=2 --run-dir "$r" --resume auto > "$dir/k9r.out" 2>&1 || bad "kill -9: the resumed run failed"
        k=$(sed -n 's/^resumed from .*ckpt-0*\([0-9][0-9]*\)\.h5 at step.*/\1/p' "$dir/k9r.out")
        if [ -n "$k" ] && [ "$k" -ge 2 ] && [ "$k" -lt 40 ] && chk same "$dir/straight2" "$r" $((k + 1)) 40 ckpt-00000040.h5; then
            ok "kill -9: resumed from the last complete checkpoint (step $k), steps $((k + 1))..40 equal the uninterrupted run bit for bit"
        else
            bad "kill -9: resume from step '$k' does not reproduce the uninterrupted run"; show "$dir/k9r.out"
        fi
    else
        bad "kill -9: the run never reached step 3"; show "$dir/k9.out"
    fi
else
    echo "SKIP (kill -9 of one rank): built without MPI"
fi

# ---- 3. SIGTERM to one rank.
r="$dir/term"
run2 pretrain -c "$cfg" --set train.log_every=1 --set train.max_steps=100000 --set data.threads=1 --run-dir "$r" > "$dir/term.out" 2>&1 &
bg=$!
st=x
if wait_for "$dir/term.out" "^step 3/"; then
    sig TERM "$r" $((NP - 1)) || true
    st=0
    wait $bg || st=$?
fi
n=$(ls "$r" | grep -c '^ckpt-.*\.h5$' || true)
k=$(sed -n 's/^signal received: checkpointing at step \([0-9]*\)$/\1/p' "$dir/term.out")
if [ "$st" = 99 ] && [ "$n" = 1 ] && [ -n "$k" ] && [ -f "$r/$(printf 'ckpt-%08d.h5' "$k")" ]; then
    run2 pretrain -c "$cfg" --set train.log_every=1 --set train.max_steps=100000 --set data.threads=1 --run-dir "$r" \
        --resume auto --stop-after $((k + 2)) > "$dir/term2.out" 2>&1 || true
    if grep -q "resumed from .*at step $k\$" "$dir/term2.out" && grep -q "^step $((k + 2))/" "$dir/term2.out"; then
        ok "SIGTERM to one of $NP rank(s): all stopped at step $k, one checkpoint, exit 99; resumed from it"
    else
        bad "SIGTERM: the run did not resume from step $k"; show "$dir/term2.out"
    fi
else
    bad "SIGTERM: exit $st, $n checkpoints, stop step '$k'"; show "$dir/term.out"
fi

# ---- 4. Non-finite values.
# stop: a NaN in rank 1's gradient at step 7 (rank 0 sees it through the all-reduce).
r="$dir/nanstop"
st=0
VLMAE_TEST_NAN_STEP=7 VLMAE_TEST_NAN_RANK=$((NP - 1)) run2 pretrain -c "$cfg" $common --run-dir "$r" > "$dir/nanstop.out" 2>&1 || st=$?
last=$(chk laststep "$r" 2>/dev/null || echo x)
where=""
[ "$NP" = 2 ] && where=" (on all 2 ranks)"  # the NaN reached every rank through the all-reduce
if [ "$st" = 3 ] && grep -q "non-finite gradient of [a-z_.0-9]*$where at step 7: stopping" "$dir/nanstop.out" && [ "$last" = 6 ] &&
   [ "$(ls "$r" | grep '^ckpt-' | tr '\n' ' ')" = "ckpt-00000005.h5 " ] && chk finite "$r/ckpt-00000005.h5"; then
    ok "NaN gradient on rank $((NP - 1)) at step 7, nonfinite=stop: every rank stopped at step 7 (exit 3), reported, only the finite ckpt-5"
else
    bad "NaN gradient, nonfinite=stop: exit $st, last logged step $last"; show "$dir/nanstop.out"; ls "$r"
fi
# skip: a NaN loss on rank 0 at step 7 (the other rank only learns it from the guard's vote).
r="$dir/nanskip"
st=0
sync=""
[ "$NP" = 2 ] && sync="--check-sync 1"
VLMAE_TEST_NAN_STEP=7 VLMAE_TEST_NAN_RANK=0 VLMAE_TEST_NAN_WHAT=loss run2 pretrain -c "$cfg" $common \
    --set train.nonfinite=skip --set train.max_steps=10 $sync --run-dir "$r" > "$dir/nanskip.out" 2>&1 || st=$?
res=$(chk skipped "$r" 10 2>&1 || true)
where=""
[ "$NP" = 2 ] && where=" (on rank 0 of 2)"
if [ "$st" = 0 ] && grep -q "step 7 skipped: non-finite loss itc = nan$where" "$dir/nanskip.out" && [ "$res" = "1 []" ] &&
   chk finite "$r/ckpt-00000005.h5" "$r/ckpt-00000010.h5"; then
    ok "NaN loss on rank 0 at step 7, nonfinite=skip: step 7 skipped on every rank (in sync), counted in log.jsonl, checkpoints finite"
else
    bad "NaN loss, nonfinite=skip: exit $st, log check '$res'"; show "$dir/nanskip.out"
fi

# ---- 5. Disk full at checkpoint time.
r=""
if mkdir "$dir/mnt" && mount -t tmpfs -o size=30m tmpfs "$dir/mnt" 2>/dev/null; then
    mnt="$dir/mnt"
    r="$mnt/run"
    # A checkpoint of the tiny model is ~19 MB: ckpt-5 fits in 30 MB, ckpt-10 does not.
    st=0
    run1 pretrain -c "$cfg" $common --run-dir "$r" > "$dir/full.out" 2>&1 || st=$?
    how="30 MB tmpfs"
else
    # No mount here: a file size limit instead (SIGXFSZ ignored, so write() fails with EFBIG).
    r="$dir/full"
    run1 pretrain -c "$cfg" $common --run-dir "$r" --stop-after 5 > "$dir/full0.out" 2>&1 || bad "disk full: first run failed"
    st=0
    (trap '' XFSZ; ulimit -f 16000; exec timeout -s KILL $T "$VLMAE" pretrain -c "$cfg" $common --run-dir "$r" --resume auto) > "$dir/full.out" 2>&1 || st=$?
    how="ulimit -f"
fi
if [ "$st" = 4 ] && grep -q "checkpoint failed: .*ckpt-00000010.h5.*\(No space left on device\|File too large\).*(the previous checkpoint is kept)" "$dir/full.out" &&
   [ -z "$(ls "$r" | grep -v '^ckpt-00000005.h5$\|^config.yaml$\|^log.jsonl$' || true)" ] && chk finite "$r/ckpt-00000005.h5"; then
    [ -n "$mnt" ] && mount -o remount,size=200m "$mnt"
    run1 pretrain -c "$cfg" $common --run-dir "$r" --resume auto > "$dir/full2.out" 2>&1 || true
    if grep -q "resumed from .*ckpt-00000005.h5 at step 5" "$dir/full2.out" && chk same "$dir/straight" "$r" 6 40 ckpt-00000040.h5; then
        ok "disk full ($how) at checkpoint 10: clear error, exit 4, ckpt-5 kept, nothing else left; with space back the run continues exactly"
    else
        bad "disk full: resume after freeing space"; show "$dir/full2.out"
    fi
else
    bad "disk full ($how): exit $st"; show "$dir/full.out"; ls -la "$r"
fi
if [ -n "$mnt" ]; then umount "$mnt" && mnt=""; fi

# ---- 6. Run directory gone / unwritable at checkpoint time: while the save of ckpt-20 is held by
# the test hook (ckpt-20.h5.tmp written), the run directory is replaced by a file (chmod does not stop
# root); SIGUSR1 ends the hook's sleep early.
r="$dir/unw"
run1 pretrain -c "$cfg" $common --set train.ckpt_every=10 --run-dir "$r" --stop-after 10 > "$dir/unw0.out" 2>&1 || bad "unwritable: first run failed"
VLMAE_TEST_CKPT_SLEEP=100 run1 pretrain -c "$cfg" $common --set train.ckpt_every=10 --run-dir "$r" --resume auto > "$dir/unw.out" 2>&1 &
bg=$!
st=x
if wait_for "$dir/unw.out" "TEST HOOK VLMAE_TEST_CKPT_SLEEP: .*ckpt-00000020.h5.tmp written"; then
    mv "$r" "$r.moved" && : > "$r"
    sig USR1 "$r" 0 || true
    st=0
    wait $bg || st=$?
fi
if [ "$st" = 4 ] && grep -q "checkpoint failed: .*ckpt-00000020.h5.*Not a directory.*(the previous checkpoint is kept)" "$dir/unw.out" &&
   chk finite "$r.moved/ckpt-00000010.h5"; then
    rm -f "$r" && mv "$r.moved" "$r"
    run1 pretrain -c "$cfg" $common --set train.ckpt_every=10 --run-dir "$r" --resume auto > "$dir/unw2.out" 2>&1 || true
    if grep -q "resumed from .*ckpt-00000010.h5 at step 10" "$dir/unw2.out" && chk same "$dir/straight" "$r" 11 40 ckpt-00000040.h5 &&
       [ -z "$(ls "$r" | grep '\.tmp$' || true)" ]; then
        ok "run directory replaced by a file during checkpoint 20: clear error, exit 4, ckpt-10 kept and resumed exactly (stale .tmp reused)"
    else
        bad "unwritable run directory: resume"; show "$dir/unw2.out"
    fi
else
    bad "unwritable run directory: exit $st"; show "$dir/unw.out"
fi

# Sanitizer builds (configure --enable-sanitizers): no report in any run's output.
if grep -El "Sanitizer|runtime error:" "$dir"/*.out >/dev/null 2>&1; then
    bad "sanitizer reports in: $(grep -El "Sanitizer|runtime error:" "$dir"/*.out | tr '\n' ' ')"
fi
exit $fail
