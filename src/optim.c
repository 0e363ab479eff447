// optim.c: AdamW and the warm-up + cosine learning-rate schedule.
#include "optim.h"

#include <math.h>
#include <string.h>

#include "common.h"

void adamw_init(AdamW *o, const ParamSet *ps, float beta1, float beta2, float eps, float wd) {
    memset(o, 0, sizeof(*o));
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps, o->weight_decay = wd;
    o->n = ps->total;
    o->m = callocCheck(o->n, sizeof(float));
    o->v = callocCheck(o->n, sizeof(float));
    o->decay = callocCheck(o->n, sizeof(float));
    for (int i = 0; i < ps->count; i++)
        for (size_t k = 0; k < ps->p[i].n; k++) o->decay[ps->p[i].offset + k] = (float)ps->p[i].decay;
}

void adamw_step(AdamW *o, ParamSet *ps, float lr) {
    o->t++;
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = o->weight_decay;
    float c1 = 1.0f - powf(b1, (float)o->t), c2 = 1.0f - powf(b2, (float)o->t);
    float *p = ps->data, *g = ps->grad, *m = o->m, *v = o->v, *dk = o->decay;
    size_t n = o->n;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        p[i] -= lr * wd * dk[i] * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

void adamw_free(AdamW *o) {
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
