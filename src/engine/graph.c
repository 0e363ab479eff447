// graph.c: the activation arena, tensor construction and the autograd tape (see graph.h).
#include "engine/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

// ---------------------------------------------------------------------------------------------
// Arena

#define ARENA_ALIGN 64

void arena_plan_begin(Arena *a, const Ops *dev) {
    memset(a, 0, sizeof(*a));
    a->dev = dev;
    a->planning = 1;
}

static void *block_alloc(const Arena *a, size_t bytes) {
    if (a->dev) return a->dev->mem_alloc(bytes);
    void *p = aligned_alloc(ARENA_ALIGN, bytes);
    if (!p) die("out of memory for the arena (%zu MiB)", bytes >> 20);
    return p;
}

static void block_free(const Arena *a, void *p) {
    if (a->dev) a->dev->mem_free(p);
    else free(p);
}

// Frees the chunks [from, n_chunks).
static void free_chunks(Arena *a, int from) {
    for (int i = from; i < a->n_chunks; i++) {
        block_free(a, a->chunks[i].p);
        a->over -= a->chunks[i].bytes;
    }
    if (from < a->n_chunks) a->n_chunks = from;
}

// The block for the fixed mode: the high-water mark so far plus a margin (1% + 1 MiB).
static void size_block(Arena *a) {
    if (a->base) block_free(a, a->base);
    a->cap = a->peak + a->peak / 100 + (1u << 20);
    a->cap = (a->cap + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    a->base = block_alloc(a, a->cap);
}

void arena_plan_end(Arena *a) {
    arena_reset(a);
    a->planning = 0;
    size_block(a);
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t sz = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (sz == 0) sz = ARENA_ALIGN;
    void *p;
    if (!a->planning && a->used + sz <= a->cap) {
        p = a->base + a->used;
        a->used += sz;
    } else {
        // Planning: every allocation is a chunk of its own. Fixed mode past the block (a step
        // larger than the planning step): a chunk too, and the block grows at the next reset.
        if (!a->planning && !a->grew) {
            fprintf(stderr, "vlmae: note: a step needed more than the planned %zu MiB of step memory; "
                    "it is allocated on the side now and the arena grows at the next step\n", a->cap >> 20);
            a->grew = 1;
        }
        if (a->n_chunks == a->cap_chunks) {
            a->cap_chunks = a->cap_chunks ? 2 * a->cap_chunks : 1024;
            a->chunks = realloc(a->chunks, (size_t)a->cap_chunks * sizeof(*a->chunks));
            if (!a->chunks) die("out of memory for the arena's chunk list");
        }
        p = block_alloc(a, sz);
        a->chunks[a->n_chunks].p = p;
        a->chunks[a->n_chunks++].bytes = sz;
        a->over += sz;
    }
    if (a->used + a->over > a->peak) a->peak = a->used + a->over;
    return p;
}

void *arena_calloc(Arena *a, size_t bytes) {
    void *p = arena_alloc(a, bytes);
    if (a->dev) a->dev->mem_zero(p, bytes);
    else memset(p, 0, bytes);
    return p;
}

void arena_reset(Arena *a) {
    free_chunks(a, 0);
    a->used = 0;
    if (!a->planning && a->peak > a->cap) size_block(a);  // the last step outgrew the plan
}

ArenaMark arena_mark(const Arena *a) { return (ArenaMark){a->used, a->n_chunks}; }

void arena_release(Arena *a, ArenaMark mark) {
    if (mark.used > a->used || mark.n_chunks > a->n_chunks) die("arena_release: the mark is above the top");
    free_chunks(a, mark.n_chunks);
    a->used = mark.used;
}

void arena_free(Arena *a) {
    free_chunks(a, 0);
    free(a->chunks);
    if (a->base) block_free(a, a->base);
    memset(a, 0, sizeof(*a));
}

// ---------------------------------------------------------------------------------------------
// Tape

typedef enum {
    OP_LINEAR, OP_LAYERNORM, OP_GELU, OP_ADD, OP_ADD_BCAST, OP_DROPOUT, OP_ATTENTION, OP_XENT,
    OP_L2NORM, OP_DIV_SCALAR, OP_MSE_ROWS, OP_L1, OP_GATHER_ROWS, OP_CONCAT_ROWS
} OpKind;

struct Node {
    OpKind kind;
    Tensor *out;
    Tensor *in[3];
    int i[16];
    float f[2];
    float *sa, *sb;        // saved float buffers (stats, probs, targets, masks)
    const int32_t *ints;   // saved index list / labels
    const uint8_t *keep;   // dropout keep-mask
    Tensor **parts;        // concat inputs
};

void graph_init(Graph *g, const Ops *ops, Arena *arena, Arena *host, int cap_nodes) {
    memset(g, 0, sizeof(*g));
    if (!host && !ops->host_memory) die("graph_init: backend %s needs a host arena", ops->name);
    g->ops = ops;
    g->arena = arena;
    g->host = host ? host : arena;
    g->cap_nodes = cap_nodes;
    g->nodes = mallocCheck((size_t)cap_nodes * sizeof(Node));
    g->grad_enabled = 1;
    g->training = 1;
    rng_seed(&g->rng, 1);
}

void graph_free(Graph *g) {
    free(g->nodes);
    free(g->pool);
    g->nodes = NULL;
    g->pool = NULL;
}

void graph_clear(Graph *g) { g->n_nodes = 0, g->n_pool = 0; }  // the arena reset frees the pool

static Node *push(Graph *g, OpKind kind, Tensor *out) {
    if (g->n_nodes == g->cap_nodes) die("autograd tape full (%d nodes)", g->cap_nodes);
    Node *nd = &g->nodes[g->n_nodes++];
    memset(nd, 0, sizeof(*nd));
    nd->kind = kind;
    nd->out = out;
    return nd;
}

static int flows(const Tensor *t) { return t && (t->grad || t->needs_grad); }

static int wants(Graph *g, Tensor *a, Tensor *b, Tensor *c) {
    if (!g->grad_enabled) return 0;
    return flows(a) || flows(b) || flows(c);
}

void *g_host_alloc(Graph *g, size_t bytes) { return arena_alloc(g->host, bytes); }

GraphScope g_scope_begin(Graph *g) { return (GraphScope){arena_mark(g->arena), g->n_nodes}; }

void g_scope_end(Graph *g, GraphScope sc) {
    if (g->n_nodes != sc.n_nodes)
        die("g_scope_end: the region recorded %d tape node(s); its memory is needed by backward",
            g->n_nodes - sc.n_nodes);
    if (g->arena == g->host) return;  // one arena for both: host allocations sit above the mark
    arena_release(g->arena, sc.mark);
}

static Tensor *new_tensor(Graph *g, int ndim, const int *shape) {
    Tensor *t = arena_alloc(g->host, sizeof(Tensor));
    memset(t, 0, sizeof(*t));
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < 4; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    for (int i = 0; i < ndim; i++) t->n *= (size_t)shape[i];
    return t;
}

Tensor *g_tensor(Graph *g, int ndim, const int *shape, int needs_grad) {
    Tensor *t = new_tensor(g, ndim, shape);
    t->data = arena_alloc(g->arena, t->n * sizeof(float));
    t->needs_grad = needs_grad && g->grad_enabled;
    t->grad = t->needs_grad && !g->release_grads ? arena_calloc(g->arena, t->n * sizeof(float)) : NULL;
    return t;
}

// A loss value: data and grad on the host (the value is read and the gradient seeded there).
static Tensor *host_scalar(Graph *g, int needs_grad) {
    int shape[1] = {1};
    Tensor *t = new_tensor(g, 1, shape);
    t->data = arena_alloc(g->host, sizeof(float));
    t->data[0] = 0.0f;
    t->grad = NULL;
    if (needs_grad && g->grad_enabled) {
        t->grad = arena_alloc(g->host, sizeof(float));
        t->grad[0] = 0.0f;
        t->needs_grad = 1;
    }
    return t;
}

Tensor *g_tensor2(Graph *g, int d0, int d1, int needs_grad) {
    int shape[2] = {d0, d1};
    return g_tensor(g, 2, shape, needs_grad);
}

Tensor *g_const(Graph *g, const float *data, int d0, int d1) {
    Tensor *t = g_tensor2(g, d0, d1, 0);
    g->ops->copy_h2d(t->data, data, t->n * sizeof(float));
    return t;
}

Tensor *g_copy(Graph *g, const Tensor *t) {
    Tensor *c = g_tensor(g, t->ndim, t->shape, 0);
    g->ops->copy_d2d(c->data, t->data, t->n * sizeof(float));
    return c;
}

Tensor *g_view(Graph *g, Tensor *t, size_t offset, int d0, int d1) {
    if (offset + (size_t)d0 * d1 > t->n) die("view [%zu, +%d*%d) outside a tensor of %zu", offset, d0, d1, t->n);
    Tensor *v = arena_alloc(g->host, sizeof(Tensor));
    memset(v, 0, sizeof(*v));
    v->ndim = 2;
    v->shape[0] = d0;
    v->shape[1] = d1;
    v->shape[2] = v->shape[3] = 1;
    v->n = (size_t)d0 * d1;
    v->data = t->data + offset;
    v->grad = t->grad ? t->grad + offset : NULL;
    v->needs_grad = flows(t);
    if (!t->grad && t->needs_grad) v->base = t, v->base_off = offset;  // gradient made later
    return v;
}

int32_t *g_ints(Graph *g, const int32_t *src, int n) {
    int32_t *p = arena_alloc(g->arena, (size_t)n * sizeof(int32_t));
    g->ops->copy_h2d(p, src, (size_t)n * sizeof(int32_t));
    return p;
}

static int width(const Tensor *t) { return t->shape[t->ndim - 1]; }

Tensor *g_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b) {
    int K = w->shape[1], N = w->shape[0];
    if (x->n % (size_t)K != 0) die("linear: input of %zu values is not rows of %d", x->n, K);
    int M = (int)(x->n / (size_t)K);
    int grad = wants(g, x, w, b);
    Tensor *y = g_tensor2(g, M, N, grad);
    g->ops->linear_fwd(y->data, x->data, w->data, b ? b->data : NULL, M, K, N);
    if (grad) {
        Node *nd = push(g, OP_LINEAR, y);
        nd->in[0] = x, nd->in[1] = w, nd->in[2] = b;
        nd->i[0] = M, nd->i[1] = K, nd->i[2] = N;
    }
    return y;
}

Tensor *g_layernorm(Graph *g, Tensor *x, Tensor *w, Tensor *b, float eps) {
    int C = w->shape[w->ndim - 1];
    int M = (int)(x->n / (size_t)C);
    int grad = wants(g, x, w, b);
    Tensor *y = g_tensor2(g, M, C, grad);
    float *stats = arena_alloc(g->arena, 2 * (size_t)M * sizeof(float));
    g->ops->layernorm_fwd(y->data, stats, stats + M, x->data, w->data, b->data, M, C, eps);
    if (grad) {
        Node *nd = push(g, OP_LAYERNORM, y);
        nd->in[0] = x, nd->in[1] = w, nd->in[2] = b;
        nd->i[0] = M, nd->i[1] = C;
        nd->sa = stats;
    }
    return y;
}

static Tensor *like(Graph *g, Tensor *x, int grad) {
    Tensor *y = g_tensor(g, x->ndim, x->shape, grad);
    return y;
}

Tensor *g_gelu(Graph *g, Tensor *x) {
    int grad = wants(g, x, NULL, NULL);
    Tensor *y = like(g, x, grad);
    g->ops->gelu_fwd(y->data, x->data, x->n);
    if (grad) push(g, OP_GELU, y)->in[0] = x;
    return y;
}

Tensor *g_add(Graph *g, Tensor *a, Tensor *b) {
    if (a->n != b->n) die("add: %zu vs %zu values", a->n, b->n);
    int grad = wants(g, a, b, NULL);
    Tensor *y = like(g, a, grad);
    g->ops->add_fwd(y->data, a->data, b->data, a->n);
    if (grad) {
        Node *nd = push(g, OP_ADD, y);
        nd->in[0] = a, nd->in[1] = b;
    }
    return y;
}

Tensor *g_add_bcast(Graph *g, Tensor *a, Tensor *b) {
    if (a->n % b->n != 0) die("add_bcast: %zu values are not rows of %zu", a->n, b->n);
    int R = (int)(a->n / b->n);
    int grad = wants(g, a, b, NULL);
    Tensor *y = like(g, a, grad);
    g->ops->add_bcast_fwd(y->data, a->data, b->data, R, b->n);
    if (grad) {
        Node *nd = push(g, OP_ADD_BCAST, y);
        nd->in[0] = a, nd->in[1] = b;
        nd->i[0] = R;
    }
    return y;
}

static uint8_t *draw_keep(Graph *g, size_t n, float p) {
    uint8_t *keep = arena_alloc(g->arena, n);
    g->ops->dropout_mask(keep, n, p, rng_u64(&g->rng));
    return keep;
}

Tensor *g_dropout(Graph *g, Tensor *x, float p) {
    if (!g->training || p <= 0.0f) return x;
    int grad = wants(g, x, NULL, NULL);
    Tensor *y = like(g, x, grad);
    uint8_t *keep = draw_keep(g, x->n, p);
    g->ops->dropout_fwd(y->data, x->data, keep, p, x->n);
    if (grad) {
        Node *nd = push(g, OP_DROPOUT, y);
        nd->in[0] = x;
        nd->keep = keep;
        nd->f[0] = p;
    }
    return y;
}

Tensor *g_relu(Graph *g, Tensor *x) {
    int grad = wants(g, x, NULL, NULL);
    Tensor *y = like(g, x, grad);
    uint8_t *keep = arena_alloc(g->arena, x->n);
    g->ops->relu_fwd(y->data, keep, x->data, x->n);
    if (grad) {
        Node *nd = push(g, OP_DROPOUT, y);
        nd->in[0] = x;
        nd->keep = keep;
        nd->f[0] = 0.0f;
    }
    return y;
}

Tensor *g_attention(Graph *g, Tensor *q, int q_off, int ldq, Tensor *k, int k_off, int ldk,
                    Tensor *v, int v_off, int ldv, const float *mask, int B, int Tq, int Tk, int C,
                    int H, int causal, float p_drop) {
    int grad = wants(g, q, k, v);
    int shape[3] = {B, Tq, C};
    Tensor *y = g_tensor(g, 3, shape, grad);
    size_t np = (size_t)B * H * Tq * Tk;
    float *probs = arena_alloc(g->arena, np * sizeof(float));
    float p = (g->training && p_drop > 0.0f) ? p_drop : 0.0f;
    uint8_t *keep = p > 0.0f ? draw_keep(g, np, p) : NULL;
    g->ops->attention_fwd(y->data, probs, q->data + q_off, ldq, k->data + k_off, ldk,
                          v->data + v_off, ldv, mask, keep, p, B, Tq, Tk, C, H, causal);
    if (grad) {
        Node *nd = push(g, OP_ATTENTION, y);
        nd->in[0] = q, nd->in[1] = k, nd->in[2] = v;
        int *i = nd->i;
        i[0] = q_off, i[1] = ldq, i[2] = k_off, i[3] = ldk, i[4] = v_off, i[5] = ldv;
        i[6] = B, i[7] = Tq, i[8] = Tk, i[9] = C, i[10] = H, i[11] = causal;
        nd->sa = probs;
        nd->keep = keep;
        nd->f[0] = p;
    }
    return y;
}

Tensor *g_xent(Graph *g, Tensor *logits, const int32_t *labels, const float *soft, float alpha) {
    int V = width(logits), M = (int)(logits->n / (size_t)V);
    int grad = wants(g, logits, NULL, NULL);
    Tensor *loss = host_scalar(g, grad);
    float *probs = arena_alloc(g->arena, logits->n * sizeof(float));
    const int32_t *lab = labels ? g_ints(g, labels, M) : NULL;
    const float *sc = soft;
    loss->data[0] = M > 0 ? g->ops->xent_fwd(probs, logits->data, lab, sc, alpha, M, V) : 0.0f;
    if (grad && M > 0) {
        Node *nd = push(g, OP_XENT, loss);
        nd->in[0] = logits;
        nd->i[0] = M, nd->i[1] = V;
        nd->sa = probs, nd->sb = (float *)sc, nd->ints = lab;
        nd->f[0] = alpha;
    }
    return loss;
}

Tensor *g_l2norm(Graph *g, Tensor *x) {
    int C = width(x), M = (int)(x->n / (size_t)C);
    int grad = wants(g, x, NULL, NULL);
    Tensor *y = like(g, x, grad);
    float *norms = arena_alloc(g->arena, (size_t)M * sizeof(float));
    g->ops->l2norm_fwd(y->data, norms, x->data, M, C);
    if (grad) {
        Node *nd = push(g, OP_L2NORM, y);
        nd->in[0] = x;
        nd->i[0] = M, nd->i[1] = C;
        nd->sa = norms;
    }
    return y;
}

Tensor *g_div_scalar(Graph *g, Tensor *x, Tensor *s) {
    int grad = wants(g, x, s, NULL);
    Tensor *y = like(g, x, grad);
    g->ops->div_scalar_fwd(y->data, x->data, s->data, x->n);
    if (grad) {
        Node *nd = push(g, OP_DIV_SCALAR, y);
        nd->in[0] = x, nd->in[1] = s;
    }
    return y;
}

Tensor *g_mse_rows(Graph *g, Tensor *pred, const float *target, const float *w) {
    int P = width(pred), R = (int)(pred->n / (size_t)P);
    int grad = wants(g, pred, NULL, NULL);
    Tensor *loss = host_scalar(g, grad);
    loss->data[0] = g->ops->mse_rows_fwd(pred->data, target, w, R, P);
    if (grad) {
        Node *nd = push(g, OP_MSE_ROWS, loss);
        nd->in[0] = pred;
        nd->i[0] = R, nd->i[1] = P;
        nd->sa = (float *)target, nd->sb = (float *)w;  // the caller's step memory
    }
    return loss;
}

Tensor *g_l1(Graph *g, Tensor *a, const float *b) {
    int grad = wants(g, a, NULL, NULL);
    Tensor *loss = host_scalar(g, grad);
    loss->data[0] = g->ops->l1_fwd(a->data, b, a->n);
    if (grad) {
        Node *nd = push(g, OP_L1, loss);
        nd->in[0] = a;
        nd->sa = (float *)b;
    }
    return loss;
}

Tensor *g_gather_rows(Graph *g, Tensor *x, int D, const int32_t *idx, int n) {
    if (x->n % (size_t)D != 0) die("gather_rows: %zu values are not rows of %d", x->n, D);
    int R = (int)(x->n / (size_t)D);
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= R) die("gather_rows: index %d outside %d rows", idx[i], R);
    int grad = wants(g, x, NULL, NULL);
    Tensor *y = g_tensor2(g, n, D, grad);
    const int32_t *ic = g_ints(g, idx, n);
    g->ops->gather_rows_fwd(y->data, x->data, ic, n, D);
    if (grad) {
        Node *nd = push(g, OP_GATHER_ROWS, y);
        nd->in[0] = x;
        nd->i[0] = n, nd->i[1] = D;
        nd->ints = ic;
    }
    return y;
}

Tensor *g_concat_rows(Graph *g, Tensor **parts, int count, int D) {
    size_t n = 0;
    int grad = 0;
    for (int i = 0; i < count; i++) {
        if (parts[i]->n % (size_t)D != 0) die("concat_rows: part %d is not rows of %d", i, D);
        n += parts[i]->n;
        grad |= wants(g, parts[i], NULL, NULL);
    }
    Tensor *y = g_tensor2(g, (int)(n / (size_t)D), D, grad);
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        g->ops->copy_d2d(y->data + off, parts[i]->data, parts[i]->n * sizeof(float));
        off += parts[i]->n;
    }
    if (grad) {
        Node *nd = push(g, OP_CONCAT_ROWS, y);
        nd->parts = arena_alloc(g->host, (size_t)count * sizeof(Tensor *));
        memcpy(nd->parts, parts, (size_t)count * sizeof(Tensor *));
        nd->i[0] = count;
    }
    return y;
}

// ---------------------------------------------------------------------------------------------
// Backward

// A zeroed gradient buffer of `bytes`: a pooled one of exactly that size, else new step memory.
static float *pool_get(Graph *g, size_t bytes) {
    for (int k = g->n_pool - 1; k >= 0; k--) {
        if (g->pool[k].bytes != bytes) continue;
        float *p = g->pool[k].p;
        g->pool[k] = g->pool[--g->n_pool];
        g->ops->mem_zero(p, bytes);
        return p;
    }
    return arena_calloc(g->arena, bytes);
}

static void pool_put(Graph *g, float *p, size_t bytes) {
    if (g->n_pool == g->cap_pool) {
        g->cap_pool = g->cap_pool ? 2 * g->cap_pool : 256;
        g->pool = realloc(g->pool, (size_t)g->cap_pool * sizeof(*g->pool));
        if (!g->pool) die("out of memory for the gradient pool");
    }
    g->pool[g->n_pool].p = p;
    g->pool[g->n_pool++].bytes = bytes;
}

// t's gradient buffer for backward to accumulate into, made on first use (release_grads), or
// NULL when no gradient flows into t.
static float *gr(Graph *g, Tensor *t) {
    if (!t || t->grad || !t->needs_grad) return t ? t->grad : NULL;
    if (t->base) return t->grad = gr(g, t->base) + t->base_off;
    t->grad = pool_get(g, t->n * sizeof(float));
    t->pooled = 1;
    return t->grad;
}

static void node_backward(Graph *g, Node *nd) {
    const Ops *o = g->ops;
    Tensor *y = nd->out, *a = nd->in[0], *b = nd->in[1], *c = nd->in[2];
    float *dy = y->grad;
    float *ga = gr(g, a), *gb = gr(g, b), *gc = gr(g, c);
    int *i = nd->i;
    switch (nd->kind) {
    case OP_LINEAR:
        o->linear_bwd(ga, gb, gc, dy, a->data, b->data, i[0], i[1], i[2]);
        break;
    case OP_LAYERNORM:
        o->layernorm_bwd(ga, gb, gc, dy, a->data, b->data, nd->sa, nd->sa + i[0], i[0], i[1]);
        break;
    case OP_GELU:
        if (ga) o->gelu_bwd(ga, dy, a->data, a->n);
        break;
    case OP_ADD:
        if (ga) o->acc(ga, dy, y->n);
        if (gb) o->acc(gb, dy, y->n);
        break;
    case OP_ADD_BCAST:
        if (ga) o->acc(ga, dy, y->n);
        if (gb) o->sum_rows_acc(gb, dy, i[0], b->n);
        break;
    case OP_DROPOUT:
        if (ga) o->dropout_bwd(ga, dy, nd->keep, nd->f[0], a->n);
        break;
    case OP_ATTENTION: {
        ArenaMark mk = arena_mark(g->arena);
        float *scratch = arena_alloc(g->arena, 2 * (size_t)i[7] * i[8] * sizeof(float));
        o->attention_bwd(ga ? ga + i[0] : NULL, gb ? gb + i[2] : NULL, gc ? gc + i[4] : NULL, dy,
                         nd->sa, a->data + i[0], i[1], b->data + i[2], i[3], c->data + i[4], i[5],
                         nd->keep, nd->f[0], i[6], i[7], i[8], i[9], i[10], scratch);
        arena_release(g->arena, mk);  // only the scratch was allocated since the mark
        break;
    }
    case OP_XENT:
        o->xent_bwd(ga, dy[0], nd->sa, nd->ints, nd->sb, nd->f[0], i[0], i[1]);
        break;
    case OP_L2NORM:
        if (ga) o->l2norm_bwd(ga, dy, y->data, nd->sa, i[0], i[1]);
        break;
    case OP_DIV_SCALAR:
        o->div_scalar_bwd(ga, gb, dy, a->data, b->data, a->n);
        break;
    case OP_MSE_ROWS:
        o->mse_rows_bwd(ga, dy[0], a->data, nd->sa, nd->sb, i[0], i[1]);
        break;
    case OP_L1:
        o->l1_bwd(ga, dy[0], a->data, nd->sa, a->n);
        break;
    case OP_GATHER_ROWS:
        if (ga) o->gather_rows_bwd(ga, dy, nd->ints, i[0], i[1]);
        break;
    case OP_CONCAT_ROWS: {
        size_t off = 0;
        for (int k = 0; k < i[0]; k++) {
            Tensor *p = nd->parts[k];
            float *gp = gr(g, p);
            if (gp) o->acc(gp, dy + off, p->n);
            off += p->n;
        }
        break;
    }
    }
}

void graph_backward(Graph *g) {
    for (int k = g->n_nodes - 1; k >= 0; k--) {
        Node *nd = &g->nodes[k];
        Tensor *y = nd->out;
        if (!y->grad) continue;  // no gradient reached this op's output
        node_backward(g, nd);
        // Every consumer of y ran before its producer (reverse order): y's gradient is dead.
        if (y->pooled) pool_put(g, y->grad, y->n * sizeof(float)), y->grad = NULL, y->pooled = 0;
    }
}
