// ops_guard.c: the checking backend of tests (see ops_guard.h): ops_cpu inside a guarded region.
#include "ops_guard.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

static char *base;
static size_t reserved, used, page;
static long calls;

static int in_region(const void *p) {
    return (const char *)p >= base && (const char *)p < base + used;
}

// Every pointer a backend member takes must be device memory (or NULL where the op allows it).
static void check_dev(const void *p, const char *fn, const char *name) {
    if (p && !in_region(p)) die("ops_guard: %s got a host pointer for '%s'", fn, name);
}
static void check_host(const void *p, const char *fn, const char *name) {
    if (in_region(p)) die("ops_guard: %s got a device pointer for host '%s'", fn, name);
}
#define DEV(p) check_dev((p), __func__, #p)
#define HOST(p) check_host((p), __func__, #p)

static void set_access(int prot) {
    size_t n = (used + page - 1) / page * page;
    if (n && mprotect(base, n, prot) != 0) die("ops_guard: mprotect failed");
}
static void open_region(void) { calls++, set_access(PROT_READ | PROT_WRITE); }
static void close_region(void) { set_access(PROT_NONE); }

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    if (in_region(si->si_addr)) {
        char msg[160];
        int n = snprintf(msg, sizeof(msg),
                         "ops_guard: host code touched device memory (offset %zu of the device region)\n",
                         (size_t)((char *)si->si_addr - base));
        if (write(2, msg, (size_t)n) < 0) {}
        _exit(3);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void ops_guard_init(size_t reserve_bytes) {
    page = (size_t)sysconf(_SC_PAGESIZE);
    reserved = (reserve_bytes + page - 1) / page * page;
    base = mmap(NULL, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) die("ops_guard: cannot reserve %zu MiB of address space", reserved >> 20);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
}

size_t ops_guard_used(void) { return used; }

void ops_guard_reset(void) { used = 0; }
long ops_guard_calls(void) { return calls; }

// ---------------------------------------------------------------------------------------------
// Memory: a bump allocator (freed blocks are not reused: tests are short).

static void *mem_alloc(size_t bytes) {
    size_t sz = (bytes + 255) / 256 * 256;
    if (sz == 0) sz = 256;
    if (used + sz > reserved) die("ops_guard: the %zu MiB region is exhausted", reserved >> 20);
    void *p = base + used;
    used += sz;
    return p;
}

static void mem_free(void *p) { DEV(p); }

static void mem_zero(void *p, size_t bytes) {
    DEV(p);
    open_region();
    memset(p, 0, bytes);
    close_region();
}

static void copy_h2d(void *dst, const void *src, size_t bytes) {
    DEV(dst), HOST(src);
    open_region();
    memcpy(dst, src, bytes);
    close_region();
}

static void copy_d2h(void *dst, const void *src, size_t bytes) {
    HOST(dst), DEV(src);
    open_region();
    memcpy(dst, src, bytes);
    close_region();
}

static void copy_d2d(void *dst, const void *src, size_t bytes) {
    DEV(dst), DEV(src);
    open_region();
    memmove(dst, src, bytes);
    close_region();
}

static void copy_d2h_2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                        size_t rows) {
    HOST(dst), DEV(src);
    open_region();
    ops_cpu.copy_d2h_2d(dst, dpitch, src, spitch, width, rows);
    close_region();
}

static void synchronize(void) {}

// ---------------------------------------------------------------------------------------------
// Ops: check the pointers, open the region, run ops_cpu's member, close it.

#define RUN(call)      \
    do {               \
        open_region(); \
        call;          \
        close_region(); \
    } while (0)

static void linear_fwd(float *y, const float *x, const float *w, const float *b, int M, int K, int N) {
    DEV(y), DEV(x), DEV(w), DEV(b);
    RUN(ops_cpu.linear_fwd(y, x, w, b, M, K, N));
}
static void linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int M, int K, int N) {
    DEV(dx), DEV(dw), DEV(db), DEV(dy), DEV(x), DEV(w);
    RUN(ops_cpu.linear_bwd(dx, dw, db, dy, x, w, M, K, N));
}
static void layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g,
                          const float *b, int M, int C, float eps) {
    DEV(y), DEV(mean), DEV(rstd), DEV(x), DEV(g), DEV(b);
    RUN(ops_cpu.layernorm_fwd(y, mean, rstd, x, g, b, M, C, eps));
}
static void layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x,
                          const float *g, const float *mean, const float *rstd, int M, int C) {
    DEV(dx), DEV(dg), DEV(db), DEV(dy), DEV(x), DEV(g), DEV(mean), DEV(rstd);
    RUN(ops_cpu.layernorm_bwd(dx, dg, db, dy, x, g, mean, rstd, M, C));
}
static void gelu_fwd(float *y, const float *x, size_t n) {
    DEV(y), DEV(x);
    RUN(ops_cpu.gelu_fwd(y, x, n));
}
static void gelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    DEV(dx), DEV(dy), DEV(x);
    RUN(ops_cpu.gelu_bwd(dx, dy, x, n));
}
static void add_fwd(float *y, const float *a, const float *b, size_t n) {
    DEV(y), DEV(a), DEV(b);
    RUN(ops_cpu.add_fwd(y, a, b, n));
}
static void add_bcast_fwd(float *y, const float *a, const float *b, int R, size_t n) {
    DEV(y), DEV(a), DEV(b);
    RUN(ops_cpu.add_bcast_fwd(y, a, b, R, n));
}
static void sum_rows_acc(float *db, const float *dy, int R, size_t n) {
    DEV(db), DEV(dy);
    RUN(ops_cpu.sum_rows_acc(db, dy, R, n));
}
static void acc(float *y, const float *a, size_t n) {
    DEV(y), DEV(a);
    RUN(ops_cpu.acc(y, a, n));
}
static void axpy(float *y, float s, const float *a, size_t n) {
    DEV(y), DEV(a);
    RUN(ops_cpu.axpy(y, s, a, n));
}
static void dropout_fwd(float *y, const float *x, const uint8_t *keep, float p, size_t n) {
    DEV(y), DEV(x), DEV(keep);
    RUN(ops_cpu.dropout_fwd(y, x, keep, p, n));
}
static void dropout_bwd(float *dx, const float *dy, const uint8_t *keep, float p, size_t n) {
    DEV(dx), DEV(dy), DEV(keep);
    RUN(ops_cpu.dropout_bwd(dx, dy, keep, p, n));
}
static void attention_fwd(float *out, float *probs, const float *q, int ldq, const float *k, int ldk,
                          const float *v, int ldv, const float *mask, const uint8_t *attn_keep,
                          float p, int B, int Tq, int Tk, int C, int H, int causal) {
    DEV(out), DEV(probs), DEV(q), DEV(k), DEV(v), DEV(mask), DEV(attn_keep);
    RUN(ops_cpu.attention_fwd(out, probs, q, ldq, k, ldk, v, ldv, mask, attn_keep, p, B, Tq, Tk, C, H,
                              causal));
}
static void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                          const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                          const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C, int H,
                          float *scratch) {
    DEV(dq), DEV(dk), DEV(dv), DEV(dout), DEV(probs), DEV(q), DEV(k), DEV(v), DEV(attn_keep), DEV(scratch);
    RUN(ops_cpu.attention_bwd(dq, dk, dv, dout, probs, q, ldq, k, ldk, v, ldv, attn_keep, p, B, Tq, Tk,
                              C, H, scratch));
}
static float xent_fwd(float *probs, const float *logits, const int32_t *labels, const float *soft,
                      float alpha, int M, int V) {
    DEV(probs), DEV(logits), DEV(labels), DEV(soft);
    float r;
    RUN(r = ops_cpu.xent_fwd(probs, logits, labels, soft, alpha, M, V));
    return r;
}
static void xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *labels,
                     const float *soft, float alpha, int M, int V) {
    DEV(dlogits), DEV(probs), DEV(labels), DEV(soft);
    RUN(ops_cpu.xent_bwd(dlogits, dloss, probs, labels, soft, alpha, M, V));
}
static void l2norm_fwd(float *y, float *norms, const float *x, int M, int C) {
    DEV(y), DEV(norms), DEV(x);
    RUN(ops_cpu.l2norm_fwd(y, norms, x, M, C));
}
static void l2norm_bwd(float *dx, const float *dy, const float *y, const float *norms, int M, int C) {
    DEV(dx), DEV(dy), DEV(y), DEV(norms);
    RUN(ops_cpu.l2norm_bwd(dx, dy, y, norms, M, C));
}
static void div_scalar_fwd(float *y, const float *x, const float *s, size_t n) {
    DEV(y), DEV(x), DEV(s);
    RUN(ops_cpu.div_scalar_fwd(y, x, s, n));
}
static void div_scalar_bwd(float *dx, float *ds, const float *dy, const float *x, const float *s,
                           size_t n) {
    DEV(dx), DEV(ds), DEV(dy), DEV(x), DEV(s);
    RUN(ops_cpu.div_scalar_bwd(dx, ds, dy, x, s, n));
}
static float mse_rows_fwd(const float *pred, const float *target, const float *w, int R, int P) {
    DEV(pred), DEV(target), DEV(w);
    float r;
    RUN(r = ops_cpu.mse_rows_fwd(pred, target, w, R, P));
    return r;
}
static void mse_rows_bwd(float *dpred, float dloss, const float *pred, const float *target,
                         const float *w, int R, int P) {
    DEV(dpred), DEV(pred), DEV(target), DEV(w);
    RUN(ops_cpu.mse_rows_bwd(dpred, dloss, pred, target, w, R, P));
}
static float l1_fwd(const float *a, const float *b, size_t n) {
    DEV(a), DEV(b);
    float r;
    RUN(r = ops_cpu.l1_fwd(a, b, n));
    return r;
}
static void l1_bwd(float *da, float dloss, const float *a, const float *b, size_t n) {
    DEV(da), DEV(a), DEV(b);
    RUN(ops_cpu.l1_bwd(da, dloss, a, b, n));
}
static void gather_rows_fwd(float *y, const float *x, const int32_t *idx, int n, int D) {
    DEV(y), DEV(x), DEV(idx);
    RUN(ops_cpu.gather_rows_fwd(y, x, idx, n, D));
}
static void gather_rows_bwd(float *dx, const float *dy, const int32_t *idx, int n, int D) {
    DEV(dx), DEV(dy), DEV(idx);
    RUN(ops_cpu.gather_rows_bwd(dx, dy, idx, n, D));
}
static void softmax_rows(float *y, const float *x, int M, int V) {
    DEV(y), DEV(x);
    RUN(ops_cpu.softmax_rows(y, x, M, V));
}
static void relu_fwd(float *y, uint8_t *keep, const float *x, size_t n) {
    DEV(y), DEV(keep), DEV(x);
    RUN(ops_cpu.relu_fwd(y, keep, x, n));
}
static void dropout_mask(uint8_t *keep, size_t n, float p, uint64_t seed) {
    DEV(keep);
    RUN(ops_cpu.dropout_mask(keep, n, p, seed));
}
static void adamw_step(float *p, const float *g, float *m, float *v, const float *decay, size_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay, int64_t t) {
    DEV(p), DEV(g), DEV(m), DEV(v), DEV(decay);
    RUN(ops_cpu.adamw_step(p, g, m, v, decay, n, lr, beta1, beta2, eps, weight_decay, t));
}
static void ema(float *pm, const float *p, size_t n, float mu) {
    DEV(pm), DEV(p);
    RUN(ops_cpu.ema(pm, p, n, mu));
}
static int all_finite(const float *x, size_t n) {
    DEV(x);
    int r;
    RUN(r = ops_cpu.all_finite(x, n));
    return r;
}
static void clamp_scalar(float *x, float lo, float hi) {
    DEV(x);
    RUN(ops_cpu.clamp_scalar(x, lo, hi));
}

const Ops ops_guard = {
    .name = "guard",
    .linear_fwd = linear_fwd,
    .linear_bwd = linear_bwd,
    .layernorm_fwd = layernorm_fwd,
    .layernorm_bwd = layernorm_bwd,
    .gelu_fwd = gelu_fwd,
    .gelu_bwd = gelu_bwd,
    .add_fwd = add_fwd,
    .add_bcast_fwd = add_bcast_fwd,
    .sum_rows_acc = sum_rows_acc,
    .acc = acc,
    .axpy = axpy,
    .dropout_fwd = dropout_fwd,
    .dropout_bwd = dropout_bwd,
    .attention_fwd = attention_fwd,
    .attention_bwd = attention_bwd,
    .xent_fwd = xent_fwd,
    .xent_bwd = xent_bwd,
    .l2norm_fwd = l2norm_fwd,
    .l2norm_bwd = l2norm_bwd,
    .div_scalar_fwd = div_scalar_fwd,
    .div_scalar_bwd = div_scalar_bwd,
    .mse_rows_fwd = mse_rows_fwd,
    .mse_rows_bwd = mse_rows_bwd,
    .l1_fwd = l1_fwd,
    .l1_bwd = l1_bwd,
    .gather_rows_fwd = gather_rows_fwd,
    .gather_rows_bwd = gather_rows_bwd,
    .softmax_rows = softmax_rows,
    .relu_fwd = relu_fwd,
    .dropout_mask = dropout_mask,
    .host_memory = 0,
    .mem_alloc = mem_alloc,
    .mem_free = mem_free,
    .mem_zero = mem_zero,
    .copy_h2d = copy_h2d,
    .copy_d2h = copy_d2h,
    .copy_d2d = copy_d2d,
    .copy_d2h_2d = copy_d2h_2d,
    .synchronize = synchronize,
    .adamw_step = adamw_step,
    .ema = ema,
    .all_finite = all_finite,
    .clamp_scalar = clamp_scalar,
};
