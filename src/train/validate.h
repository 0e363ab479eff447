// validate.h: held-out validation during pre-training. The losses of the pre-training objective
// on data.val shards, every train.val_every steps: the same step as training (same objective,
// masks, ITC against the current queue) with dropout off, no distillation (alpha 0, so the
// numbers are comparable across the ramp) and a fixed random stream, so that two evaluations of
// the same parameters give the same numbers and the curve moves only when the model does.
// Nothing of the training state changes: no parameter, momentum, queue, optimizer or data
// position; the gradients the step leaves are zeroed.
#ifndef VLMAE_VALIDATE_H
#define VLMAE_VALIDATE_H

#include <stdint.h>

#include "data/loader.h"
#include "train/trainer.h"

typedef struct {
    double itc, itm, mlm, rmim, ifr, total;  // means over the counted batches of all ranks
    int64_t batches;                         // full batches counted, all ranks
} ValLosses;

// One pass over the eval-mode loader `val` (opened with the training batch size; its short last
// batches are skipped, since the step is planned for full batches), at most max_batches per
// rank (0 = the whole pass). Collective: every rank calls it at the same step. Returns 0, -1
// when no rank had a full batch (out->batches = 0), -2 when a rank's loader failed (reported).
int validate_pretrain(Trainer *t, Loader *val, int64_t max_batches, ValLosses *out);

#endif
