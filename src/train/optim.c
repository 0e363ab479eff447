// optim.c: AdamW and the warm-up + cosine learning-rate schedule.
#include "train/optim.h"

#include <math.h>
#include <string.h>

#include "engine/common.h"
#include "engine/ops.h"

void adamw_init(AdamW *o, const ParamSet *ps, float beta1, float beta2, float eps, float wd) {
    memset(o, 0, sizeof(*o));
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps, o->weight_decay = wd;
    o->n = ps->total;
    o->m = callocCheck(o->n, sizeof(float));
    o->v = callocCheck(o->n, sizeof(float));
    o->decay = callocCheck(o->n, 1);
    for (int i = 0; i < ps->count; i++)
        memset(o->decay + ps->p[i].offset, ps->p[i].decay ? 1 : 0, ps->p[i].n);
    o->ops = &ops_cpu;
    o->dm = o->m, o->dv = o->v, o->ddecay = o->decay;
}

void adamw_step_on(AdamW *o, float *p, const float *g, float lr) {
    o->t++;
    o->ops->adamw_step(p, g, o->dm, o->dv, o->ddecay, o->n, lr, o->beta1, o->beta2, o->eps,
                       o->weight_decay, o->t);
}

void adamw_step(AdamW *o, ParamSet *ps, float lr) {
    if (!o->ops->host_memory) die("adamw_step: the moments live on %s; use adamw_step_on", o->ops->name);
    adamw_step_on(o, ps->data, ps->grad, lr);
}

void adamw_use_backend(AdamW *o, const Ops *ops) {
    if (ops == o->ops) return;
    if (!o->ops->host_memory) die("adamw_use_backend: already on %s", o->ops->name);
    o->ops = ops;
    if (ops->host_memory) {
        o->dm = o->m, o->dv = o->v, o->ddecay = o->decay;
        return;
    }
    size_t bytes = o->n * sizeof(float);
    o->dm = ops->mem_alloc(bytes), o->dv = ops->mem_alloc(bytes), o->ddecay = ops->mem_alloc(o->n);
    ops->copy_h2d(o->ddecay, o->decay, o->n);
    adamw_to_device(o);
}

void adamw_to_host(AdamW *o) {
    if (o->ops->host_memory) return;
    o->ops->copy_d2h(o->m, o->dm, o->n * sizeof(float));
    o->ops->copy_d2h(o->v, o->dv, o->n * sizeof(float));
}

void adamw_to_device(AdamW *o) {
    if (o->ops->host_memory) return;
    o->ops->copy_h2d(o->dm, o->m, o->n * sizeof(float));
    o->ops->copy_h2d(o->dv, o->v, o->n * sizeof(float));
}

void adamw_free(AdamW *o) {
    if (o->ops && !o->ops->host_memory) o->ops->mem_free(o->dm), o->ops->mem_free(o->dv), o->ops->mem_free(o->ddecay);
    free(o->m), free(o->v), free(o->decay);
    memset(o, 0, sizeof(*o));
}

float lr_at(const LrSchedule *s, int64_t step) {
    if (step < s->warmup_steps)
        return s->warmup_lr + (s->lr - s->warmup_lr) * (float)step / (float)s->warmup_steps;
    int64_t span = s->total_steps - s->warmup_steps;
    if (span <= 0 || step >= s->total_steps) return s->min_lr;
    double prog = (double)(step - s->warmup_steps) / (double)span;
    return (float)(s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(M_PI * prog)));
}
