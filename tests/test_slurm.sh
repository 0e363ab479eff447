#!/bin/bash
# test_slurm.sh: the unmodified jobs/pretrain_4m.slurm under a real (private, single-node) Slurm:
# tests/slurm/start.sh starts munged, slurmctld and slurmd in a temporary directory; the job is
# submitted with command-line and environment overrides for a CPU run of the tiny config on
# synthetic shards with 2 ranks:
#
#   CONFIG=configs/tiny.yaml RUN_DIR=... DATA=... VLMAE=./vlmae EXTRA_ARGS="--set ..." \
#   sbatch --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 --time=15 \
#       jobs/pretrain_4m.slurm
#
# Once the run has logged step 2, SIGUSR1 goes to the batch shell (scancel --batch --signal=USR1,
# what #SBATCH --signal=B:USR1@600 does before the time limit): vlmae must checkpoint and exit 99,
# the script requeue the job, and the second start resume (--resume auto) and finish. Checks: the
# job COMPLETED with exit code 0 after exactly one restart, its output shows both starts and the
# resume, log.jsonl has every step 1..N once and the final checkpoint exists.
#
# Skips (77) without slurmctld, slurmd, munged (Debian: slurm-wlm, munge) or without the vlmae
# synth/pack/pretrain commands. SLURM_TEST_KEEP=1 keeps the cluster directory (printed) for its logs.
# make check runs shell tests with $(SHELL), which may be a POSIX sh: this one needs bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

B=${top_builddir:-.}
S=${top_srcdir:-.}
B=$(cd "$B" 2>/dev/null && pwd) || { echo "SKIP: no build directory ${top_builddir:-.}"; exit 77; }
S=$(cd "$S" && pwd) || exit 1
VLMAE="$B/vlmae"
PATH=$PATH:/usr/sbin:/sbin
for prog in slurmctld slurmd munged sbatch srun scontrol scancel; do
    command -v "$prog" >/dev/null 2>&1 || { echo "SKIP: $prog not installed (apt-get install slurm-wlm munge)"; exit 77; }
done
[ -x "$VLMAE" ] || { echo "SKIP: $VLMAE not built"; exit 77; }
for cmd in synth pack pretrain; do
    "$VLMAE" "$cmd" --help >/dev/null 2>&1 || { echo "SKIP: vlmae has no '$cmd' command"; exit 77; }
done
# The job runs 2 ranks: without MPI they would be two independent runs in one run directory.
"$VLMAE" --help 2>/dev/null | grep -q "MPI yes" || { echo "SKIP: vlmae built without MPI (configure --without-mpi)"; exit 77; }

# Open MPI in containers: root, no ptrace-based single copy. sbatch hands this environment on.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OMP_NUM_THREADS=1

STEPS=12
dir=$(mktemp -d /tmp/vlmae-slurm.XXXXXX) || exit 1
work="$dir/work"
trap '"$S/tests/slurm/stop.sh" "$dir"' EXIT
[ -n "${SLURM_TEST_KEEP:-}" ] && echo "test_slurm: cluster directory $dir (kept)"
jobout=
fail() {
    echo "test_slurm: FAIL: $*"
    [ -n "${id:-}" ] && scontrol show job "$id" 2>/dev/null
    for f in "$jobout" "$dir/log/slurmctld.log" "$dir/log/slurmd.log"; do
        [ -n "$f" ] && [ -f "$f" ] && { echo "---- $f"; tail -n 40 "$f"; }
    done
    exit 1
}

# ---- synthetic shards ---------------------------------------------------------------------------------
mkdir -p "$work/data" "$work/logs" || exit 1
"$VLMAE" synth --out "$work/synth" --seed 1 --images 64 --quiet || fail "vlmae synth"
"$VLMAE" pack albef --ann "$work/synth/pretrain.json" --images "$work/synth" \
    --out "$work/data/shards/synth" --quiet >"$work/pack.log" 2>&1 || fail "vlmae pack: $(tail -n 5 "$work/pack.log")"

# ---- the cluster -----------------------------------------------------------------------------------------
"$S/tests/slurm/start.sh" "$dir" || fail "could not start the Slurm test cluster"
# shellcheck disable=SC1091
. "$dir/env"

# ---- submit the job ---------------------------------------------------------------------------------------
cd "$work" || exit 1
run="$work/run"
sbatch_opts=(--parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 --time=15)
extra="--set train.max_steps=$STEPS --set train.ckpt_every=4 --set train.log_every=1 --set data.threads=1"
echo "test_slurm: ${LAUNCHER:+LAUNCHER=$LAUNCHER }CONFIG=$S/configs/tiny.yaml RUN_DIR=$run DATA=$work/data VLMAE=$VLMAE" \
     "EXTRA_ARGS=\"$extra\" sbatch ${sbatch_opts[*]} $S/jobs/pretrain_4m.slurm"
id=$(CONFIG="$S/configs/tiny.yaml" RUN_DIR="$run" DATA="$work/data" VLMAE="$VLMAE" EXTRA_ARGS="$extra" \
     sbatch "${sbatch_opts[@]}" "$S/jobs/pretrain_4m.slurm") || fail "sbatch refused the job"
jobout="$work/logs/vlmae-pretrain-4m-$id.out"
echo "test_slurm: job $id"

field() { scontrol show job "$id" 2>/dev/null | grep -oE "(^| )$1=[^ ]*" | head -n 1 | cut -d= -f2-; }
last_step() { grep -oE '"step": [0-9]+' "$run/log.jsonl" 2>/dev/null | tail -n 1 | grep -oE '[0-9]+$'; }

# ---- SIGUSR1 once the run is under way ---------------------------------------------------------------
deadline=$((SECONDS + 180))
while :; do
    s=$(last_step)
    [ "${s:-0}" -ge 2 ] && break
    state=$(field JobState)
    case $state in PENDING|RUNNING|CONFIGURING) ;; *) fail "job $state before step 2" ;; esac
    [ $SECONDS -lt $deadline ] || fail "no step 2 logged within 180 s (state $state)"
    sleep 0.5
done
[ "$s" -lt "$STEPS" ] || fail "the run finished before the signal could be sent (step $s)"
scancel --batch --signal=USR1 "$id" || fail "scancel --batch --signal=USR1 $id"
echo "test_slurm: step $s logged: sent SIGUSR1 to the batch shell"

# ---- wait for the end (the requeued job waits ~20 s: cred_expire in tests/slurm/slurm.conf.in) -----
deadline=$((SECONDS + 300))
while :; do
    state=$(field JobState)
    case $state in
        PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|REQUEUE_FED|REQUEUE_HOLD) ;;
        *) break ;;
    esac
    [ $SECONDS -lt $deadline ] || { scancel "$id"; fail "job still $state after 300 s"; }
    sleep 1
done

# ---- checks ------------------------------------------------------------------------------------------------
[ "$state" = COMPLETED ] || fail "job ended $state"
[ "$(field ExitCode)" = 0:0 ] || fail "job exit code $(field ExitCode)"
[ "$(field Restarts)" = 1 ] || fail "job restarted $(field Restarts) times, want 1 (the requeue)"
[ -f "$jobout" ] || fail "no job output $jobout"
for pat in "job $id start 0 on" "SIGUSR1: asking vlmae to checkpoint" "signal received: checkpointing" \
           "checkpointed (exit 99): requeueing job $id" "job $id start 1 on" "resumed from " \
           "vlmae exited with status 0"; do
    grep -qF "$pat" "$jobout" || fail "job output lacks '$pat'"
done
steps=$(grep -oE '"step": [0-9]+' "$run/log.jsonl" | grep -oE '[0-9]+$' | tr '\n' ' ')
[ "$steps" = "$(seq -s ' ' 1 "$STEPS") " ] || fail "log.jsonl steps: $steps (want 1..$STEPS, each once)"
ckpt=$(printf '%s/ckpt-%08d.h5' "$run" "$STEPS")
[ -s "$ckpt" ] || fail "no final checkpoint $ckpt"
echo "---- job output $jobout"
cat "$jobout"
echo "test_slurm: ok: job $id COMPLETED after one requeue, steps 1..$STEPS logged, $(basename "$ckpt") written"
