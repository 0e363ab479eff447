// params.c: named parameters in flat buffers (see params.h).
#include "model/params.h"

#include <string.h>

#include "engine/common.h"

void params_init(ParamSet *ps) { memset(ps, 0, sizeof(*ps)); }

Tensor *params_add(ParamSet *ps, const char *name, int ndim, const int *shape, int decay) {
    if (ps->frozen) die("parameter %s registered after allocation", name);
    if (ps->count == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 256;
        ps->p = realloc(ps->p, (size_t)ps->cap * sizeof(ParamInfo));
        if (!ps->p) die("out of memory registering parameters");
    }
    ParamInfo *pi = &ps->p[ps->count++];
    memset(pi, 0, sizeof(*pi));
    if (strlen(name) >= sizeof(pi->name)) die("parameter name too long: %s", name);
    strcpy(pi->name, name);
    pi->ndim = ndim;
    pi->n = 1;
    for (int i = 0; i < 4; i++) pi->shape[i] = i < ndim ? shape[i] : 1;
    for (int i = 0; i < ndim; i++) pi->n *= (size_t)shape[i];
    // Every tensor starts on a 16-float (64-byte) boundary, so that GEMM libraries take their
    // aligned kernels for every weight (cuBLAS falls back to slow paths on 4-byte alignment). The
    // gaps stay zero in data, gradients, moments and momentum copies: AdamW and the EMA keep them 0.
    pi->offset = (ps->total + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
    pi->decay = decay;
    ps->total = pi->offset + pi->n;
    ps->values += pi->n;
    pi->t = callocCheck(1, sizeof(Tensor));
    pi->t->ndim = ndim;
    pi->t->n = pi->n;
    memcpy(pi->t->shape, pi->shape, sizeof(pi->shape));
    return pi->t;
}

Tensor *params_add1(ParamSet *ps, const char *name, int d0, int decay) {
    int s[1] = {d0};
    return params_add(ps, name, 1, s, decay);
}

Tensor *params_add2(ParamSet *ps, const char *name, int d0, int d1, int decay) {
    int s[2] = {d0, d1};
    return params_add(ps, name, 2, s, decay);
}

void params_alloc(ParamSet *ps, int with_grad) {
    ps->total = (ps->total + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
    ps->data = callocCheck(ps->total, sizeof(float));
    ps->grad = with_grad ? callocCheck(ps->total, sizeof(float)) : NULL;
    for (int i = 0; i < ps->count; i++) {
        ParamInfo *pi = &ps->p[i];
        pi->t->data = ps->data + pi->offset;
        pi->t->grad = ps->grad ? ps->grad + pi->offset : NULL;
    }
    ps->frozen = 1;
}

void params_zero_grad(ParamSet *ps) {
    if (ps->grad) memset(ps->grad, 0, ps->total * sizeof(float));
}

const ParamInfo *params_find(const ParamSet *ps, const char *name) {
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->p[i].name, name) == 0) return &ps->p[i];
    return NULL;
}

void params_free(ParamSet *ps) {
    for (int i = 0; i < ps->count; i++) free(ps->p[i].t);
    free(ps->p);
    free(ps->data);
    free(ps->grad);
    memset(ps, 0, sizeof(*ps));
}
