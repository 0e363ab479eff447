// trainer.h: one optimizer step of pre-training on one rank, with everything around the model
// step: temperature clamp, momentum EMA, distillation-weight ramp, gradient all-reduce, the
// non-finite guard (agreed by all ranks), the queue update from the rank-ordered gather, AdamW
// with the warm-up + cosine schedule. The data loop, logging and checkpoints live in pretrain.c.
//
// Runs on the model's backend (model_use_backend before trainer_init): on a device backend the
// parameters, gradients, momentum copies, queues and AdamW moments stay on the device; per step
// only the inputs, the loss values, the in-batch ITM similarities and the momentum features
// (B x E) cross to the host. Gradients are averaged over ranks with NCCL when the build has it,
// otherwise through host buffers and MPI.
#ifndef VLMAE_TRAINER_H
#define VLMAE_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "model/step.h"
#include "train/dist.h"
#include "train/optim.h"

typedef enum { NONFINITE_STOP = 0, NONFINITE_SKIP = 1 } NonfinitePolicy;

typedef struct {
    float alpha;               // distillation weight
    int64_t alpha_ramp_steps;  // ramp alpha linearly from 0 over this many steps (0 = no ramp)
    LrSchedule lr;
    float beta1, beta2, eps, weight_decay;
    uint64_t seed;
    NonfinitePolicy nonfinite;
} TrainerOptions;

typedef struct {
    Model *m;
    const Dist *dist;
    TrainerOptions opt;
    Step step;
    AdamW adam;
    int64_t step_count;         // optimizer steps taken (the schedule's clock)
    int64_t skipped;            // steps skipped for non-finite values
    float *gather_img, *gather_txt;  // (world*B, E)
    float last_lr, last_alpha, last_temp;  // last_temp: after this step's clamp, before the update
    struct NcclDist *nccl;      // NCCL communicator (CUDA builds with NCCL, world > 1), else NULL
    char nonfinite_what[128];   // which value was not finite, for the report
    struct Watchdog *wd;        // phases of the step are marked here (watchdog.h); NULL: none
} Trainer;

void trainer_init(Trainer *t, Model *m, const Dist *d, const TrainerOptions *o, const Batch *shape);
void trainer_free(Trainer *t);
// Returns 0 after an update, 1 when the step was skipped (non-finite, policy skip), -1 when it
// was non-finite under policy stop (t->nonfinite_what says which value). Every rank returns the
// same value.
int trainer_step(Trainer *t, const Batch *batch, Losses *out);
// A WatchdogPoll (watchdog.h) for the trainer's communicator (trainer points to the Trainer):
// 1 with the reason in msg when NCCL reported an asynchronous error, else 0 (also without NCCL).
int trainer_comm_error(void *trainer, char *msg, size_t n);
// Host mirrors of everything a checkpoint holds (model and AdamW) from the device, and back.
void trainer_to_host(Trainer *t);
void trainer_to_device(Trainer *t);

#endif
