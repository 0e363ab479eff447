// graph.h: tensors, the activation arena and the autograd tape.
//
// Model code is written forward-only: every g_* call runs the op's forward through the backend
// (ops.h) at once and, when any input carries a gradient, records a node on the tape.
// graph_backward() walks the tape in reverse calling each op's backward. There is no other
// autograd machinery: one switch in graph.c.
//
// Memory: parameters and their gradients live in flat buffers owned by a ParamSet (params.h);
// everything created during a step comes from two Arenas reset at the start of each step: the
// device arena (activations, their gradients, saved statistics, uploaded index lists and masks:
// the backend's memory, ops.h) and the host arena (Tensor structs, index lists and masks built on
// the host before upload, loss scalars). On the CPU backend they may be one arena. Arenas are
// sized by a planning step at start-up (arena_plan_begin/arena_plan_end), after which each is one
// allocation and a step never allocates.
//
// Pointer rule: Tensor.data / .grad are device pointers, except loss scalars (g_xent, g_mse_rows,
// g_l1), which live on the host so that their values and gradient seeds are plain floats. Index
// lists, labels and host-built masks given to g_* calls are HOST pointers (copied to the device);
// the attention mask, soft targets and the RMIM target/weight are DEVICE pointers (tensor data).
#ifndef VLMAE_GRAPH_H
#define VLMAE_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/ops.h"
#include "engine/rng.h"

typedef struct Tensor {
    float *data;
    float *grad;  // NULL when no gradient flows into this tensor (or, with release_grads, none yet)
    int ndim;
    int shape[4];
    size_t n;
    // release_grads (below): the gradient's buffer is made when backward first writes it
    int needs_grad;         // a gradient flows into this tensor
    int pooled;             // grad is a pool buffer, given back after the producer's backward
    struct Tensor *base;    // a view of base: its gradient is base's at base_off
    size_t base_off;
} Tensor;

typedef struct Arena {
    const Ops *dev;  // NULL: host memory; else this backend's mem_alloc/mem_zero (device arena)
    char *base;      // the single block (fixed mode)
    size_t cap, used;  // the block's size and its used prefix
    size_t over;     // bytes in chunks (planning; or fixed mode past the block)
    size_t peak;     // high-water mark of used + over
    int planning;    // 1: every alloc is a chunk of its own, tallied; reset frees them
    int grew;        // a fixed-mode step went past the block (noted once on stderr)
    struct { void *p; size_t bytes; } *chunks;
    int n_chunks, cap_chunks;
} Arena;

void arena_plan_begin(Arena *a, const Ops *dev);
// Ends planning: frees the planning chunks and allocates one block of the peak size (+ margin).
// A later step that needs more (data-dependent sizes beyond the planning step's) gets chunks on
// the side and a note on stderr, and the block grows to the new peak at the next reset: it never
// fails for want of a plan.
void arena_plan_end(Arena *a);
void *arena_alloc(Arena *a, size_t bytes);  // 64-byte aligned, not zeroed
void *arena_calloc(Arena *a, size_t bytes);  // zeroed (through the backend for a device arena)
void arena_reset(Arena *a);
void arena_free(Arena *a);
// Stack discipline inside a step: everything allocated after a mark can be released at once
// (e.g. the intermediates of a no-grad forward whose result was copied below the mark). The
// planning step releases too, so the planned size is the true high-water mark.
typedef struct { size_t used; int n_chunks; } ArenaMark;
ArenaMark arena_mark(const Arena *a);
void arena_release(Arena *a, ArenaMark mark);

typedef struct Node Node;

typedef struct Graph {
    const Ops *ops;
    Arena *arena;  // device memory
    Arena *host;   // host memory (== arena when the backend's memory is host memory and the
                   // owner passed no host arena)
    Node *nodes;
    int n_nodes, cap_nodes;
    int grad_enabled;  // 0: nothing is recorded and no activation gradient is allocated
    int training;      // 0: dropout is the identity
    Rng rng;           // one seed per dropout mask (the mask itself: ops->dropout_mask)
    // 1: activation gradients are not allocated with their tensors; backward makes each when it
    // is first written and gives it back to a pool (reused by later gradients of the same size)
    // once the op that produced the tensor has run its backward, so at most the gradients of the
    // "frontier" are alive instead of all of them. Only for graphs whose caller reads parameter
    // and loss gradients alone (the pre-training step); 0 (the default) keeps every activation
    // gradient to the end (Grad-CAM reads them).
    int release_grads;
    struct { float *p; size_t bytes; } *pool;  // free gradient buffers (device memory)
    int n_pool, cap_pool;
} Graph;

// host may be NULL when ops->host_memory (one arena for both).
void graph_init(Graph *g, const Ops *ops, Arena *arena, Arena *host, int cap_nodes);
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
// A constant (no gradient) copy of t's values, e.g. a parameter's value frozen for this step.
Tensor *g_copy(Graph *g, const Tensor *t);
// Host memory from the step's host arena (index lists, masks to upload), not zeroed.
void *g_host_alloc(Graph *g, size_t bytes);
// A view of n values of t starting at offset (shares data and grad).
Tensor *g_view(Graph *g, Tensor *t, size_t offset, int d0, int d1);
int32_t *g_ints(Graph *g, const int32_t *src, int n);  // device copy of a host index list

// A no-grad region: g_scope_begin marks the device arena; g_scope_end releases everything the
// region allocated there and dies if the region recorded a tape node (a backward would read
// released memory). Results must be copied into tensors created before the region.
typedef struct { ArenaMark mark; int n_nodes; } GraphScope;
GraphScope g_scope_begin(Graph *g);
void g_scope_end(Graph *g, GraphScope sc);

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
// mask: additive key mask (B, Tk), DEVICE pointer (e.g. a g_const's data), or NULL.
Tensor *g_attention(Graph *g, Tensor *q, int q_off, int ldq, Tensor *k, int k_off, int ldk,
                    Tensor *v, int v_off, int ldv, const float *mask, int B, int Tq, int Tk, int C,
                    int H, int causal, float p_drop);
// labels: host (M); soft: device (M, V) kept until backward (step memory), or NULL.
Tensor *g_xent(Graph *g, Tensor *logits, const int32_t *labels, const float *soft, float alpha);
Tensor *g_l2norm(Graph *g, Tensor *x);
Tensor *g_div_scalar(Graph *g, Tensor *x, Tensor *s);
// target (R, P), w (R): device, kept until backward.
Tensor *g_mse_rows(Graph *g, Tensor *pred, const float *target, const float *w);
Tensor *g_l1(Graph *g, Tensor *a, const float *b);  // b: device, kept until backward
Tensor *g_gather_rows(Graph *g, Tensor *x, int D, const int32_t *idx, int n);  // idx: host
Tensor *g_concat_rows(Graph *g, Tensor **parts, int count, int D);

#endif
