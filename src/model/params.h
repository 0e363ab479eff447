// params.h: a set of named parameters in one flat buffer (and, optionally, one flat gradient
// buffer). The optimizer, the momentum EMA, the gradient all-reduce and checkpoints all work on
// the flat buffers; the model works on Tensor views into them.
#ifndef VLMAE_PARAMS_H
#define VLMAE_PARAMS_H

#include <stddef.h>

#include "engine/graph.h"

// Offsets of every parameter tensor in the flat buffers are multiples of this many floats.
#define PARAM_ALIGN 16

typedef struct {
    char name[96];
    int ndim;
    int shape[4];
    size_t offset, n;
    int decay;  // 1: AdamW weight decay applies (matrices); 0: biases, LayerNorm, 1-D params
    Tensor *t;
} ParamInfo;

typedef struct {
    ParamInfo *p;
    int count, cap;
    size_t total;   // floats in the flat buffers, alignment gaps included
    size_t values;  // parameter values (the sum of every tensor's n): what to report
    float *data;
    float *grad;  // NULL for a set that gets no gradients (momentum copies)
    int frozen;   // registration finished and buffers allocated
} ParamSet;

void params_init(ParamSet *ps);
// Registers a parameter; returns its tensor, whose data/grad are bound by params_alloc().
Tensor *params_add(ParamSet *ps, const char *name, int ndim, const int *shape, int decay);
Tensor *params_add1(ParamSet *ps, const char *name, int d0, int decay);
Tensor *params_add2(ParamSet *ps, const char *name, int d0, int d1, int decay);
void params_alloc(ParamSet *ps, int with_grad);
void params_zero_grad(ParamSet *ps);
const ParamInfo *params_find(const ParamSet *ps, const char *name);
void params_free(ParamSet *ps);

#endif
