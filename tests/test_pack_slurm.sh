#!/bin/sh
# test_pack_slurm.sh: jobs/pack_4m.slurm's array-task logic, run without Slurm on the synthetic
# dataset: tasks 0..2 of DATASETS="coco:albef:2 vg:albef:1" produce exactly the shards of one
# plain `vlmae pack` run per dataset (byte-identical files), a rerun keeps them, and bad task ids
# or array sizes are refused.
set -eu
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
VLMAE=$top_builddir/vlmae
[ -x "$VLMAE" ] || { echo "test_pack_slurm: $VLMAE not built"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_pack_slurm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_pack_slurm: FAIL: $*"; for f in "$tmp"/log*; do [ -f "$f" ] && cat "$f"; done; exit 1; }

"$VLMAE" synth --out "$tmp/raw" --images 60 --quiet

unset SLURM_JOB_ID SLURM_ARRAY_TASK_COUNT 2>/dev/null || true
export DATA="$tmp" VLMAE SHARD_SIZE=12 THREADS=2
export DATASETS="coco:albef:2 vg:albef:1"
export ARGS_coco="--ann $tmp/raw/pretrain.json --images $tmp/raw"
export ARGS_vg="--ann $tmp/raw/vg.json --images $tmp/raw"

for i in 0 1 2; do
    SLURM_ARRAY_TASK_ID=$i bash "$top_srcdir/jobs/pack_4m.slurm" >"$tmp/log$i" 2>&1 ||
        fail "task $i exited with $?"
done
grep -q "slice 1 of 2" "$tmp/log1" || fail "task 1 is not coco slice 1 of 2"
grep -q "dataset vg (albef), slice 0 of 1" "$tmp/log2" || fail "task 2 is not vg"

# The same shards as a single run of each dataset.
"$VLMAE" pack albef --ann "$tmp/raw/pretrain.json" --images "$tmp/raw" --dataset coco \
    --out "$tmp/single/coco" --shard-size 12 --quiet 2>"$tmp/log_single"
"$VLMAE" pack albef --ann "$tmp/raw/vg.json" --images "$tmp/raw" --dataset vg \
    --out "$tmp/single/vg" --shard-size 12 --quiet 2>>"$tmp/log_single"
n=0
for f in "$tmp"/single/*.h5; do
    b=$(basename "$f")
    cmp -s "$f" "$tmp/shards/$b" || fail "$b differs between the array tasks and a single run"
    n=$((n + 1))
done
[ "$n" -ge 4 ] || fail "expected several shards, got $n"
[ "$(ls "$tmp"/shards/*.h5 | wc -l)" -eq "$n" ] || fail "the array wrote extra shards"
ls "$tmp"/shards | grep -q tmp && fail "temporary files left behind"

# A rerun (requeue) keeps the complete shards.
SLURM_ARRAY_TASK_ID=0 bash "$top_srcdir/jobs/pack_4m.slurm" >"$tmp/log_rerun" 2>&1 || fail "rerun"
grep -q "already present and valid, kept" "$tmp/log_rerun" || fail "rerun did not keep the shards"

# Refusals: a task beyond the table, an array of the wrong size.
if SLURM_ARRAY_TASK_ID=3 bash "$top_srcdir/jobs/pack_4m.slurm" >"$tmp/log_bad" 2>&1; then
    fail "task 3 of 3 slices was accepted"
fi
grep -q "beyond the 3 slices" "$tmp/log_bad" || fail "no message for task 3"
if SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=5 bash "$top_srcdir/jobs/pack_4m.slurm" \
    >"$tmp/log_bad" 2>&1; then
    fail "an array of 5 tasks for 3 slices was accepted"
fi
grep -q -- "--array=0-2" "$tmp/log_bad" || fail "no hint for the array size"
echo "test_pack_slurm: ok ($n shards)"
