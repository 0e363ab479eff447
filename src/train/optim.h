// optim.h: AdamW over the flat parameter buffer and the learning-rate schedule.
#ifndef VLMAE_OPTIM_H
#define VLMAE_OPTIM_H

#include <stdint.h>

#include "model/params.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float *m, *v;     // first and second moments, same layout as the parameters (host)
    uint8_t *decay;   // per-value weight-decay factor (0 or 1), built from ParamInfo.decay
    size_t n;
    int64_t t;        // steps taken (bias correction)
    // Where the update runs (adamw_use_backend): ops_cpu with dm/dv/ddecay = m/v/decay by
    // default; on a device backend, device copies (the host ones are then a mirror, refreshed by
    // adamw_to_host for checkpoints).
    const struct Ops *ops;
    float *dm, *dv;
    uint8_t *ddecay;
} AdamW;

void adamw_init(AdamW *o, const ParamSet *ps, float beta1, float beta2, float eps, float wd);
// One update at learning rate lr with the gradients in ps->grad (PyTorch AdamW semantics:
// p -= lr * wd * p; then the Adam step with bias correction).
void adamw_step(AdamW *o, ParamSet *ps, float lr);
// The same on the backend's buffers: p, g are (n) device pointers (the model's ModelDevice).
void adamw_step_on(AdamW *o, float *p, const float *g, float lr);
// Move the moments to ops' memory (copying the host values); host-memory backends share them.
void adamw_use_backend(AdamW *o, const struct Ops *ops);
void adamw_to_host(AdamW *o);    // device moments -> host (before a checkpoint)
void adamw_to_device(AdamW *o);  // host moments -> device (after loading one)
void adamw_free(AdamW *o);

typedef struct {
    float lr, warmup_lr, min_lr;
    int64_t warmup_steps, total_steps;
} LrSchedule;

// Linear warm-up from warmup_lr to lr over warmup_steps, then cosine from lr to min_lr at
// total_steps (held at min_lr after).
float lr_at(const LrSchedule *s, int64_t step);

#endif
