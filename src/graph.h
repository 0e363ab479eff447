// graph.h: tensors, the activation arena and the autograd tape.
//
// Model code is written forward-only: every g_* call runs the op's forward through the backend
// (ops.h) at once and, when any input carries a gradient, records a node on the tape.
// graph_backward() walks the tape in reverse calling each op's backward. There is no other
// autograd machinery: one switch in graph.c.
//
// Memory: parameters and their gradients live in flat buffers owned by a ParamSet (params.h);
// everything created during a step (activations, their gradients, saved statistics, index lists)
// comes from one Arena that is reset at the start of each step. The arena is sized by a planning
// step at start-up (arena_plan_begin/arena_plan_end), after which it is one allocation and a step
// never calls malloc.
#ifndef VLMAE_GRAPH_H
#define VLMAE_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "rng.h"

typedef struct Tensor {
    float *data;
    float *grad;  // NULL when no gradient flows into this tensor
    int ndim;
    int shape[4];
    size_t n;
} Tensor;

typedef struct Arena {
    char *base;      // the single block (fixed mode)
    size_t cap, used, peak;
    int planning;    // 1: every alloc is its own malloc, tallied; reset frees them
    void **chunks;
    int n_chunks, cap_chunks;
} Arena;

void arena_plan_begin(Arena *a);
// Ends planning: frees the planning chunks and allocates one block of the peak size (+ margin).
void arena_plan_end(Arena *a);
void *arena_alloc(Arena *a, size_t bytes);  // 64-byte aligned, not zeroed
void *arena_calloc(Arena *a, size_t bytes);
void arena_reset(Arena *a);
void arena_free(Arena *a);

typedef struct Node Node;

typedef struct Graph {
    const Ops *ops;
    Arena *arena;
    Node *nodes;
    int n_nodes, cap_nodes;
    int grad_enabled;  // 0: nothing is recorded and no activation gradient is allocated
    int training;      // 0: dropout is the identity
    Rng rng;           // dropout masks
} Graph;

void graph_init(Graph *g, const Ops *ops, Arena *arena, int cap_nodes);
void graph_free(Graph *g);
// Forget the tape (the arena is reset separately by the owner of the step).
void graph_clear(Graph *g);
// Backpropagate from every tensor whose grad the caller has seeded (e.g. loss->grad[0] = w).
void graph_backward(Graph *g);

// Tensor construction. needs_grad allocates a zeroed gradient (only when g->grad_enabled).
Tensor *g_tensor(Graph *g, int ndim, const int *shape, int needs_grad);
Tensor *g_tensor2(Graph *g, int d0, int d1, int needs_grad);
// A constant tensor holding a copy of host data (inputs, masks, targets).
Tensor *g_const(Graph *g, const float *data, int d0, int d1);
// A view of n values of t starting at offset (shares data and grad).
Tensor *g_view(Graph *g, Tensor *t, size_t offset, int d0, int d1);
int32_t *g_ints(Graph *g, const int32_t *src, int n);  // copy of an index list into the arena

// Ops. Shapes: a tensor of width D is read as (n/D, D) rows.
Tensor *g_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b);  // x (M,K), w (N,K) -> (M,N)
Tensor *g_layernorm(Graph *g, Tensor *x, Tensor *w, Tensor *b, float eps);
Tensor *g_gelu(Graph *g, Tensor *x);
Tensor *g_add(Graph *g, Tensor *a, Tensor *b);
Tensor *g_add_bcast(Graph *g, Tensor *a, Tensor *b);  // a (R, n) + b (n)
Tensor *g_dropout(Graph *g, Tensor *x, float p);
// max(x, 0): the backend's dropout op with rate 0 and the keep-mask x > 0 (no op of its own).
Tensor *g_relu(Graph *g, Tensor *x);
// q/k/v: source tensors read with an offset and row stride (so one fused qkv tensor can serve).
Tensor *g_attention(Graph *g, Tensor *q, int q_off, int ldq, Tensor *k, int k_off, int ldk,
                    Tensor *v, int v_off, int ldv, const float *mask, int B, int Tq, int Tk, int C,
                    int H, int causal, float p_drop);
Tensor *g_xent(Graph *g, Tensor *logits, const int32_t *labels, const float *soft, float alpha);
Tensor *g_l2norm(Graph *g, Tensor *x);
Tensor *g_div_scalar(Graph *g, Tensor *x, Tensor *s);
Tensor *g_mse_rows(Graph *g, Tensor *pred, const float *target, const float *w);
Tensor *g_l1(Graph *g, Tensor *a, const float *b);
Tensor *g_gather_rows(Graph *g, Tensor *x, int D, const int32_t *idx, int n);
Tensor *g_concat_rows(Graph *g, Tensor **parts, int count, int D);

#endif
