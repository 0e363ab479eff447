// test_cuda_ops.c: the CUDA backend (kernels/ops_cuda.cu, optim_cuda.cu, nccl_dist.cu) against
// the CPU backend (src/engine/ops_cpu.c, which tests/test_ops.c checks against naive references and
// finite differences). Skips (77) without a CUDA device.
//
// Every op runs on the same random host inputs through ops_cpu and, copied to the device,
// through ops_cuda; forward outputs and backward gradients (accumulated onto the same pre-filled
// random values, so "+=" is checked too; NULL gradients exercised) are compared.
//
// Error metric per element: |got - want| / (|want| + rms(want)) -- elements near zero are judged
// on the scale of their tensor. fp32 mode: every op under 1e-4. bf16 mode (GEMMs on bf16 tensor
// cores): the GEMM-based ops (linear, attention) under 2e-2 in norm (||got - want|| / ||want||)
// and 1e-1 per element; the others still 1e-4.
//
// Exact checks (bit for bit, byte for byte): relu_fwd values and keep-masks, dropout_mask
// (both backends draw keep[i] = hash_uniform(seed, i) >= p), the copies, mem_zero, all_finite
// and clamp_scalar. AdamW and EMA through the op table: 1e-6 (the GPU may fuse a*b+c into one
// FMA, a few ulps).
//
// Passes: fp32 (deterministic mode), the same again to prove the results are bit-identical run
// to run (every value read back from the device is hashed), then bf16. Then AdamW / EMA / queue
// against the CPU optimizer, the memory and training-state members of the op table, and (with
// NCCL) a one-rank communicator. One line per op and mode:
//   ok fp32 linear err 1.2e-07 (norm 3.4e-08)
// Exit status: 0 all passed, 1 something failed, 77 no device.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "engine/common.h"
#include "engine/ops.h"
#include "nccl_dist.h"
#include "ops_cuda.h"

static const Ops *CPU = &ops_cpu, *GPU = &ops_cuda;

static int n_failed = 0, n_checked = 0;
static int bf16 = 0;         // current GEMM mode
static int quiet = 0;        // the determinism pass prints failures only
static const char *mode = "fp32";

// ---------------------------------------------------------------------------------------------
// Random numbers (splitmix64), reset at the start of every pass so each pass sees the same inputs.

static uint64_t rng_state;

static void rng_reset(void) { rng_state = 0x243F6A8885A308D3ull; }

static double urand(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static float frand(float lo, float hi) { return lo + (hi - lo) * (float)urand(); }

// ---------------------------------------------------------------------------------------------
// Host and device allocations, all released after each test.

static void **h_tracked = NULL, **d_tracked = NULL;
static size_t n_h = 0, cap_h = 0, n_d = 0, cap_d = 0;

static void track(void ***list, size_t *n, size_t *cap, void *p) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *list = realloc(*list, *cap * sizeof(void *));
        if (!*list) die("out of memory");
    }
    (*list)[(*n)++] = p;
}

static void *halloc(size_t bytes) {
    void *p = callocCheck(bytes ? bytes : 1, 1);
    track(&h_tracked, &n_h, &cap_h, p);
    return p;
}

static void *dalloc_bytes(size_t bytes) {
    void *p = cuda_malloc(bytes ? bytes : 4);
    track(&d_tracked, &n_d, &cap_d, p);
    return p;
}

static void release_all(void) {
    cuda_synchronize();
    for (size_t i = 0; i < n_h; i++) free(h_tracked[i]);
    for (size_t i = 0; i < n_d; i++) cuda_free(d_tracked[i]);
    n_h = n_d = 0;
}

static float *falloc(size_t n) { return halloc(n * sizeof(float)); }

static float *frandn(size_t n, float lo, float hi) {
    float *a = falloc(n);
    for (size_t i = 0; i < n; i++) a[i] = frand(lo, hi);
    return a;
}

static float *fcopy(const float *a, size_t n) {
    float *b = falloc(n);
    memcpy(b, a, n * sizeof(float));
    return b;
}

static uint8_t *keep_mask(size_t n, float p) {
    uint8_t *k = halloc(n);
    for (size_t i = 0; i < n; i++) k[i] = urand() >= p;
    if (n >= 2) k[0] = 1, k[n - 1] = 0;
    return k;
}

// device copy of host data
static void *up(const void *h, size_t bytes) {
    if (!h) return NULL;
    void *d = dalloc_bytes(bytes);
    cuda_memcpy_h2d_sync(d, h, bytes);
    return d;
}
static float *upf(const float *h, size_t n) { return up(h, n * sizeof(float)); }

// ---------------------------------------------------------------------------------------------
// Determinism: every value read back from the device is hashed per test; the repeat pass
// compares the hashes with the first pass.

#define MAX_TESTS 256
static uint64_t hashes[MAX_TESTS], cur_hash;
static int test_id = 0, recording = 0, comparing = 0, det_mismatch = 0;

static void hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) cur_hash = (cur_hash ^ b[i]) * 0x100000001B3ull;
}

// device -> new host array (hashed)
static float *down(const float *d, size_t n) {
    float *h = falloc(n);
    cuda_memcpy_d2h(h, d, n * sizeof(float));
    hash_bytes(h, n * sizeof(float));
    return h;
}

// device -> new host byte array (hashed)
static void *down_bytes(const void *d, size_t n) {
    void *h = halloc(n);
    cuda_memcpy_d2h(h, d, n);
    hash_bytes(h, n);
    return h;
}

static float got_scalar(float v) {
    hash_bytes(&v, sizeof(v));
    return v;
}

// ---------------------------------------------------------------------------------------------
// Comparison bookkeeping.

typedef struct {
    const char *name;
    int gemm;        // GEMM-based: bf16 tolerances apply in bf16 mode
    double err, nerr;
    int bad;
} Stat;

static Stat st_begin(const char *name, int gemm) {
    cur_hash = 0xcbf29ce484222325ull;
    return (Stat){name, gemm, 0.0, 0.0, 0};
}

// Per-element tolerance tol, norm tolerance ntol.
static void cmp_tol(Stat *st, const char *what, const float *got, const float *want, size_t n,
                    double tol, double ntol) {
    double ss = 0.0, sd = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want[i])) ss += (double)want[i] * want[i];
    double rms = sqrt(ss / (n ? n : 1));
    if (rms < 1e-30) rms = 1e-30;
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double e = g == w ? 0.0 : fabs(g - w) / (fabs(w) + rms);
        if (isfinite(w) && isfinite(g)) sd += (g - w) * (g - w);
        if (!(e <= tol)) {  // NaN too
            e = isnan(e) ? INFINITY : e;
            st->bad = 1;
            if (shown++ < 5)
                fprintf(stderr, "FAIL %s %s %s[%zu]: got %.7g want %.7g (err %.3g > %.0e)\n", mode,
                        st->name, what, i, g, w, e, tol);
        }
        st->err = fmax(st->err, e);
    }
    double ne = ss > 0 ? sqrt(sd / ss) : sqrt(sd);
    if (!(ne <= ntol)) {
        st->bad = 1;
        fprintf(stderr, "FAIL %s %s %s: norm error %.3g > %.0e\n", mode, st->name, what, ne, ntol);
    }
    st->nerr = fmax(st->nerr, ne);
}

static void cmp(Stat *st, const char *what, const float *got, const float *want, size_t n) {
    int loose = st->gemm && bf16;
    cmp_tol(st, what, got, want, n, loose ? 1e-1 : 1e-4, loose ? 2e-2 : 1e-4);
}

// Bit-for-bit: n elements of elem bytes each (1 for masks, 4 for floats).
static void cmp_exact(Stat *st, const char *what, const void *got, const void *want, size_t n,
                      size_t elem) {
    const unsigned char *g = got, *w = want;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n * elem; i++)
        if (g[i] != w[i] && !bad++) first = i;
    if (bad) {
        st->bad = 1;
        st->err = INFINITY;
        size_t e = first / elem;
        if (elem == sizeof(float)) {
            float gf, wf;
            memcpy(&gf, g + e * elem, sizeof gf);
            memcpy(&wf, w + e * elem, sizeof wf);
            fprintf(stderr, "FAIL %s %s %s: %zu bytes differ, first in element %zu of %zu: got %.9g "
                    "want %.9g\n", mode, st->name, what, bad, e, n, (double)gf, (double)wf);
        } else {
            fprintf(stderr, "FAIL %s %s %s: %zu bytes differ, first in element %zu of %zu: got 0x%02x "
                    "want 0x%02x\n", mode, st->name, what, bad, e, n, g[first], w[first]);
        }
    }
}

static void cmp_scalar(Stat *st, const char *what, float got, float want) {
    double e = got == want ? 0.0 : fabs((double)got - want) / fmax(fabs((double)want), 1e-6);
    double tol = st->gemm && bf16 ? 2e-2 : 1e-4;
    if (!(e <= tol)) {
        st->bad = 1;
        fprintf(stderr, "FAIL %s %s %s: got %.7g want %.7g (err %.3g)\n", mode, st->name, what,
                (double)got, (double)want, e);
    }
    st->err = fmax(st->err, e);
    st->nerr = fmax(st->nerr, e);
}

static void check_true(Stat *st, int cond, const char *what) {
    if (!cond) {
        st->bad = 1;
        fprintf(stderr, "FAIL %s %s: %s\n", mode, st->name, what);
    }
}

static void st_end(Stat *st) {
    if (test_id >= MAX_TESTS) die("too many tests");
    if (recording) hashes[test_id] = cur_hash;
    if (comparing && hashes[test_id] != cur_hash) {
        det_mismatch++;
        st->bad = 1;
        fprintf(stderr, "FAIL determinism %s: results differ between two identical runs\n", st->name);
    }
    test_id++;
    n_checked++;
    if (st->bad) n_failed++;
    if (!quiet || st->bad)
        printf("%s %s %-34s err %.2e (norm %.2e)\n", st->bad ? "FAIL" : "ok  ", mode, st->name,
               st->err, st->nerr);
    release_all();
}

// A gradient buffer pre-filled with the same random values for both backends.
typedef struct {
    float *cpu, *dev;
    size_t n;
} Grad;

static Grad grad_new(size_t n) {
    float *init = frandn(n, -1, 1);
    return (Grad){fcopy(init, n), upf(init, n), n};
}

static void cmp_grad(Stat *st, const char *what, const Grad *g) {
    cmp(st, what, down(g->dev, g->n), g->cpu, g->n);
}

// ---------------------------------------------------------------------------------------------
// linear

static void test_linear_case(const char *name, int M, int K, int N, int bias) {
    Stat st = st_begin(name, 1);
    float *x = frandn((size_t)M * K, -1, 1), *w = frandn((size_t)N * K, -1, 1);
    float *b = bias ? frandn(N, -1, 1) : NULL;
    float *y = falloc((size_t)M * N);
    CPU->linear_fwd(y, x, w, b, M, K, N);
    float *dx_ = upf(x, (size_t)M * K), *dw_ = upf(w, (size_t)N * K), *db_ = upf(b, N);
    float *dy_ = dalloc_bytes((size_t)M * N * sizeof(float));
    GPU->linear_fwd(dy_, dx_, dw_, db_, M, K, N);
    cmp(&st, "y", down(dy_, (size_t)M * N), y, (size_t)M * N);

    float *gy = frandn((size_t)M * N, -1, 1), *gy_ = upf(gy, (size_t)M * N);
    Grad gx = grad_new((size_t)M * K), gw = grad_new((size_t)N * K), gb = grad_new(N);
    CPU->linear_bwd(gx.cpu, gw.cpu, bias ? gb.cpu : NULL, gy, x, w, M, K, N);
    GPU->linear_bwd(gx.dev, gw.dev, bias ? gb.dev : NULL, gy_, dx_, dw_, M, K, N);
    cmp_grad(&st, "dx", &gx);
    cmp_grad(&st, "dw", &gw);
    if (bias) cmp_grad(&st, "db", &gb);
    // NULL dx: only dw changes
    Grad gw2 = grad_new((size_t)N * K);
    CPU->linear_bwd(NULL, gw2.cpu, NULL, gy, x, w, M, K, N);
    GPU->linear_bwd(NULL, gw2.dev, NULL, gy_, dx_, dw_, M, K, N);
    cmp_grad(&st, "dw_only", &gw2);
    st_end(&st);
}

static void test_linear(void) {
    test_linear_case("linear_small_bias", 67, 96, 129, 1);
    test_linear_case("linear_base_768", 300, 768, 768, 1);
    test_linear_case("linear_nobias_wide", 48, 256, 3072, 0);
}

// ---------------------------------------------------------------------------------------------
// layernorm

static void test_layernorm_case(const char *name, int M, int C, int affine) {
    Stat st = st_begin(name, 0);
    size_t n = (size_t)M * C;
    float *x = frandn(n, -2, 2), *g = affine ? frandn(C, 0.5f, 1.5f) : NULL;
    float *b = affine ? frandn(C, -0.5f, 0.5f) : NULL;
    for (int c = 0; c < C; c++) x[c] += 50.0f;  // row 0 far from zero mean
    float *y = falloc(n), *mean = falloc(M), *rstd = falloc(M);
    CPU->layernorm_fwd(y, mean, rstd, x, g, b, M, C, 1e-6f);
    float *x_ = upf(x, n), *g_ = upf(g, C), *b_ = upf(b, C);
    float *y_ = dalloc_bytes(n * sizeof(float)), *stats_ = dalloc_bytes(2 * (size_t)M * sizeof(float));
    GPU->layernorm_fwd(y_, stats_, stats_ + M, x_, g_, b_, M, C, 1e-6f);
    cmp(&st, "y", down(y_, n), y, n);
    float *stats = down(stats_, 2 * (size_t)M);
    cmp(&st, "mean", stats, mean, M);
    cmp(&st, "rstd", stats + M, rstd, M);

    float *dy = frandn(n, -1, 1), *dy_ = upf(dy, n);
    Grad gx = grad_new(n), gg = grad_new(C), gb = grad_new(C);
    CPU->layernorm_bwd(gx.cpu, affine ? gg.cpu : NULL, affine ? gb.cpu : NULL, dy, x, g, mean, rstd, M, C);
    // the device backward uses the device statistics (as the graph would)
    GPU->layernorm_bwd(gx.dev, affine ? gg.dev : NULL, affine ? gb.dev : NULL, dy_, x_, g_, stats_,
                       stats_ + M, M, C);
    cmp_grad(&st, "dx", &gx);
    if (affine) {
        cmp_grad(&st, "dg", &gg);
        cmp_grad(&st, "db", &gb);
    }
    st_end(&st);
}

static void test_layernorm(void) {
    test_layernorm_case("layernorm_768", 1000, 768, 1);
    test_layernorm_case("layernorm_50_noaffine", 37, 50, 0);
}

// ---------------------------------------------------------------------------------------------
// elementwise

static void test_gelu(void) {
    Stat st = st_begin("gelu", 0);
    size_t n = 10007;
    float *x = frandn(n, -5, 5), *y = falloc(n), *x_ = upf(x, n);
    float *y_ = dalloc_bytes(n * sizeof(float));
    CPU->gelu_fwd(y, x, n);
    GPU->gelu_fwd(y_, x_, n);
    cmp(&st, "y", down(y_, n), y, n);
    float *dy = frandn(n, -1, 1), *dy_ = upf(dy, n);
    Grad gx = grad_new(n);
    CPU->gelu_bwd(gx.cpu, dy, x, n);
    GPU->gelu_bwd(gx.dev, dy_, x_, n);
    cmp_grad(&st, "dx", &gx);
    st_end(&st);
}

static void test_add_family(void) {
    Stat st = st_begin("add_bcast_acc_axpy_sumrows", 0);
    int R = 37;
    size_t n = 515, tot = (size_t)R * n;
    float *a = frandn(tot, -1, 1), *b = frandn(tot, -1, 1), *y = falloc(tot);
    float *a_ = upf(a, tot), *b_ = upf(b, tot), *y_ = dalloc_bytes(tot * sizeof(float));
    CPU->add_fwd(y, a, b, tot);
    GPU->add_fwd(y_, a_, b_, tot);
    cmp(&st, "add", down(y_, tot), y, tot);
    CPU->add_bcast_fwd(y, a, b, R, n);
    GPU->add_bcast_fwd(y_, a_, b_, R, n);
    cmp(&st, "add_bcast", down(y_, tot), y, tot);
    Grad g = grad_new(tot);
    CPU->acc(g.cpu, a, tot);
    GPU->acc(g.dev, a_, tot);
    CPU->axpy(g.cpu, -0.37f, b, tot);
    GPU->axpy(g.dev, -0.37f, b_, tot);
    cmp_grad(&st, "acc_axpy", &g);
    // column sums over many rows (several chunks) and over few rows of a wide tensor
    int R2 = 3000;
    size_t n2 = 70;
    float *dy = frandn((size_t)R2 * n2, -1, 1), *dy_ = upf(dy, (size_t)R2 * n2);
    Grad s = grad_new(n2);
    CPU->sum_rows_acc(s.cpu, dy, R2, n2);
    GPU->sum_rows_acc(s.dev, dy_, R2, n2);
    cmp_grad(&st, "sum_rows_tall", &s);
    Grad s2 = grad_new(n);
    CPU->sum_rows_acc(s2.cpu, a, R, n);
    GPU->sum_rows_acc(s2.dev, a_, R, n);
    cmp_grad(&st, "sum_rows_wide", &s2);
    st_end(&st);
}

static void test_dropout(void) {
    Stat st = st_begin("dropout", 0);
    size_t n = 4099;
    float p = 0.3f;
    float *x = frandn(n, -1, 1), *y = falloc(n), *x_ = upf(x, n), *y_ = dalloc_bytes(n * sizeof(float));
    uint8_t *keep = keep_mask(n, p), *keep_ = up(keep, n);
    CPU->dropout_fwd(y, x, keep, p, n);
    GPU->dropout_fwd(y_, x_, keep_, p, n);
    cmp(&st, "y", down(y_, n), y, n);
    float *dy = frandn(n, -1, 1), *dy_ = upf(dy, n);
    Grad gx = grad_new(n);
    CPU->dropout_bwd(gx.cpu, dy, keep, p, n);
    GPU->dropout_bwd(gx.dev, dy_, keep_, p, n);
    cmp_grad(&st, "dx", &gx);
    st_end(&st);
}

// relu_fwd: values and keep bytes exact, special values included (NaN and -0 are not kept).
static void test_relu(void) {
    Stat st = st_begin("relu", 0);
    size_t n = 10007;
    float *x = frandn(n, -1, 1);
    const float special[] = {0.0f, -0.0f, NAN, -NAN, INFINITY, -INFINITY, 1e-40f, -1e-40f, 1e-45f,
                             3.4e38f, -3.4e38f};
    memcpy(x, special, sizeof special);
    float *y = falloc(n);
    uint8_t *keep = halloc(n);
    CPU->relu_fwd(y, keep, x, n);
    float *x_ = upf(x, n), *y_ = dalloc_bytes(n * sizeof(float));
    uint8_t *keep_ = dalloc_bytes(n);
    GPU->relu_fwd(y_, keep_, x_, n);
    cmp_exact(&st, "y", down(y_, n), y, n, sizeof(float));
    cmp_exact(&st, "keep", down_bytes(keep_, n), keep, n, 1);
    // in place (y == x), as a graph may reuse the input buffer
    cuda_memset(keep_, 0xFF, n);
    GPU->relu_fwd(x_, keep_, x_, n);
    cmp_exact(&st, "y_inplace", down(x_, n), y, n, sizeof(float));
    cmp_exact(&st, "keep_inplace", down_bytes(keep_, n), keep, n, 1);
    GPU->relu_fwd(y_, keep_, x_, 0);  // n == 0: nothing launched, nothing written
    st_end(&st);
}

// dropout_mask: the device mask is the CPU mask, byte for byte, for sizes that do and do not
// fill whole blocks, at an odd device address, and at the rates 0 and 1.
static void test_dropout_mask(void) {
    Stat st = st_begin("dropout_mask", 0);
    static const struct {
        size_t n;
        float p;
        uint64_t seed;
    } cases[] = {
        {1, 0.5f, 42},          {255, 0.1f, 0},          {257, 0.3f, 1},
        {4099, 0.5f, ~0ull},    {(1u << 20) + 3, 0.1f, 0x9E3779B97F4A7C15ull},
        {65537, 0.0f, 7},       {65537, 1.0f, 7},        {100003, 0.999f, 123456789},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = cases[c].n;
        uint8_t *want = halloc(n), *buf_ = dalloc_bytes(n + 1);
        CPU->dropout_mask(want, n, cases[c].p, cases[c].seed);
        uint8_t *keep_ = buf_ + (c & 1);  // odd cases start at an odd address
        GPU->dropout_mask(keep_, n, cases[c].p, cases[c].seed);
        char what[64];
        snprintf(what, sizeof what, "mask_n%zu_p%g", n, (double)cases[c].p);
        cmp_exact(&st, what, down_bytes(keep_, n), want, n, 1);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) kept += want[i];
        if (cases[c].p == 0.0f) check_true(&st, kept == n, "p = 0 dropped a value");
        if (cases[c].p == 1.0f) check_true(&st, kept == 0, "p = 1 kept a value");
    }
    GPU->dropout_mask(NULL, 0, 0.5f, 1);  // n == 0: nothing launched
    st_end(&st);
}

// ---------------------------------------------------------------------------------------------
// attention

typedef struct {
    const char *name;
    int B, Tq, Tk, C, H, causal;
    int fused;             // q, k, v from one (B*T, 3C) buffer (self-attention only)
    int padq, padk, padv;  // extra row stride beyond C when not fused
    int mask_kind;         // 0 none, 1 mixed (-inf, -1e4, additive 0.5), 2 last batch fully masked
    float p;               // attention dropout rate (0: no keep mask)
} AttnCase;

static void test_attention_case(const AttnCase *ac) {
    Stat st = st_begin(ac->name, 1);
    const int B = ac->B, Tq = ac->Tq, Tk = ac->Tk, C = ac->C, H = ac->H;
    float *buf[3];
    size_t len[3];
    int nbuf, ldq, ldk, ldv;
    const float *q, *k, *v;
    if (ac->fused) {
        nbuf = 1;
        ldq = ldk = ldv = 3 * C;
        len[0] = (size_t)B * Tq * 3 * C;
        buf[0] = frandn(len[0], -1.5f, 1.5f);
        q = buf[0], k = buf[0] + C, v = buf[0] + 2 * C;
    } else {
        nbuf = 3;
        ldq = C + ac->padq, ldk = C + ac->padk, ldv = C + ac->padv;
        len[0] = (size_t)B * Tq * ldq, len[1] = (size_t)B * Tk * ldk, len[2] = (size_t)B * Tk * ldv;
        for (int i = 0; i < 3; i++) buf[i] = frandn(len[i], -1.5f, 1.5f);
        q = buf[0], k = buf[1], v = buf[2];
    }
    float *mask = NULL;
    if (ac->mask_kind) {
        mask = falloc((size_t)B * Tk);
        if (ac->mask_kind == 1) {
            mask[Tk - 1] = -INFINITY;
            if (B > 1) {
                mask[1 * Tk + 1] = -10000.0f;
                if (Tk > 3) mask[1 * Tk + 3] = -10000.0f;
                mask[1 * Tk + 0] = 0.5f;
            }
        } else {
            for (int j = 0; j < Tk; j++) mask[(size_t)(B - 1) * Tk + j] = -INFINITY;
            mask[0] = -1.0f;
        }
    }
    size_t TT = (size_t)Tq * Tk, np = (size_t)B * H * TT, nout = (size_t)B * Tq * C;
    uint8_t *keep = ac->p > 0 ? keep_mask(np, ac->p) : NULL;
    float *out = falloc(nout), *probs = falloc(np);
    CPU->attention_fwd(out, probs, q, ldq, k, ldk, v, ldv, mask, keep, ac->p, B, Tq, Tk, C, H, ac->causal);

    float *dbuf[3];
    for (int i = 0; i < nbuf; i++) dbuf[i] = upf(buf[i], len[i]);
    const float *q_ = dbuf[0], *k_ = ac->fused ? dbuf[0] + C : dbuf[1], *v_ = ac->fused ? dbuf[0] + 2 * C : dbuf[2];
    float *mask_ = upf(mask, (size_t)B * Tk);
    uint8_t *keep_ = up(keep, np);
    float *out_ = dalloc_bytes(nout * sizeof(float)), *probs_ = dalloc_bytes(np * sizeof(float));
    GPU->attention_fwd(out_, probs_, q_, ldq, k_, ldk, v_, ldv, mask_, keep_, ac->p, B, Tq, Tk, C, H,
                       ac->causal);
    float *gout = down(out_, nout), *gprobs = down(probs_, np);
    cmp(&st, "out", gout, out, nout);
    cmp(&st, "probs", gprobs, probs, np);
    int finite = 1;
    for (size_t i = 0; i < nout; i++) finite &= isfinite(gout[i]) != 0;
    for (size_t i = 0; i < np; i++) finite &= isfinite(gprobs[i]) != 0;
    check_true(&st, finite, "non-finite forward");

    float *dout = frandn(nout, -1, 1), *dout_ = upf(dout, nout);
    Grad g[3];
    for (int i = 0; i < nbuf; i++) g[i] = grad_new(len[i]);
    float *dq = g[0].cpu, *dk = ac->fused ? g[0].cpu + C : g[1].cpu, *dv = ac->fused ? g[0].cpu + 2 * C : g[2].cpu;
    float *dq_ = g[0].dev, *dk_ = ac->fused ? g[0].dev + C : g[1].dev, *dv_ = ac->fused ? g[0].dev + 2 * C : g[2].dev;
    float *scratch = falloc(2 * TT);
    CPU->attention_bwd(dq, dk, dv, dout, probs, q, ldq, k, ldk, v, ldv, keep, ac->p, B, Tq, Tk, C, H, scratch);
    GPU->attention_bwd(dq_, dk_, dv_, dout_, probs_, q_, ldq, k_, ldk, v_, ldv, keep_, ac->p, B, Tq, Tk,
                       C, H, NULL);
    const char *names[3] = {ac->fused ? "dqkv" : "dq", "dk", "dv"};
    for (int i = 0; i < nbuf; i++) cmp_grad(&st, names[i], &g[i]);
    if (!ac->fused) {  // only dk requested
        Grad g2 = grad_new(len[1]);
        CPU->attention_bwd(NULL, g2.cpu, NULL, dout, probs, q, ldq, k, ldk, v, ldv, keep, ac->p, B, Tq,
                           Tk, C, H, scratch);
        GPU->attention_bwd(NULL, g2.dev, NULL, dout_, probs_, q_, ldq, k_, ldk, v_, ldv, keep_, ac->p,
                           B, Tq, Tk, C, H, NULL);
        cmp_grad(&st, "dk_only", &g2);
    }
    st_end(&st);
}

static void test_attention(void) {
    static const AttnCase cases[] = {
        // the CPU test's cases (tests/test_ops.c)
        {"attention_cross_mask", 2, 3, 5, 8, 2, 0, 0, 3, 0, 1, 1, 0.0f},
        {"attention_causal_qkv_dropout", 2, 5, 5, 8, 2, 1, 1, 0, 0, 0, 1, 0.25f},
        {"attention_fully_masked", 2, 3, 4, 6, 3, 0, 0, 0, 2, 1, 2, 0.25f},
        {"attention_single_pair_dropout", 1, 5, 3, 4, 1, 0, 0, 1, 0, 0, 0, 0.25f},
        // model-like shapes: ViT self-attention from a fused qkv, BERT fusion cross-attention
        {"attention_vit_qkv_65x96", 3, 65, 65, 96, 3, 0, 1, 0, 0, 0, 0, 0.1f},
        {"attention_cross_31x257", 2, 31, 257, 128, 4, 0, 0, 0, 0, 0, 1, 0.0f},
        {"attention_causal_masked_40", 3, 40, 40, 64, 2, 1, 0, 8, 4, 0, 2, 0.1f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_attention_case(&cases[i]);
}

// ---------------------------------------------------------------------------------------------
// losses and row ops

static void test_xent_case(const char *name, int M, int V, int use_labels, int use_soft, float alpha) {
    Stat st = st_begin(name, 0);
    size_t n = (size_t)M * V;
    int32_t *labels = NULL;
    if (use_labels) {
        labels = halloc((size_t)M * sizeof(int32_t));
        for (int r = 0; r < M; r++) labels[r] = (int32_t)(urand() * V) % V;
    }
    float *soft = NULL;
    if (use_soft) {
        soft = falloc(n);
        for (int r = 0; r < M; r++) {
            double s = 0;
            for (int j = 0; j < V; j++) soft[(size_t)r * V + j] = urand() < 0.2 ? 0.0f : frand(0, 1);
            for (int j = 0; j < V; j++) s += soft[(size_t)r * V + j];
            for (int j = 0; j < V; j++) soft[(size_t)r * V + j] /= (float)s;
        }
    }
    float *logits = frandn(n, -3, 3);
    for (int j = 0; j < V; j++) logits[j] += 100.0f;  // a shifted row
    float *probs = falloc(n);
    float loss = CPU->xent_fwd(probs, logits, labels, soft, alpha, M, V);
    float *logits_ = upf(logits, n), *soft_ = upf(soft, n), *probs_ = dalloc_bytes(n * sizeof(float));
    int32_t *labels_ = up(labels, (size_t)M * sizeof(int32_t));
    float gl = got_scalar(GPU->xent_fwd(probs_, logits_, labels_, soft_, alpha, M, V));
    cmp_scalar(&st, "loss", gl, loss);
    cmp(&st, "probs", down(probs_, n), probs, n);
    Grad gd = grad_new(n);
    CPU->xent_bwd(gd.cpu, 1.3f, probs, labels, soft, alpha, M, V);
    GPU->xent_bwd(gd.dev, 1.3f, probs_, labels_, soft_, alpha, M, V);
    cmp_grad(&st, "dlogits", &gd);
    st_end(&st);
}

static void test_xent(void) {
    test_xent_case("xent_mixed", 37, 1000, 1, 1, 0.4f);
    test_xent_case("xent_labels_itm", 192, 2, 1, 0, 0.4f);
    test_xent_case("xent_soft", 9, 577, 0, 1, 0.4f);
    test_xent_case("xent_vocab", 5, 30522, 1, 1, 0.4f);
}

static void test_l2norm(void) {
    Stat st = st_begin("l2norm", 0);
    int M = 40, C = 256;
    size_t n = (size_t)M * C;
    float *x = frandn(n, -1, 1);
    for (int c = 0; c < C; c++) x[(size_t)3 * C + c] = 0.0f;        // a zero row: the clamp
    for (int c = 0; c < C; c++) x[(size_t)5 * C + c] *= 1e-3f;      // a short one
    float *y = falloc(n), *norms = falloc(M);
    CPU->l2norm_fwd(y, norms, x, M, C);
    float *x_ = upf(x, n), *y_ = dalloc_bytes(n * sizeof(float)), *norms_ = dalloc_bytes(M * sizeof(float));
    GPU->l2norm_fwd(y_, norms_, x_, M, C);
    cmp(&st, "y", down(y_, n), y, n);
    cmp(&st, "norms", down(norms_, M), norms, M);
    float *dy = frandn(n, -1, 1), *dy_ = upf(dy, n);
    Grad gx = grad_new(n);
    CPU->l2norm_bwd(gx.cpu, dy, y, norms, M, C);
    GPU->l2norm_bwd(gx.dev, dy_, y_, norms_, M, C);
    cmp_grad(&st, "dx", &gx);
    st_end(&st);
}

static void test_div_scalar(void) {
    Stat st = st_begin("div_scalar", 0);
    size_t n = 5000;
    float s = 0.07f;
    float *x = frandn(n, -1, 1), *y = falloc(n), *x_ = upf(x, n), *s_ = upf(&s, 1);
    float *y_ = dalloc_bytes(n * sizeof(float));
    CPU->div_scalar_fwd(y, x, &s, n);
    GPU->div_scalar_fwd(y_, x_, s_, n);
    cmp(&st, "y", down(y_, n), y, n);
    float *dy = frandn(n, -1, 1), *dy_ = upf(dy, n);
    Grad gx = grad_new(n), gs = grad_new(1);
    CPU->div_scalar_bwd(gx.cpu, gs.cpu, dy, x, &s, n);
    GPU->div_scalar_bwd(gx.dev, gs.dev, dy_, x_, s_, n);
    cmp_grad(&st, "dx", &gx);
    cmp_grad(&st, "ds", &gs);
    Grad gs2 = grad_new(1);  // ds only
    CPU->div_scalar_bwd(NULL, gs2.cpu, dy, x, &s, n);
    GPU->div_scalar_bwd(NULL, gs2.dev, dy_, x_, s_, n);
    cmp_grad(&st, "ds_only", &gs2);
    st_end(&st);
}

static void test_mse_l1(void) {
    Stat st = st_begin("mse_rows_l1", 0);
    int R = 50, P = 768;
    size_t n = (size_t)R * P;
    float *pred = frandn(n, -1, 1), *target = frandn(n, -1, 1), *w = falloc(R);
    for (int r = 0; r < R; r++) w[r] = r % 3 == 0 ? 0.0f : frand(0.5f, 1.0f);
    float *pred_ = upf(pred, n), *target_ = upf(target, n), *w_ = upf(w, R);
    cmp_scalar(&st, "mse", got_scalar(GPU->mse_rows_fwd(pred_, target_, w_, R, P)),
               CPU->mse_rows_fwd(pred, target, w, R, P));
    Grad gp = grad_new(n);
    CPU->mse_rows_bwd(gp.cpu, 0.7f, pred, target, w, R, P);
    GPU->mse_rows_bwd(gp.dev, 0.7f, pred_, target_, w_, R, P);
    cmp_grad(&st, "dpred", &gp);
    // all weights zero: loss 0, no gradient
    float *w0 = falloc(R), *w0_ = upf(w0, R);
    cmp_scalar(&st, "mse_w0", got_scalar(GPU->mse_rows_fwd(pred_, target_, w0_, R, P)), 0.0f);
    Grad gp0 = grad_new(n);
    GPU->mse_rows_bwd(gp0.dev, 0.7f, pred_, target_, w0_, R, P);
    cmp_grad(&st, "dpred_w0", &gp0);
    // l1
    cmp_scalar(&st, "l1", got_scalar(GPU->l1_fwd(pred_, target_, n)), CPU->l1_fwd(pred, target, n));
    Grad ga = grad_new(n);
    CPU->l1_bwd(ga.cpu, 1.1f, pred, target, n);
    GPU->l1_bwd(ga.dev, 1.1f, pred_, target_, n);
    cmp_grad(&st, "da", &ga);
    st_end(&st);
}

static void test_gather(void) {
    Stat st = st_begin("gather_rows", 0);
    int R = 100, D = 768, n = 300;
    float *x = frandn((size_t)R * D, -1, 1);
    int32_t *idx = halloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) idx[i] = i < 20 ? 7 : (int32_t)(urand() * R) % R;  // repeats
    float *y = falloc((size_t)n * D);
    CPU->gather_rows_fwd(y, x, idx, n, D);
    float *x_ = upf(x, (size_t)R * D), *y_ = dalloc_bytes((size_t)n * D * sizeof(float));
    int32_t *idx_ = up(idx, (size_t)n * sizeof(int32_t));
    GPU->gather_rows_fwd(y_, x_, idx_, n, D);
    cmp(&st, "y", down(y_, (size_t)n * D), y, (size_t)n * D);
    float *dy = frandn((size_t)n * D, -1, 1), *dy_ = upf(dy, (size_t)n * D);
    Grad gx = grad_new((size_t)R * D);
    CPU->gather_rows_bwd(gx.cpu, dy, idx, n, D);
    GPU->gather_rows_bwd(gx.dev, dy_, idx_, n, D);  // deterministic mode in the hashed passes
    cmp_grad(&st, "dx", &gx);
    // the atomicAdd path (not bit-reproducible, so not hashed)
    Grad ga = grad_new((size_t)R * D);
    CPU->gather_rows_bwd(ga.cpu, dy, idx, n, D);
    cuda_set_deterministic(0);
    GPU->gather_rows_bwd(ga.dev, dy_, idx_, n, D);
    cuda_set_deterministic(1);
    float *h = falloc((size_t)R * D);
    cuda_memcpy_d2h(h, ga.dev, (size_t)R * D * sizeof(float));
    cmp(&st, "dx_atomic", h, ga.cpu, (size_t)R * D);
    st_end(&st);
}

static void test_softmax_rows(void) {
    Stat st = st_begin("softmax_rows", 0);
    int M = 7, V = 65600;
    size_t n = (size_t)M * V;
    float *x = frandn(n, -20, 20);
    for (int j = 0; j < V; j++) x[(size_t)2 * V + j] = -INFINITY;  // a fully masked row -> zeros
    float *y = falloc(n);
    CPU->softmax_rows(y, x, M, V);
    float *x_ = upf(x, n), *y_ = dalloc_bytes(n * sizeof(float));
    GPU->softmax_rows(y_, x_, M, V);
    cmp(&st, "y", down(y_, n), y, n);
    GPU->softmax_rows(x_, x_, M, V);  // in place
    cmp(&st, "y_inplace", down(x_, n), y, n);
    st_end(&st);
}

static void run_op_tests(void) {
    rng_reset();
    test_id = 0;
    test_linear();
    test_layernorm();
    test_gelu();
    test_add_family();
    test_dropout();
    test_relu();
    test_dropout_mask();
    test_attention();
    test_xent();
    test_l2norm();
    test_div_scalar();
    test_mse_l1();
    test_gather();
    test_softmax_rows();
}

// ---------------------------------------------------------------------------------------------
// Optimizer and model-state kernels against the CPU code.

static void test_optim(void) {
    Stat st = st_begin("adamw_ema_queue", 0);
    size_t n = 100003;
    float *p = frandn(n, -1, 1);
    uint8_t *decay = halloc(n);
    for (size_t i = 0; i < n; i++) decay[i] = i % 3 ? 1 : 0;
    float *p_ = upf(p, n);
    uint8_t *decay_ = up(decay, n);
    float *m_ = dalloc_bytes(n * sizeof(float)), *v_ = dalloc_bytes(n * sizeof(float));
    cuda_memset(m_, 0, n * sizeof(float));
    cuda_memset(v_, 0, n * sizeof(float));
    uint16_t *pb_ = dalloc_bytes(n * sizeof(uint16_t));
    // the CPU optimizer (src/train/optim.c) runs ops_cpu.adamw_step on its buffers
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.02f;
    float *m = falloc(n), *v = falloc(n);
    for (int step = 1; step <= 3; step++) {
        float *g = frandn(n, -1, 1), *g_ = upf(g, n);
        float lr = 1e-3f * step;
        CPU->adamw_step(p, g, m, v, decay, n, lr, b1, b2, eps, wd, step);
        cuda_adamw_step(p_, g_, m_, v_, decay_, n, lr, b1, b2, eps, wd, step, step == 3 ? pb_ : NULL);
    }
    float *pg = down(p_, n);
    cmp(&st, "adamw_p", pg, p, n);
    cmp(&st, "adamw_m", down(m_, n), m, n);
    cmp(&st, "adamw_v", down(v_, n), v, n);
    uint16_t *pb = halloc(n * sizeof(uint16_t));
    cuda_memcpy_d2h(pb, pb_, n * sizeof(uint16_t));
    int bf_ok = 1;
    for (size_t i = 0; i < n; i++) {  // the bf16 copy is the fp32 result rounded to nearest even
        uint32_t u;
        memcpy(&u, &pg[i], 4);
        uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
        bf_ok &= pb[i] == (uint16_t)r;
    }
    check_true(&st, bf_ok, "bf16 copy is not the rounded fp32 parameters");
    // momentum EMA
    float *pm = frandn(n, -1, 1), *pm_ = upf(pm, n);
    for (size_t i = 0; i < n; i++) pm[i] = 0.995f * pm[i] + (1.0f - 0.995f) * p[i];
    cuda_ema_update(pm_, p_, n, 0.995f);
    cmp(&st, "ema", down(pm_, n), pm, n);
    // queue: two enqueues of 4 rows into a queue of 8, wrapping
    int Q = 8, E = 5, ptr = 4;
    float *qi_ = dalloc_bytes((size_t)Q * E * sizeof(float)), *qt_ = dalloc_bytes((size_t)Q * E * sizeof(float));
    cuda_memset(qi_, 0, (size_t)Q * E * sizeof(float));
    cuda_memset(qt_, 0, (size_t)Q * E * sizeof(float));
    float *fi = frandn(4 * E, -1, 1), *ft = frandn(4 * E, -1, 1), *fi2 = frandn(4 * E, -1, 1);
    cuda_queue_enqueue(qi_, qt_, &ptr, Q, E, upf(fi, 4 * E), upf(ft, 4 * E), 4);
    cuda_queue_enqueue(qi_, qt_, &ptr, Q, E, upf(fi2, 4 * E), upf(ft, 4 * E), 4);
    float *qi = down(qi_, (size_t)Q * E), *want = falloc((size_t)Q * E);
    memcpy(want, fi2, 4 * E * sizeof(float));
    memcpy(want + 4 * E, fi, 4 * E * sizeof(float));
    cmp(&st, "queue", qi, want, (size_t)Q * E);
    check_true(&st, ptr == 4, "queue pointer did not wrap to 4");
    // clamp, finite check, scale
    float t = 0.9f, *t_ = upf(&t, 1);
    cuda_clamp_scalar(t_, 0.001f, 0.5f);
    float tc = 0.0f;
    cuda_memcpy_d2h(&tc, t_, sizeof(float));
    check_true(&st, tc == 0.5f, "clamp");
    check_true(&st, cuda_all_finite(p_, n) == 1, "all_finite on finite values");
    float bad = NAN;
    cuda_memcpy_h2d_sync(p_ + n / 2, &bad, sizeof(float));
    check_true(&st, cuda_all_finite(p_, n) == 0, "all_finite missed a NaN");
    float *sc = frandn(1000, -1, 1), *sc_ = upf(sc, 1000);
    for (int i = 0; i < 1000; i++) sc[i] *= 0.25f;
    cuda_scale(sc_, 0.25f, 1000);
    cmp(&st, "scale", down(sc_, 1000), sc, 1000);
    // device dropout masks: keep rate, reproducible per seed, different across seeds
    size_t nk = 1 << 20;
    uint8_t *k1_ = dalloc_bytes(nk), *k2_ = dalloc_bytes(nk), *k3_ = dalloc_bytes(nk);
    cuda_dropout_mask(k1_, nk, 0.3f, 42);
    cuda_dropout_mask(k2_, nk, 0.3f, 42);
    cuda_dropout_mask(k3_, nk, 0.3f, 43);
    uint8_t *k1 = halloc(nk), *k2 = halloc(nk), *k3 = halloc(nk);
    cuda_memcpy_d2h(k1, k1_, nk);
    cuda_memcpy_d2h(k2, k2_, nk);
    cuda_memcpy_d2h(k3, k3_, nk);
    size_t kept = 0, same13 = 0, bad_byte = 0;
    for (size_t i = 0; i < nk; i++) kept += k1[i], same13 += k1[i] == k3[i], bad_byte += k1[i] > 1;
    double rate = (double)kept / nk;
    check_true(&st, fabs(rate - 0.7) < 0.003 && !bad_byte, "dropout mask keep rate is not 0.7");
    check_true(&st, memcmp(k1, k2, nk) == 0, "dropout mask differs for the same seed");
    check_true(&st, same13 < nk * 0.62, "dropout masks of two seeds are not independent");
    st_end(&st);
}

// ---------------------------------------------------------------------------------------------
// The memory members of the op table: the same sequence of allocations, copies and zeroing on
// both backends must leave the same bytes (the CPU's are plain memcpy/memset).

static void fill_bytes(uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(urand() * 256.0);
}

// Device memory from the table, released with the test's device allocations (cuda_free is
// mem_free).
static void *gpu_alloc(Stat *st, size_t bytes) {
    void *p = GPU->mem_alloc(bytes);
    check_true(st, (uintptr_t)p % 64 == 0, "mem_alloc is not 64-byte aligned");
    track(&d_tracked, &n_d, &cap_d, p);
    return p;
}

// copy_d2h_2d of rows x width bytes from src + src_off (pitch spitch) into a host buffer of
// pitch dpitch pre-filled with a sentinel, on both backends; the rows and the gaps between them
// must match byte for byte (the gaps keep the sentinel).
static void check_2d(Stat *st, const char *what, const uint8_t *src_cpu, const uint8_t *src_dev,
                     size_t dpitch, size_t spitch, size_t width, size_t rows) {
    size_t span = rows ? (rows - 1) * dpitch + width : 0;
    uint8_t *want = halloc(span + 1), *got = halloc(span + 1);
    memset(want, 0xA5, span + 1), memset(got, 0xA5, span + 1);
    CPU->copy_d2h_2d(want, dpitch, src_cpu, spitch, width, rows);
    GPU->copy_d2h_2d(got, dpitch, src_dev, spitch, width, rows);
    cmp_exact(st, what, got, want, span + 1, 1);
}

static void test_memory(void) {
    Stat st = st_begin("memory_copies", 0);
    check_true(&st, GPU->host_memory == 0 && CPU->host_memory == 1, "host_memory flags");
    // 0 bytes: harmless everywhere (NULL from mem_alloc is a valid 0-byte region)
    uint8_t scratch[16] = {0};
    void *z = GPU->mem_alloc(0);
    GPU->mem_zero(z, 0);
    GPU->copy_h2d(z, scratch, 0);
    GPU->copy_d2h(scratch, z, 0);
    GPU->copy_d2d(z, z, 0);
    GPU->copy_d2h_2d(scratch, 8, z, 8, 0, 3);
    GPU->copy_d2h_2d(scratch, 8, z, 8, 4, 0);
    GPU->mem_free(z);
    GPU->mem_free(NULL);
    GPU->synchronize();

    // h2d from a buffer that is overwritten as soon as the copy returns, d2d, mem_zero at an odd
    // offset and length, d2h; the same on the CPU backend
    size_t nb = 1000003;
    uint8_t *a = halloc(nb), *tmp = halloc(nb);
    fill_bytes(a, nb);
    uint8_t *c1 = CPU->mem_alloc(nb), *c2 = CPU->mem_alloc(nb);
    track(&h_tracked, &n_h, &cap_h, c1), track(&h_tracked, &n_h, &cap_h, c2);
    uint8_t *d1 = gpu_alloc(&st, nb), *d2 = gpu_alloc(&st, nb);
    CPU->copy_h2d(c1, a, nb);
    memcpy(tmp, a, nb);
    GPU->copy_h2d(d1, tmp, nb);
    memset(tmp, 0, nb);  // "src may be reused on return"
    uint8_t *back = halloc(nb);
    GPU->copy_d2h(back, d1, nb);
    cmp_exact(&st, "h2d_d2h", back, a, nb, 1);
    CPU->copy_d2d(c2, c1, nb);
    GPU->copy_d2d(d2, d1, nb);
    CPU->mem_zero(c2 + 13, 777);
    GPU->mem_zero(d2 + 13, 777);
    GPU->copy_d2h(back, d2, nb);
    cmp_exact(&st, "d2d_zero", back, c2, nb, 1);
    size_t nz = 0;
    for (size_t i = 13; i < 13 + 777; i++) nz += back[i] != 0;
    check_true(&st, nz == 0, "mem_zero left non-zero bytes");
    GPU->mem_zero(d1, nb);  // whole buffer, then read back
    GPU->copy_d2h(back, d1, nb);
    nz = 0;
    for (size_t i = 0; i < nb; i++) nz += back[i] != 0;
    check_true(&st, nz == 0, "mem_zero of a whole buffer");

    // copy_d2h_2d: strided rows (odd width, pitches and start), rows back to back, one row
    check_2d(&st, "2d_strided", c2 + 3, d2 + 3, 700, 1000, 613, 37);
    check_2d(&st, "2d_contiguous", c2, d2, 512, 512, 512, 100);
    check_2d(&st, "2d_one_row", c2 + 1, d2 + 1, 4096, 4096, 4095, 1);
    check_2d(&st, "2d_width_eq_spitch", c2, d2, 333, 300, 300, 50);
    check_2d(&st, "2d_dpitch_eq_width", c2, d2, 64, 1000, 64, 900);

    // a source pitch beyond cudaMemcpy2D's limit (cudaDevAttrMaxPitch, 2^31 - 1 on current
    // GPUs): the row-by-row fallback
    size_t big = ((size_t)1 << 31) + 512, w = 100;
    uint8_t *dbig = gpu_alloc(&st, big + w), *rows2 = halloc(2 * w);
    fill_bytes(rows2, 2 * w);
    GPU->copy_h2d(dbig, rows2, w);
    GPU->copy_h2d(dbig + big, rows2 + w, w);
    uint8_t *got2 = halloc(2 * 128);
    memset(got2, 0xA5, 2 * 128);
    GPU->copy_d2h_2d(got2, 128, dbig, big, w, 2);
    cmp_exact(&st, "2d_huge_pitch_row0", got2, rows2, w, 1);
    cmp_exact(&st, "2d_huge_pitch_row1", got2 + 128, rows2 + w, w, 1);
    check_true(&st, got2[w] == 0xA5 && got2[127] == 0xA5, "2d_huge_pitch wrote between rows");
    GPU->synchronize();
    st_end(&st);
}

// ---------------------------------------------------------------------------------------------
// The training-state members of the op table against ops_cpu's.

static void test_train_state(void) {
    Stat st = st_begin("adamw_ema_finite_clamp_ops", 0);
    const double tol = 1e-6;
    size_t n = 100003;
    float *p = frandn(n, -1, 1), *m = falloc(n), *v = falloc(n);
    uint8_t *decay = halloc(n);
    for (size_t i = 0; i < n; i++) decay[i] = i % 5 ? 1 : 0;
    float *p_ = upf(p, n), *m_ = upf(m, n), *v_ = upf(v, n);
    uint8_t *decay_ = up(decay, n);
    const int64_t steps[] = {1, 2, 3, 1000};  // 1000: bias corrections near 1
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        float *g = frandn(n, -2, 2), *g_ = upf(g, n);
        float lr = 1e-3f / (float)(k + 1);
        CPU->adamw_step(p, g, m, v, decay, n, lr, 0.9f, 0.98f, 1e-6f, 0.05f, steps[k]);
        GPU->adamw_step(p_, g_, m_, v_, decay_, n, lr, 0.9f, 0.98f, 1e-6f, 0.05f, steps[k]);
    }
    GPU->adamw_step(p_, p_, m_, v_, decay_, 0, 1.0f, 0.9f, 0.98f, 1e-6f, 0.05f, 5);  // n == 0
    cmp_tol(&st, "adamw_p", down(p_, n), p, n, tol, tol);
    cmp_tol(&st, "adamw_m", down(m_, n), m, n, tol, tol);
    cmp_tol(&st, "adamw_v", down(v_, n), v, n, tol, tol);

    float *pm = frandn(n, -1, 1), *pm_ = upf(pm, n), *pc_ = upf(p, n);  // the same p on both
    for (int k = 0; k < 3; k++) {
        CPU->ema(pm, p, n, 0.995f);
        GPU->ema(pm_, pc_, n, 0.995f);
    }
    GPU->ema(pm_, pc_, 0, 0.5f);  // n == 0
    cmp_tol(&st, "ema", down(pm_, n), pm, n, tol, tol);

    // all_finite: finite, one non-finite value at the first, a middle and the last index (n is
    // not a multiple of the block), n == 0 and n == 1
    float *x = frandn(n, -1e30f, 1e30f), *x_ = upf(x, n);
    check_true(&st, GPU->all_finite(x_, n) == 1 && CPU->all_finite(x, n) == 1, "all_finite, finite");
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const size_t at[] = {0, n / 2 + 1, n - 1};
    for (int b = 0; b < 3; b++)
        for (int a = 0; a < 3; a++) {
            float keep = x[at[a]];
            x[at[a]] = bad[b];
            cuda_memcpy_h2d_sync(x_ + at[a], &x[at[a]], sizeof(float));
            int g = GPU->all_finite(x_, n), c = CPU->all_finite(x, n);
            char what[96];
            snprintf(what, sizeof what, "all_finite missed %g at %zu (gpu %d, cpu %d)", (double)bad[b],
                     at[a], g, c);
            check_true(&st, g == 0 && c == 0, what);
            x[at[a]] = keep;
            cuda_memcpy_h2d_sync(x_ + at[a], &keep, sizeof(float));
        }
    check_true(&st, GPU->all_finite(x_, n) == 1, "all_finite after restoring");
    check_true(&st, GPU->all_finite(x_, 0) == 1 && CPU->all_finite(x, 0) == 1, "all_finite, n = 0");
    x[0] = NAN;
    cuda_memcpy_h2d_sync(x_, x, sizeof(float));
    check_true(&st, GPU->all_finite(x_, 1) == 0 && CPU->all_finite(x, 1) == 0, "all_finite, n = 1");
    check_true(&st, GPU->all_finite(x_ + 1, 1) == 1, "all_finite, n = 1 finite");

    // clamp_scalar: below, at, inside, above the bounds, infinities, NaN (kept by both)
    const float vals[] = {-1.0f, 0.0005f, 0.001f, 0.07f, 0.5f, 3.0f, -INFINITY, INFINITY, NAN};
    const size_t nv = sizeof vals / sizeof vals[0];
    float *cv = falloc(nv), *cv_ = upf(vals, nv);
    memcpy(cv, vals, sizeof vals);
    for (size_t i = 0; i < nv; i++) {
        CPU->clamp_scalar(cv + i, 0.001f, 0.5f);
        GPU->clamp_scalar(cv_ + i, 0.001f, 0.5f);
    }
    cmp_exact(&st, "clamp", down(cv_, nv), cv, nv, sizeof(float));
    st_end(&st);
}

// dropout_mask past the grid-stride cap of grid_for (65535*16 blocks of 256 threads): the
// threads loop a second time, and the mask must still be the CPU's.
static void test_dropout_mask_huge(void) {
    Stat st = st_begin("dropout_mask_grid_stride", 0);
    size_t n = (size_t)65535 * 16 * 256 + 4099;
    uint8_t *want = halloc(n), *keep_ = dalloc_bytes(n);
    CPU->dropout_mask(want, n, 0.25f, 2024);
    GPU->dropout_mask(keep_, n, 0.25f, 2024);
    uint8_t *got = halloc(n);
    GPU->copy_d2h(got, keep_, n);
    cmp_exact(&st, "mask", got, want, n, 1);
    st_end(&st);
}

// One-rank NCCL communicator: the mean all-reduce and the all-gather are the identity.
static void test_nccl(void) {
    if (!nccl_dist_available()) {
        printf("skip nccl: built without NCCL\n");
        return;
    }
    Stat st = st_begin("nccl_one_rank", 0);
    char id[NCCL_DIST_ID_BYTES];
    nccl_dist_unique_id(id);
    NcclDist *nd = nccl_dist_create(id, 0, 1);
    size_t n = 10000;
    float *x = frandn(n, -1, 1), *x_ = upf(x, n), *r_ = dalloc_bytes(n * sizeof(float));
    nccl_allreduce_mean(nd, x_, n, 4096);
    cmp(&st, "allreduce_mean", down(x_, n), x, n);
    nccl_allgather(nd, x_, r_, n);
    cmp(&st, "allgather", down(r_, n), x, n);
    check_true(&st, nccl_sum_int(nd, 3) == 3, "sum_int");
    nccl_dist_destroy(nd);
    st_end(&st);
}

int main(void) {
    int ndev = cuda_device_count();
    if (ndev <= 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    if (cuda_backend_init(0, 0) != 0) {
        fprintf(stderr, "FAIL: cuda_backend_init\n");
        return 1;
    }
    char name[256];
    double pb, pf;
    cuda_device_info(name, sizeof name, &pb, &pf);
    printf("device 0 of %d: %s (peak estimate %.0f TFLOP/s bf16, %.1f fp32)\n", ndev, name, pb / 1e12,
           pf / 1e12);
    cuda_set_deterministic(1);

    // 1. fp32, recording result hashes
    bf16 = 0, mode = "fp32", recording = 1;
    cuda_set_bf16(0);
    run_op_tests();
    recording = 0;
    // 2. the same again: identical bits?
    int before = n_failed;
    comparing = 1, quiet = 1;
    run_op_tests();
    comparing = 0, quiet = 0;
    printf("%s determinism: %d op tests bit-identical over two runs%s\n",
           det_mismatch || n_failed > before ? "FAIL" : "ok  ", test_id,
           det_mismatch ? " (see FAIL lines)" : "");
    // 3. bf16 tensor-core GEMMs
    bf16 = 1, mode = "bf16";
    cuda_set_bf16(1);
    run_op_tests();
    bf16 = 0, mode = "fp32";
    cuda_set_bf16(0);
    // 4. optimizer kernels and NCCL
    rng_reset();
    test_id = 0;
    test_optim();
    test_memory();
    test_train_state();
    test_dropout_mask_huge();
    test_nccl();

    cuda_backend_shutdown();
    free(h_tracked), free(d_tracked);
    printf("%s: %d of %d checks failed\n", n_failed ? "FAIL" : "PASS", n_failed, n_checked);
    return n_failed ? 1 : 0;
}
