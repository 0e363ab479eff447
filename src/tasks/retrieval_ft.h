// retrieval_ft.h: image-text retrieval fine-tuning (ALBEF's model_retrieval), shared by the
// retrieval task and weakly supervised grounding (which fine-tunes as retrieval on expressions).
//
// Step: the online encoders see the whole image (no MAE masking); ITC against [batch; queue] with
// every caption of the same image a positive: the queue also holds the image id of each entry
// (idx_queue, -100 = none), targets = alpha * softmax(momentum similarities) + (1 - alpha) *
// (idx == idx_all) / count; ITM over B positives + 2B hard negatives drawn from the in-batch
// similarities with every same-image pair excluded. loss = w_itc * itc + w_itm * itm (losses.*).
// The id queue is saved next to each checkpoint (CKPT.extra) so resume is exact.
#ifndef VLMAE_TASKS_RETRIEVAL_FT_H
#define VLMAE_TASKS_RETRIEVAL_FT_H

#include "tasks/finetune.h"

// `vlmae finetune` of retrieval-style training on task.train (returns the exit status).
int retrieval_ft_run(FtContext *cx);

// ITM hard negatives, ALBEF's retrieval fine-tuning: for row b draw j with probability
// softmax(sims[b, :B] + 1e-4) over the j whose image id differs from b's (same-image pairs have
// weight 0). When no other image is in the batch, a uniform j != b. scratch: B doubles.
void retrieval_hard_negatives(Rng *r, const float *sims, int ld, const int64_t *ids, int B, int32_t *neg,
                              double *scratch);

#endif
