#!/bin/bash
# tests/slurm/selfcheck.sh -- quick check of the private Slurm cluster harness (start.sh/stop.sh)
# and of jobs/pretrain_4m.slurm's launch logic, without vlmae: a stand-in program takes its place.
# A failure here is the harness's or the job script's, not the trainer's (tests/test_slurm.sh runs
# the real thing). Checks, on one node with 2 tasks:
#   - srun -n 2 (tasks, SLURM_PROCID) and the MPI plugins srun offers;
#   - an MPI program (built with mpicc, if there) under srun --mpi=pmix and under mpirun in a batch
#     job: the two launchers jobs/pretrain_4m.slurm supports;
#   - sbatch --gpus-per-node=0 overriding a #SBATCH --gpus-per-node=8 line on a node without GPUs;
#   - jobs/pretrain_4m.slurm with LAUNCHER=srun and LAUNCHER=mpirun: the arguments the ranks get,
#     and SIGUSR1 to the batch shell (scancel --batch, like --signal=B:USR1@600) reaching every
#     rank; the stand-in then exits 99 and, with MAX_REQUEUES=0, the job ends with exit code 99.
# Exit 0 pass, 77 skip (no slurmctld/slurmd/munged), 1 fail. Run from anywhere:
#   tests/slurm/selfcheck.sh           (SLURM_TEST_KEEP=1 keeps the cluster directory, logs included)
# make check runs shell tests with $(SHELL), which may be a POSIX sh: this one needs bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
PATH=$PATH:/usr/sbin:/sbin
for prog in slurmctld slurmd munged sbatch srun scontrol; do
    command -v "$prog" >/dev/null 2>&1 || { echo "selfcheck: $prog not installed: skip"; exit 77; }
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}

dir=$(mktemp -d /tmp/vlmae-slurm.XXXXXX) || exit 1
work="$dir/work"
trap '"$here/stop.sh" "$dir"' EXIT
fail() {
    echo "selfcheck: FAIL: $*"
    for f in "$work"/*.out "$work"/logs/*.out "$dir"/log/slurmctld.log "$dir"/log/slurmd.log; do
        [ -f "$f" ] && { echo "---- $f"; tail -n 30 "$f"; }
    done
    exit 1
}

"$here/start.sh" "$dir" || exit 1
# shellcheck disable=SC1091
. "$dir/env"
mkdir -p "$work/logs" && cd "$work" || exit 1

# Waits for a job to leave the queue (timeout $2 s); prints its final JobState and ExitCode.
job_end() {
    local id=$1 t=$2 info
    for _ in $(seq "$t"); do
        info=$(scontrol show job "$id" 2>/dev/null | grep -oE '(JobState|ExitCode)=[^ ]+' | tr '\n' ' ')
        case $info in *PENDING*|*RUNNING*|*CONFIGURING*|*COMPLETING*|*REQUEUE*|"") sleep 1 ;; *) echo "$info"; return ;; esac
    done
    scancel "$id"
    echo "TIMEOUT $info"
}

# ---- srun ---------------------------------------------------------------------------------------------
out=$(timeout 60 srun -n 2 bash -c 'echo "task $SLURM_PROCID of $SLURM_NTASKS"' 2>&1) || fail "srun -n 2: $out"
[ "$(echo "$out" | sort | tr '\n' ,)" = "task 0 of 2,task 1 of 2," ] || fail "srun -n 2 printed: $out"
echo "selfcheck: srun -n 2 ok; srun --mpi=list: $(srun --mpi=list 2>&1 | sed -n 's/^\t//p' | tr '\n' ' ')"

# ---- MPI ---------------------------------------------------------------------------------------------
if command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then
    cat >hello.c <<'EOF'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, sum = 0, one = 1;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("hello %d of %d, sum %d\n", rank, size, sum);
    MPI_Finalize();
    return sum == size ? 0 : 1;
}
EOF
    mpicc -o hello hello.c || fail "mpicc"
    out=$(timeout 60 srun -n 2 --mpi=pmix ./hello 2>&1) || fail "srun --mpi=pmix ./hello: $out"
    [ "$(echo "$out" | grep -c 'of 2, sum 2')" -eq 2 ] || fail "srun --mpi=pmix ./hello printed: $out"
    echo "selfcheck: MPI under srun --mpi=pmix ok"
    id=$(sbatch --parsable -n 2 -o mpirun.out --wrap "mpirun -np 2 ./hello") || fail "sbatch mpirun"
    st=$(job_end "$id" 60)
    [ "$(grep -c 'of 2, sum 2' mpirun.out)" -eq 2 ] || fail "mpirun in a batch job ($st)"
    echo "selfcheck: MPI under mpirun in a batch job ok"
else
    echo "selfcheck: no mpicc/mpirun: MPI checks skipped"
fi

# ---- GPU request overridden on the command line -------------------------------------------------------
cat >gpu.sbatch <<'EOF'
#!/bin/bash
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --output=gpu.out
srun bash -c 'echo "task $SLURM_PROCID"'
EOF
id=$(sbatch --parsable --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 gpu.sbatch) ||
    fail "sbatch --gpus-per-node=0 rejected"
st=$(job_end "$id" 60)
case $st in *COMPLETED*ExitCode=0:0*) ;; *) fail "GPU override job: $st" ;; esac
[ "$(grep -c '^task' gpu.out)" -eq 2 ] || fail "GPU override job ran $(grep -c '^task' gpu.out) tasks"
echo "selfcheck: sbatch --gpus-per-node=0 overrides #SBATCH --gpus-per-node=8"

# ---- jobs/pretrain_4m.slurm with a stand-in vlmae -----------------------------------------------------
# Each rank records its arguments, then waits for SIGUSR1 (exit 99, like vlmae's signal checkpoint).
cat >fake-vlmae <<'EOF'
#!/bin/bash
# mpirun inside an allocation: every rank inherits the batch step's SLURM_PROCID=0; OMPI_* first.
rank=${OMPI_COMM_WORLD_RANK:-${SLURM_PROCID:-x}}
args=$(printf '[%s]' "$@")
while [ $# -gt 0 ]; do [ "$1" = --run-dir ] && run_dir=$2; shift; done
printf '%s\n' "$args" >"$run_dir/args.$rank"
# Like vlmae's collective stop: no rank exits before both have seen the signal (mpirun ends the
# whole job as soon as one rank exits non-zero).
on_usr1() {
    echo "rank $rank: SIGUSR1"
    touch "$run_dir/usr1.$rank"
    for _ in $(seq 50); do [ -e "$run_dir/usr1.0" ] && [ -e "$run_dir/usr1.1" ] && break; sleep 0.1; done
    exit 99
}
trap on_usr1 USR1
touch "$run_dir/started.$rank"
for _ in $(seq 1200); do sleep 0.1; done
echo "rank $rank: no signal within 120 s"
exit 0
EOF
chmod +x fake-vlmae
touch cfg.yaml
for launcher in srun mpirun; do
    rd="$work/run-$launcher"
    id=$(LAUNCHER=$launcher VLMAE="$work/fake-vlmae" CONFIG=cfg.yaml RUN_DIR="$rd" DATA="$work" \
         MAX_REQUEUES=0 EXTRA_ARGS="--set train.max_steps=6 --set 'a.b=x y'" \
         sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 \
         "$srcdir/jobs/pretrain_4m.slurm" --set c=d) || fail "sbatch jobs/pretrain_4m.slurm ($launcher)"
    out="$work/logs/vlmae-pretrain-4m-$id.out"
    for _ in $(seq 60); do
        [ -e "$rd/started.0" ] && [ -e "$rd/started.1" ] && break
        sleep 1
    done
    [ -e "$rd/started.0" ] && [ -e "$rd/started.1" ] || { scancel "$id"; fail "$launcher: ranks did not start"; }
    want="[pretrain][-c][cfg.yaml][--run-dir][$rd][--resume][auto][--set][train.max_steps=6][--set][a.b=x y][--set][c=d]"
    for r in 0 1; do
        [ "$(cat "$rd/args.$r")" = "$want" ] || fail "$launcher: rank $r got: $(cat "$rd/args.$r")"
    done
    scancel --batch --signal=USR1 "$id" || fail "scancel --batch --signal=USR1"
    st=$(job_end "$id" 60)
    case $st in *ExitCode=99:0*) ;; *) fail "$launcher: job ended with $st, want exit code 99" ;; esac
    [ -e "$rd/usr1.0" ] && [ -e "$rd/usr1.1" ] || fail "$launcher: not every rank got SIGUSR1"
    grep -q 'not requeueing (MAX_REQUEUES=0)' "$out" || fail "$launcher: no 'not requeueing' line"
    echo "selfcheck: jobs/pretrain_4m.slurm, LAUNCHER=$launcher: arguments and SIGUSR1 forwarding ok"
done

echo "selfcheck: ok"
