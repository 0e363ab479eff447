// ops_guard.c: the checking backend (see ops_guard.h): ops_cpu on a doubly mapped region.
#define _GNU_SOURCE  // memfd_create
#include "engine/ops_guard.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "engine/common.h"

// The region is one memfd mapped twice: `base` is what the backend hands out (PROT_NONE for ever,
// so a host dereference faults), `alias` is the same memory read-write, used by the members.
static char *base, *alias;
static size_t reserved, used;
static long calls;

static int in_region(const void *p) {
    return (const char *)p >= base && (const char *)p < base + used;
}

// A device pointer's read-write alias; every pointer a member takes must be device memory (or
// NULL where the op allows it).
static void *translate(const void *p, const char *fn, const char *name) {
    if (!p) return NULL;
    if (!in_region(p)) die("ops_guard: %s got a host pointer for '%s'", fn, name);
    calls++;
    return alias + ((const char *)p - base);
}
static void check_host(const void *p, const char *fn, const char *name) {
    if (in_region(p)) die("ops_guard: %s got a device pointer for host '%s'", fn, name);
}
#define T(p) translate((p), __func__, #p)
#define HOST(p) check_host((p), __func__, #p)

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    if ((char *)si->si_addr >= base && (char *)si->si_addr < base + reserved) {
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
    if (base) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    reserved = (reserve_bytes + page - 1) / page * page;
    int fd = memfd_create("vlmae-ops-guard", 0);
    if (fd < 0 || ftruncate(fd, (off_t)reserved) != 0) die("ops_guard: cannot create the device region");
    base = mmap(NULL, reserved, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    alias = mmap(NULL, reserved, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    close(fd);
    if (base == MAP_FAILED || alias == MAP_FAILED)
        die("ops_guard: cannot map %zu MiB of address space", reserved >> 20);
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
// Memory: a bump allocator (freed blocks are not reused).

static void *mem_alloc(size_t bytes) {
    size_t sz = (bytes + 255) / 256 * 256;
    if (sz == 0) sz = 256;
    if (used + sz > reserved) die("ops_guard: the %zu MiB region is exhausted", reserved >> 20);
    void *p = base + used;
    used += sz;
    return p;
}

static void mem_free(void *p) { (void)T(p); }

static void mem_zero(void *p, size_t bytes) { memset(T(p), 0, bytes); }

static void copy_h2d(void *dst, const void *src, size_t bytes) {
    HOST(src);
    memcpy(T(dst), src, bytes);
}

static void copy_d2h(void *dst, const void *src, size_t bytes) {
    HOST(dst);
    memcpy(dst, T(src), bytes);
}

static void copy_d2d(void *dst, const void *src, size_t bytes) { memmove(T(dst), T(src), bytes); }

static void copy_d2h_2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                        size_t rows) {
    HOST(dst);
    ops_cpu.copy_d2h_2d(dst, dpitch, T(src), spitch, width, rows);
}

static void synchronize(void) {}

// ---------------------------------------------------------------------------------------------
// Ops: ops_cpu's member on the translated pointers.

static void linear_fwd(float *y, const float *x, const float *w, const float *b, int M, int K, int N) {
    ops_cpu.linear_fwd(T(y), T(x), T(w), T(b), M, K, N);
}
static void linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int M, int K, int N) {
    ops_cpu.linear_bwd(T(dx), T(dw), T(db), T(dy), T(x), T(w), M, K, N);
}
static void layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g,
                          const float *b, int M, int C, float eps) {
    ops_cpu.layernorm_fwd(T(y), T(mean), T(rstd), T(x), T(g), T(b), M, C, eps);
}
static void layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x,
                          const float *g, const float *mean, const float *rstd, int M, int C) {
    ops_cpu.layernorm_bwd(T(dx), T(dg), T(db), T(dy), T(x), T(g), T(mean), T(rstd), M, C);
}
static void gelu_fwd(float *y, const float *x, size_t n) {
    ops_cpu.gelu_fwd(T(y), T(x), n);
}
static void gelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    ops_cpu.gelu_bwd(T(dx), T(dy), T(x), n);
}
static void add_fwd(float *y, const float *a, const float *b, size_t n) {
    ops_cpu.add_fwd(T(y), T(a), T(b), n);
}
static void add_bcast_fwd(float *y, const float *a, const float *b, int R, size_t n) {
    ops_cpu.add_bcast_fwd(T(y), T(a), T(b), R, n);
}
static void sum_rows_acc(float *db, const float *dy, int R, size_t n) {
    ops_cpu.sum_rows_acc(T(db), T(dy), R, n);
}
static void acc(float *y, const float *a, size_t n) {
    ops_cpu.acc(T(y), T(a), n);
}
static void axpy(float *y, float s, const float *a, size_t n) {
    ops_cpu.axpy(T(y), s, T(a), n);
}
static void dropout_fwd(float *y, const float *x, const uint8_t *keep, float p, size_t n) {
    ops_cpu.dropout_fwd(T(y), T(x), T(keep), p, n);
}
static void dropout_bwd(float *dx, const float *dy, const uint8_t *keep, float p, size_t n) {
    ops_cpu.dropout_bwd(T(dx), T(dy), T(keep), p, n);
}
static void attention_fwd(float *out, float *probs, const float *q, int ldq, const float *k, int ldk,
                          const float *v, int ldv, const float *mask, const uint8_t *attn_keep,
                          float p, int B, int Tq, int Tk, int C, int H, int causal) {
    ops_cpu.attention_fwd(T(out), T(probs), T(q), ldq, T(k), ldk, T(v), ldv, T(mask), T(attn_keep), p, B, Tq, Tk, C, H,
                              causal);
}
static void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                          const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                          const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C, int H,
                          float *scratch) {
    ops_cpu.attention_bwd(T(dq), T(dk), T(dv), T(dout), T(probs), T(q), ldq, T(k), ldk, T(v), ldv, T(attn_keep), p, B, Tq, Tk,
                              C, H, T(scratch));
}
static float xent_fwd(float *probs, const float *logits, const int32_t *labels, const float *soft,
                      float alpha, int M, int V) {
    return ops_cpu.xent_fwd(T(probs), T(logits), T(labels), T(soft), alpha, M, V);
}
static void xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *labels,
                     const float *soft, float alpha, int M, int V) {
    ops_cpu.xent_bwd(T(dlogits), dloss, T(probs), T(labels), T(soft), alpha, M, V);
}
static void l2norm_fwd(float *y, float *norms, const float *x, int M, int C) {
    ops_cpu.l2norm_fwd(T(y), T(norms), T(x), M, C);
}
static void l2norm_bwd(float *dx, const float *dy, const float *y, const float *norms, int M, int C) {
    ops_cpu.l2norm_bwd(T(dx), T(dy), T(y), T(norms), M, C);
}
static void div_scalar_fwd(float *y, const float *x, const float *s, size_t n) {
    ops_cpu.div_scalar_fwd(T(y), T(x), T(s), n);
}
static void div_scalar_bwd(float *dx, float *ds, const float *dy, const float *x, const float *s,
                           size_t n) {
    ops_cpu.div_scalar_bwd(T(dx), T(ds), T(dy), T(x), T(s), n);
}
static float mse_rows_fwd(const float *pred, const float *target, const float *w, int R, int P) {
    return ops_cpu.mse_rows_fwd(T(pred), T(target), T(w), R, P);
}
static void mse_rows_bwd(float *dpred, float dloss, const float *pred, const float *target,
                         const float *w, int R, int P) {
    ops_cpu.mse_rows_bwd(T(dpred), dloss, T(pred), T(target), T(w), R, P);
}
static float l1_fwd(const float *a, const float *b, size_t n) {
    return ops_cpu.l1_fwd(T(a), T(b), n);
}
static void l1_bwd(float *da, float dloss, const float *a, const float *b, size_t n) {
    ops_cpu.l1_bwd(T(da), dloss, T(a), T(b), n);
}
static void gather_rows_fwd(float *y, const float *x, const int32_t *idx, int n, int D) {
    ops_cpu.gather_rows_fwd(T(y), T(x), T(idx), n, D);
}
static void gather_rows_bwd(float *dx, const float *dy, const int32_t *idx, int n, int D) {
    ops_cpu.gather_rows_bwd(T(dx), T(dy), T(idx), n, D);
}
static void softmax_rows(float *y, const float *x, int M, int V) {
    ops_cpu.softmax_rows(T(y), T(x), M, V);
}
static void relu_fwd(float *y, uint8_t *keep, const float *x, size_t n) {
    ops_cpu.relu_fwd(T(y), T(keep), T(x), n);
}
static void dropout_mask(uint8_t *keep, size_t n, float p, uint64_t seed) {
    ops_cpu.dropout_mask(T(keep), n, p, seed);
}
static void adamw_step(float *p, const float *g, float *m, float *v, const uint8_t *decay, size_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay, int64_t t) {
    ops_cpu.adamw_step(T(p), T(g), T(m), T(v), T(decay), n, lr, beta1, beta2, eps, weight_decay, t);
}
static void ema(float *pm, const float *p, size_t n, float mu) {
    ops_cpu.ema(T(pm), T(p), n, mu);
}
static int all_finite(const float *x, size_t n) {
    return ops_cpu.all_finite(T(x), n);
}
static void clamp_scalar(float *x, float lo, float hi) {
    ops_cpu.clamp_scalar(T(x), lo, hi);
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
