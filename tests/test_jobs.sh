#!/bin/bash
# test_jobs.sh: the training and fine-tuning job scripts (jobs/pretrain_4m.slurm,
# jobs/finetune_*.slurm) as a user submits them to a multi-node allocation, with srun and mpirun
# replaced by stand-ins that print their command line (tests/test_slurm.sh runs one job on a real
# single-node Slurm):
# - each script parses (bash -n); its #SBATCH lines ask for as many tasks per node as GPUs per
#   node, and its header shows the two-node command line with those numbers and its own name;
# - Slurm's environment of 2 nodes x 8 GPUs, 16 tasks: srun launches the vlmae command once with
#   --resume auto; mpirun gets -np 16 and passes NCCL_* / VLMAE_* variables with -x (Open MPI
#   forwards nothing else to the other nodes);
# - 8 tasks per node on 4 GPUs per node ("h100:4", "8(x2)" as Slurm writes them) is refused
#   before anything is launched, naming both counts; VLMAE_ALLOW_GPU_SHARING=1 lets it through.
set -u
S=$(cd "${top_srcdir:-.}" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/test_jobs.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail=0
ok() { echo "ok $*"; }
bad() { echo "FAIL $*"; fail=1; }

# Stand-in launchers: print the command line, one word per line after a marker.
mkdir -p "$dir/bin"
for l in srun mpirun; do
    printf '#!/bin/sh\necho "LAUNCH %s"\nfor a in "$@"; do echo "ARG $a"; done\n' "$l" >"$dir/bin/$l"
    chmod +x "$dir/bin/$l"
done
touch "$dir/ckpt.h5"

# run_job SCRIPT OUTFILE VAR=VALUE...: the script as Slurm starts it on the first node.
run_job() {
    local script=$1 out=$2
    shift 2
    (cd "$dir" && env -i PATH="$dir/bin:/usr/bin:/bin" HOME="$dir" VLMAE=/bin/true \
        CONFIG="$S/configs/tiny.yaml" INIT="$dir/ckpt.h5" RUN_DIR="$dir/run" DATA="$dir" \
        SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=2 SLURM_JOB_NODELIST='gpu[01-02]' SLURM_NTASKS=16 \
        SLURM_CPUS_PER_TASK=8 "$@" bash "$script") >"$out" 2>&1
}

scripts=("$S/jobs/pretrain_4m.slurm" "$S"/jobs/finetune_*.slurm)
[ ${#scripts[@]} -ge 7 ] || bad "expected pretrain_4m.slurm and 6 finetune_*.slurm, found ${#scripts[@]}"
for script in "${scripts[@]}"; do
    name=$(basename "$script")
    bash -n "$script" || { bad "$name: bash -n"; continue; }
    tpn=$(sed -n 's/^#SBATCH --ntasks-per-node=\([0-9]*\)$/\1/p' "$script")
    gpn=$(sed -n 's/^#SBATCH --gpus-per-node=\([0-9]*\)$/\1/p' "$script")
    if [ -n "$tpn" ] && [ "$tpn" = "$gpn" ] && grep -q '^#SBATCH --nodes=1$' "$script"; then
        ok "$name: #SBATCH one node x $gpn GPUs, $tpn tasks per node"
    else
        bad "$name: #SBATCH --nodes=1, --ntasks-per-node ($tpn) = --gpus-per-node ($gpn)"
    fi
    if grep -qF "#   sbatch --nodes=2 --ntasks-per-node=$gpn --gpus-per-node=$gpn jobs/$name" "$script"; then
        ok "$name: header shows the two-node command line"
    else
        bad "$name: header lacks '#   sbatch --nodes=2 --ntasks-per-node=$gpn --gpus-per-node=$gpn jobs/$name'"
    fi

    run_job "$script" "$dir/srun.out" SLURM_GPUS_PER_NODE=8 SLURM_NTASKS_PER_NODE='8(x2)'
    rc=$?
    if [ $rc = 0 ] && grep -qx 'LAUNCH srun' "$dir/srun.out" && grep -qx 'ARG /bin/true' "$dir/srun.out" &&
        grep -qx 'ARG auto' "$dir/srun.out" && grep -q 'on 2 node(s) gpu\[01-02\]: 16 ranks' "$dir/srun.out"; then
        ok "$name: 2 nodes x 8 GPUs under srun"
    else
        bad "$name: 2 nodes x 8 GPUs under srun (status $rc)"; cat "$dir/srun.out"
    fi

    run_job "$script" "$dir/mpirun.out" SLURM_GPUS_PER_NODE=8 SLURM_NTASKS_PER_NODE='8(x2)' \
        LAUNCHER=mpirun NCCL_SOCKET_IFNAME=ib0 VLMAE_CUDA_DETERMINISTIC=1
    rc=$?
    args=$(grep '^ARG ' "$dir/mpirun.out" | cut -c5- | tr '\n' ' ')
    if [ $rc = 0 ] && grep -qx 'LAUNCH mpirun' "$dir/mpirun.out" && [[ $args == *"-np 16 "* ]] &&
        [[ $args == *"-x NCCL_SOCKET_IFNAME "* ]] && [[ $args == *"-x VLMAE_CUDA_DETERMINISTIC "* ]]; then
        ok "$name: mpirun -np 16 passes NCCL_* and VLMAE_*"
    else
        bad "$name: mpirun (status $rc): $args"; cat "$dir/mpirun.out"
    fi

    run_job "$script" "$dir/over.out" SLURM_GPUS_PER_NODE=h100:4 SLURM_NTASKS_PER_NODE='8(x2)'
    rc=$?
    if [ $rc = 2 ] && ! grep -q '^LAUNCH' "$dir/over.out" &&
        grep -q "$name: 8 tasks per node but 4 GPUs per node" "$dir/over.out"; then
        ok "$name: 8 tasks on 4 GPUs refused before launch"
    else
        bad "$name: 8 tasks on 4 GPUs (status $rc)"; cat "$dir/over.out"
    fi
    run_job "$script" "$dir/share.out" SLURM_GPUS_PER_NODE=h100:4 SLURM_NTASKS_PER_NODE='8(x2)' \
        VLMAE_ALLOW_GPU_SHARING=1
    rc=$?
    if [ $rc = 0 ] && grep -qx 'LAUNCH srun' "$dir/share.out"; then
        ok "$name: VLMAE_ALLOW_GPU_SHARING=1 launches"
    else
        bad "$name: VLMAE_ALLOW_GPU_SHARING=1 (status $rc)"; cat "$dir/share.out"
    fi
done
exit $fail
