// vqa.h: the VQA task's pure pieces (answer tables, the accuracy, the candidate ranking:
// vqa_answers.c), exposed for tests/test_vqa_metrics.c. The task itself is task_vqa in vqa.c.
#ifndef VLMAE_TASKS_VQA_H
#define VLMAE_TASKS_VQA_H

#define VQA_MAX_ANSWERS 64   // distinct answers kept per question
#define VQA_ANSWER_MAX 128   // bytes of one answer (longer ones are truncated)

typedef struct {
    int n;
    char text[VQA_MAX_ANSWERS][VQA_ANSWER_MAX];
    float weight[VQA_MAX_ANSWERS];  // ALBEF's loss weight (count / #answers; VG: 0.5)
    int count[VQA_MAX_ANSWERS];     // annotators who gave it
} VqaAnswers;

// Parses a shard's answer block ("answer\tweight\tcount\n" lines; a missing count is 1). Returns
// the number of answers (0 for "").
int vqa_parse_answers(const char *block, VqaAnswers *out);

// VQA accuracy of a predicted answer against the annotators' answers, in [0, 1]. Answers are
// compared after lower-casing and trimming spaces (the official evaluation's punctuation, digit
// and article normalisation is not applied: candidate answers come from the answer list, already
// normalised). With N = total count:
//   N >= 10 (VQA v2: ten annotators): the official formula, the mean over the N leave-one-out
//           subsets of min(1, #matches in the subset / 3);
//   N < 10: min(1, #matches / min(3, N)) (a question with one answer, as the synthetic data and
//           VG-QA have, is scored by exact match).
double vqa_accuracy(const char *pred, const VqaAnswers *gt);

// ALBEF's rank_answer: the k candidates of highest first-token probability (p, n candidates),
// in descending order (ties: lower index first) into ids. Returns min(k, n).
int vqa_topk(const float *p, int n, int k, int *ids);
// ...then re-ranked by log p_first - seq_loss (seq_loss: the decoder's summed token
// cross-entropy of the whole answer, first token included, as ALBEF computes it). Returns the
// position in 0..k-1 of the best (ties: the earlier).
int vqa_rerank(const float *p_first, const float *seq_loss, int k);

#endif
