// step.h: one pre-training step (forward + backward) of the objectives `vlmae`, `albef` and `tcl`.
// The step reads the model, writes parameter gradients (accumulating: the caller zeroes them),
// and leaves this rank's momentum features for the caller to all-gather and enqueue. It changes
// no other model state: the momentum EMA, the temperature clamp, the queue update and the
// optimizer belong to the trainer.
#ifndef VLMAE_STEP_H
#define VLMAE_STEP_H

#include "data/batch.h"
#include "engine/graph.h"
#include "model/choices.h"
#include "model/model.h"

typedef struct {
    float itc, itm, mlm, rmim, ifr;  // itc: the contrastive part (tcl: the mean of its six terms)
    float total;     // weighted sum
    float imc, lmi;  // tcl only (else 0), for the logs: mean of i2i and t2t; mean of the two LMI terms
} Losses;

typedef struct {
    Arena arena;      // device memory of the model's backend (m->dev.ops)
    Arena host;       // host lists, masks and inputs before upload; loss scalars
    Graph g;
    int B, T;
    StepChoices ch;   // the last step's choices (valid until the next step)
    float *img_m;     // (B,E) this step's momentum image features, for the queue
    float *txt_m;     // (B,E)
    int planned;
} Step;

// Sizes the arenas by a planning step on this batch shape (worst-case MLM masks), so later steps
// never allocate. Gradients it leaves behind are zeroed. The step runs on the model's backend
// (model_use_backend before this call).
void step_create(Step *s, Model *m, const Batch *shape_example);
void step_free(Step *s);
// preset: replay these choices instead of drawing them (the parity test); NULL in training.
void pretrain_step(Step *s, Model *m, const Batch *batch, float alpha, Rng *rng,
                   const StepChoices *preset, Losses *out);

#endif
