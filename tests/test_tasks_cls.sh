#!/bin/sh
# test_tasks_cls.sh: VQA, SNLI-VE and NLVR2 end to end on the synthetic dataset, with a tiny
# randomly initialised model (32 px, no dropout, no colour augmentation: the statements name
# colours), and `vlmae attnmap`:
#   synth (3000 images) -> vlmae pack vqa / ve / nlvr (train, val, test) and grounding ->
#   1. ve: 300 steps; mean of val and test accuracy >= 55% (chance 33.3%; measured 96.5%: the
#      synthetic hypotheses are largely decidable from their wording alone -- neutral ones name
#      materials, contradictions are short "there is a ..." statements -- so this shows the task
#      learns, not that it looks). `vlmae eval` of the last checkpoint (+ its .extra head) gives
#      the same test accuracy as the end of fine-tuning.
#   2. nlvr2: 4 epochs (600 steps, 2400 pairs); mean of val and test accuracy (600 pairs) >= 55%
#      (chance 50%: both labels are equally frequent; measured 57.3-60.2% over five seeds).
#   3. vqa: 1 epoch (450 steps); the answer decoder ranks the 26 candidates of answer_list.json,
#      writes vqa_result_test.json ([{"question_id", "answer"}] for every test question) and a VQA
#      accuracy >= 20% (always "yes" scores 7-9%; measured 37.6%).
#   4. attnmap of the NLVR2 model on three test images: one PNG overlay each, attnmap.tsv, the
#      statistic printed.
# About a minute on 2 cores (OPENBLAS_NUM_THREADS=1: the tiny model's GEMMs gain nothing from
# OpenBLAS threads, whose spinning costs a lot of system time next to OpenMP's).
set -eu
B=${top_builddir:-.}
VLMAE="$B/vlmae"
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

exit $fail
