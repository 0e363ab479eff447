// optim.h: AdamW over the flat parameter buffer and the learning-rate schedule.
#ifndef VLMAE_OPTIM_H
#define VLMAE_OPTIM_H

#include <stdint.h>

#include "params.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float *m, *v;     // first and second moments, same layout as the parameters
    float *decay;     // per-value weight-decay factor (0 or 1), built from ParamInfo.decay
    size_t n;
    int64_t t;        // steps taken (bias correction)
} AdamW;

void adamw_init(AdamW *o, const ParamSet *ps, float beta1, float beta2, float eps, float wd);
// One update at learning rate lr with the gradients in ps->grad (PyTorch AdamW semantics:
// p -= lr * wd * p; then the Adam step with bias correction).
void adamw_step(AdamW *o, ParamSet *ps, float lr);
void adamw_free(AdamW *o);

typedef struct {
    float lr, warmup_lr, min_lr;
    int64_t warmup_steps, total_steps;
} LrSchedule;

// Linear warm-up from warmup_lr to lr over warmup_steps, then cosine from lr to min_lr at
// total_steps (held at min_lr after).
float lr_at(const LrSchedule *s, int64_t step);

#endif
