// test_ops.c: checks every op of the CPU backend (ops_cpu.c).
//
// Forward: against naive references written here (simple loops, double accumulation).
// Backward: against central finite differences in double of a scalar L = sum(y * r) with a fixed
// random r (for the loss ops L is the loss itself, times the dloss passed to backward). Inputs are
// perturbed in fp32 (the step actually taken is what divides), the fp32 forward is re-run and L is
// accumulated in double. Every backward call accumulates onto pre-filled random gradients, and the
// test checks the increment, so "+=" semantics are checked too; NULL gradients are exercised.
//
// Error metric per element: |got - want| / max(|want|, 0.1); forward must stay under 1e-4 and
// backward under 1e-2 (i.e. relative 1e-2 / absolute 1e-3). One line per op:
//   ok <op> max_rel_err=<max of both> (fwd <e>, bwd <e>)
// and the exit status is non-zero if anything failed.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/ops.h"

static const Ops *O = &ops_cpu;

#define FWD_TOL 1e-4
#define BWD_TOL 1e-2
#define ERR_FLOOR 0.1
#define FD_H 1e-3f

static int n_failed = 0;

// ---------------------------------------------------------------------------------------------
// Random numbers (splitmix64), fixed seed: the test is deterministic.

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static double urand(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static float frand(float lo, float hi) { return lo + (hi - lo) * (float)urand(); }

// Every test allocation is tracked and released after each test (release_all), so the test is
// clean under LeakSanitizer without per-buffer bookkeeping.
static void **tracked = NULL;
static size_t n_tracked = 0, cap_tracked = 0;

static void *talloc(size_t n, size_t size) {
    if (n_tracked == cap_tracked) {
        cap_tracked = cap_tracked ? 2 * cap_tracked : 256;
        tracked = realloc(tracked, cap_tracked * sizeof(void *));
        if (!tracked) die("out of memory");
    }
    return tracked[n_tracked++] = callocCheck(n, size);
}

static void release_all(void) {
    for (size_t i = 0; i < n_tracked; i++) free(tracked[i]);
    n_tracked = 0;
}

static float *falloc(size_t n) { return talloc(n, sizeof(float)); }
static double *dalloc(size_t n) { return talloc(n, sizeof(double)); }

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
    uint8_t *k = talloc(n, 1);
    for (size_t i = 0; i < n; i++) k[i] = urand() >= p;
    // make sure both kinds appear
    if (n >= 2) {
        k[0] = 1;
        k[n - 1] = 0;
    }
    return k;
}

// ---------------------------------------------------------------------------------------------
// Comparison bookkeeping.

typedef struct {
    const char *name;
    double fwd, bwd;
    int bad;
} Stat;

static Stat stat_new(const char *name) { return (Stat){name, 0.0, 0.0, 0}; }

static void cmp(Stat *st, int bwd, const char *what, const float *got, const double *want,
                size_t n) {
    double tol = bwd ? BWD_TOL : FWD_TOL;
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double e = fabs(g - w) / fmax(fabs(w), ERR_FLOOR);
        if (!(e <= tol)) {  // also catches NaN
            e = isnan(e) ? INFINITY : e;
            st->bad = 1;
            if (shown++ < 5)
                fprintf(stderr, "FAIL %s %s[%zu]: got %.7g want %.7g (err %.3g > %.0e)\n",
                        st->name, what, i, g, w, e, tol);
        }
        if (bwd) st->bwd = fmax(st->bwd, e);
        else st->fwd = fmax(st->fwd, e);
    }
}

// compare float values against float values (e.g. a NULL-gradient call against a full one)
static void cmpf(Stat *st, int bwd, const char *what, const float *got, const float *want,
                 size_t n) {
    double *w = dalloc(n);
    for (size_t i = 0; i < n; i++) w[i] = want[i];
    cmp(st, bwd, what, got, w, n);
}

static void check_true(Stat *st, int cond, const char *what) {
    if (!cond) {
        st->bad = 1;
        fprintf(stderr, "FAIL %s: %s\n", st->name, what);
    }
}

static void report(Stat *st) {
    double m = fmax(st->fwd, st->bwd);
    if (st->bad) n_failed++;
    printf("%s %s max_rel_err=%.2e (fwd %.2e, bwd %.2e)\n", st->bad ? "FAIL" : "ok", st->name, m,
           st->fwd, st->bwd);
}

// ---------------------------------------------------------------------------------------------
// Finite differences. f(ctx) re-runs the fp32 forward and returns L in double.

typedef double (*LossFn)(void *ctx);

static double fd_one(LossFn f, void *ctx, float *p) {
    float orig = *p;
    float xp = orig + FD_H, xm = orig - FD_H;
    *p = xp;
    double lp = f(ctx);
    *p = xm;
    double lm = f(ctx);
    *p = orig;
    return (lp - lm) / ((double)xp - (double)xm);
}

// Compare the increment grad - pre (pre may be NULL: zero) with finite differences over param.
static void check_fd(Stat *st, const char *what, LossFn f, void *ctx, float *param, size_t n,
                     const float *grad, const float *pre) {
    double *ref = dalloc(n);
    float *g = falloc(n);
    for (size_t i = 0; i < n; i++) {
        ref[i] = fd_one(f, ctx, param + i);
        g[i] = grad[i] - (pre ? pre[i] : 0.0f);
    }
    cmp(st, 1, what, g, ref, n);
}

static double dot_d(const float *y, const float *r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

// ---------------------------------------------------------------------------------------------
// linear

typedef struct {
    int M, K, N;
    float *x, *w, *b, *y, *r;
} LinCtx;

static double linear_loss(void *p) {
    LinCtx *c = p;
    O->linear_fwd(c->y, c->x, c->w, c->b, c->M, c->K, c->N);
    return dot_d(c->y, c->r, (size_t)c->M * c->N);
}

static void linear_ref(double *y, const float *x, const float *w, const float *b, int M, int K,
                       int N) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++) s += (double)x[i * K + k] * w[j * K + k];
            y[i * N + j] = s;
        }
}

static void test_linear(void) {
    Stat st = stat_new("linear");
    // forward, with and without bias, including a larger odd shape
    int shapes[2][3] = {{3, 5, 4}, {33, 65, 17}};
    for (int s = 0; s < 2; s++) {
        int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *x = frandn((size_t)M * K, -1, 1), *w = frandn((size_t)N * K, -1, 1);
        float *b = frandn(N, -1, 1), *y = frandn((size_t)M * N, -5, 5);
        double *ref = dalloc((size_t)M * N);
        O->linear_fwd(y, x, w, b, M, K, N);
        linear_ref(ref, x, w, b, M, K, N);
        cmp(&st, 0, "y", y, ref, (size_t)M * N);
        O->linear_fwd(y, x, w, NULL, M, K, N);
        linear_ref(ref, x, w, NULL, M, K, N);
        cmp(&st, 0, "y_nobias", y, ref, (size_t)M * N);
    }
    // backward
    int M = 3, K = 5, N = 4;
    LinCtx c = {M, K, N, frandn(M * K, -1, 1), frandn(N * K, -1, 1), frandn(N, -1, 1),
                falloc(M * N), frandn(M * N, -1, 1)};
    float *dx0 = frandn(M * K, -1, 1), *dw0 = frandn(N * K, -1, 1), *db0 = frandn(N, -1, 1);
    float *dx = fcopy(dx0, M * K), *dw = fcopy(dw0, N * K), *db = fcopy(db0, N);
    O->linear_bwd(dx, dw, db, c.r, c.x, c.w, M, K, N);
    check_fd(&st, "dx", linear_loss, &c, c.x, M * K, dx, dx0);
    check_fd(&st, "dw", linear_loss, &c, c.w, N * K, dw, dw0);
    check_fd(&st, "db", linear_loss, &c, c.b, N, db, db0);
    // NULL gradients are skipped; the others are unaffected
    float *dw2 = falloc(N * K), *dwinc = falloc(N * K);
    O->linear_bwd(NULL, dw2, NULL, c.r, c.x, c.w, M, K, N);
    for (int i = 0; i < N * K; i++) dwinc[i] = dw[i] - dw0[i];
    cmpf(&st, 1, "dw_only", dw2, dwinc, N * K);
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// layernorm

typedef struct {
    int M, C;
    float eps;
    float *x, *g, *b, *y, *mean, *rstd, *r;
} LnCtx;

static double ln_loss(void *p) {
    LnCtx *c = p;
    O->layernorm_fwd(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->M, c->C, c->eps);
    return dot_d(c->y, c->r, (size_t)c->M * c->C);
}

static void test_layernorm(void) {
    Stat st = stat_new("layernorm");
    int M = 3, C = 7;
    LnCtx c = {M, C, 1e-5f, frandn(M * C, -2, 2), frandn(C, 0.5, 1.5), frandn(C, -1, 1),
               falloc(M * C), falloc(M), falloc(M), frandn(M * C, -1, 1)};
    for (int i = 0; i < C; i++) c.x[C + i] += 3.0f;  // a row with a large mean
    ln_loss(&c);
    double *ry = dalloc(M * C), *rm = dalloc(M), *rr = dalloc(M);
    for (int i = 0; i < M; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += c.x[i * C + j];
        m /= C;
        for (int j = 0; j < C; j++) v += (c.x[i * C + j] - m) * (c.x[i * C + j] - m);
        v /= C;
        rm[i] = m;
        rr[i] = 1.0 / sqrt(v + 1e-5);
        for (int j = 0; j < C; j++) ry[i * C + j] = (c.x[i * C + j] - m) * rr[i] * c.g[j] + c.b[j];
    }
    cmp(&st, 0, "y", c.y, ry, M * C);
    cmp(&st, 0, "mean", c.mean, rm, M);
    cmp(&st, 0, "rstd", c.rstd, rr, M);
    float *mean = fcopy(c.mean, M), *rstd = fcopy(c.rstd, M);
    float *dx0 = frandn(M * C, -1, 1), *dg0 = frandn(C, -1, 1), *db0 = frandn(C, -1, 1);
    float *dx = fcopy(dx0, M * C), *dg = fcopy(dg0, C), *db = fcopy(db0, C);
    O->layernorm_bwd(dx, dg, db, c.r, c.x, c.g, mean, rstd, M, C);
    check_fd(&st, "dx", ln_loss, &c, c.x, M * C, dx, dx0);
    check_fd(&st, "dg", ln_loss, &c, c.g, C, dg, dg0);
    check_fd(&st, "db", ln_loss, &c, c.b, C, db, db0);
    float *dx2 = falloc(M * C), *dxinc = falloc(M * C);
    O->layernorm_bwd(dx2, NULL, NULL, c.r, c.x, c.g, mean, rstd, M, C);
    for (int i = 0; i < M * C; i++) dxinc[i] = dx[i] - dx0[i];
    cmpf(&st, 1, "dx_only", dx2, dxinc, M * C);
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// gelu

typedef struct {
    size_t n;
    float *x, *y, *r;
} EwCtx;

static double gelu_loss(void *p) {
    EwCtx *c = p;
    O->gelu_fwd(c->y, c->x, c->n);
    return dot_d(c->y, c->r, c->n);
}

static void test_gelu(void) {
    Stat st = stat_new("gelu");
    size_t n = 11;
    EwCtx c = {n, frandn(n, -3, 3), falloc(n), frandn(n, -1, 1)};
    c.x[0] = 0.0f;
    gelu_loss(&c);
    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++) ref[i] = gelu_d(c.x[i]);
    cmp(&st, 0, "y", c.y, ref, n);
    float *dx0 = frandn(n, -1, 1), *dx = fcopy(dx0, n);
    O->gelu_bwd(dx, c.r, c.x, n);
    check_fd(&st, "dx", gelu_loss, &c, c.x, n, dx, dx0);
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// add, add_bcast + sum_rows_acc (its adjoint), acc, axpy

typedef struct {
    int R;
    size_t n;
    float *a, *b, *y, *r;
} BcCtx;

static double bcast_loss(void *p) {
    BcCtx *c = p;
    O->add_bcast_fwd(c->y, c->a, c->b, c->R, c->n);
    return dot_d(c->y, c->r, (size_t)c->R * c->n);
}

static void test_add(void) {
    Stat st = stat_new("add");
    size_t n = 13;
    float *a = frandn(n, -1, 1), *b = frandn(n, -1, 1), *y = falloc(n);
    double *ref = dalloc(n);
    O->add_fwd(y, a, b, n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    cmp(&st, 0, "y", y, ref, n);
    report(&st);
}

static void test_add_bcast(void) {
    Stat st = stat_new("add_bcast");
    int R = 3;
    size_t n = 5;
    BcCtx c = {R, n, frandn(R * n, -1, 1), frandn(n, -1, 1), falloc(R * n), frandn(R * n, -1, 1)};
    bcast_loss(&c);
    double *ref = dalloc(R * n);
    for (int r = 0; r < R; r++)
        for (size_t j = 0; j < n; j++) ref[r * n + j] = (double)c.a[r * n + j] + c.b[j];
    cmp(&st, 0, "y", c.y, ref, R * n);
    // gradients: da += dy via acc, db += sum_rows(dy) via sum_rows_acc
    float *da0 = frandn(R * n, -1, 1), *db0 = frandn(n, -1, 1);
    float *da = fcopy(da0, R * n), *db = fcopy(db0, n);
    O->acc(da, c.r, R * n);
    O->sum_rows_acc(db, c.r, R, n);
    check_fd(&st, "da", bcast_loss, &c, c.a, R * n, da, da0);
    check_fd(&st, "db", bcast_loss, &c, c.b, n, db, db0);
    report(&st);
}

static void test_sum_rows_acc(void) {
    Stat st = stat_new("sum_rows_acc");
    // wider than one column block, odd row count
    int R = 7;
    size_t n = 300;
    float *dy = frandn(R * n, -1, 1), *db0 = frandn(n, -1, 1), *db = fcopy(db0, n);
    double *ref = dalloc(n);
    O->sum_rows_acc(db, dy, R, n);
    for (size_t j = 0; j < n; j++) {
        ref[j] = db0[j];
        for (int r = 0; r < R; r++) ref[j] += dy[r * n + j];
    }
    cmp(&st, 0, "db", db, ref, n);
    report(&st);
}

static void test_acc_axpy(void) {
    Stat st = stat_new("acc");
    size_t n = 9;
    float *a = frandn(n, -1, 1), *y0 = frandn(n, -1, 1), *y = fcopy(y0, n);
    double *ref = dalloc(n);
    O->acc(y, a, n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)y0[i] + a[i];
    cmp(&st, 0, "y", y, ref, n);
    report(&st);
    Stat st2 = stat_new("axpy");
    memcpy(y, y0, n * sizeof(float));
    O->axpy(y, -0.7f, a, n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)y0[i] - 0.7 * a[i];
    cmp(&st2, 0, "y", y, ref, n);
    report(&st2);
}

// ---------------------------------------------------------------------------------------------
// dropout with a fixed keep mask

typedef struct {
    size_t n;
    float p;
    const uint8_t *keep;
    float *x, *y, *r;
} DropCtx;

static double drop_loss(void *p) {
    DropCtx *c = p;
    O->dropout_fwd(c->y, c->x, c->keep, c->p, c->n);
    return dot_d(c->y, c->r, c->n);
}

static void test_dropout(void) {
    Stat st = stat_new("dropout");
    size_t n = 13;
    float p = 0.25f;
    DropCtx c = {n, p, keep_mask(n, p), frandn(n, -1, 1), falloc(n), frandn(n, -1, 1)};
    drop_loss(&c);
    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++) ref[i] = c.keep[i] ? c.x[i] / (1.0 - p) : 0.0;
    cmp(&st, 0, "y", c.y, ref, n);
    float *dx0 = frandn(n, -1, 1), *dx = fcopy(dx0, n);
    O->dropout_bwd(dx, c.r, c.keep, p, n);
    check_fd(&st, "dx", drop_loss, &c, c.x, n, dx, dx0);
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// attention

typedef struct {
    int B, Tq, Tk, C, H, causal, ldq, ldk, ldv;
    const float *q, *k, *v;  // views into the parameter buffers below
    const float *mask;
    const uint8_t *keep;
    float p;
    float *out, *probs, *r;
} AttnCtx;

static double attn_loss(void *pp) {
    AttnCtx *c = pp;
    O->attention_fwd(c->out, c->probs, c->q, c->ldq, c->k, c->ldk, c->v, c->ldv, c->mask, c->keep,
                     c->p, c->B, c->Tq, c->Tk, c->C, c->H, c->causal);
    return dot_d(c->out, c->r, (size_t)c->B * c->Tq * c->C);
}

// Naive attention in double: out (B,Tq,C) and pre-dropout probs (B,H,Tq,Tk). A key is hidden
// when the causal rule hides it or its additive mask is -inf; a row with every key hidden gives
// zero probabilities and a zero output.
static void attn_ref(double *out, double *probs, const AttnCtx *c) {
    int hd = c->C / c->H;
    double scale = 1.0 / sqrt((double)hd), ks = 1.0 / (1.0 - c->p);
    double *sc = dalloc(c->Tk);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < c->Tq; i++) {
                double m = -INFINITY;
                for (int j = 0; j < c->Tk; j++) {
                    double s = 0.0;
                    for (int d = 0; d < hd; d++)
                        s += (double)c->q[(size_t)(b * c->Tq + i) * c->ldq + h * hd + d] *
                             c->k[(size_t)(b * c->Tk + j) * c->ldk + h * hd + d];
                    s *= scale;
                    if (c->mask) s += c->mask[b * c->Tk + j];
                    if (c->causal && j > i) s = -INFINITY;
                    sc[j] = s;
                    if (s > m) m = s;
                }
                double z = 0.0;
                for (int j = 0; j < c->Tk; j++) {
                    sc[j] = m == -INFINITY ? 0.0 : exp(sc[j] - m);
                    z += sc[j];
                }
                double *pr = probs + (((size_t)b * c->H + h) * c->Tq + i) * c->Tk;
                for (int j = 0; j < c->Tk; j++) pr[j] = z > 0 ? sc[j] / z : 0.0;
                const uint8_t *kr =
                    c->keep ? c->keep + (((size_t)b * c->H + h) * c->Tq + i) * c->Tk : NULL;
                for (int d = 0; d < hd; d++) {
                    double s = 0.0;
                    for (int j = 0; j < c->Tk; j++) {
                        double a = pr[j];
                        if (kr) a = kr[j] ? a * ks : 0.0;
                        s += a * c->v[(size_t)(b * c->Tk + j) * c->ldv + h * hd + d];
                    }
                    out[((size_t)b * c->Tq + i) * c->C + h * hd + d] = s;
                }
            }
}

static int all_finite(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

typedef struct {
    const char *name;
    int B, Tq, Tk, C, H, causal;
    int fused;            // q, k, v from one (B*T, 3C) buffer (self-attention only)
    int padq, padk, padv; // extra row stride beyond C when not fused
    int mask_kind;        // 0 none, 1 mixed (-inf, -1e4, additive 0.5), 2 batch 1 fully masked
    float p;              // attention dropout rate (0: no keep mask)
    int null_test;        // also check a call with dq = dv = NULL
} AttnCase;

static void test_attention_case(const AttnCase *ac) {
    Stat st = stat_new(ac->name);
    const int B = ac->B, Tq = ac->Tq, Tk = ac->Tk, C = ac->C, H = ac->H;
    AttnCtx c = {0};
    c.B = B, c.Tq = Tq, c.Tk = Tk, c.C = C, c.H = H, c.causal = ac->causal, c.p = ac->p;
    // parameter buffers (and matching gradient buffers with the same layout)
    float *buf[3];
    size_t len[3];
    int nbuf;
    if (ac->fused) {
        nbuf = 1;
        c.ldq = c.ldk = c.ldv = 3 * C;
        len[0] = (size_t)B * Tq * 3 * C;
        buf[0] = frandn(len[0], -1.5, 1.5);
        c.q = buf[0], c.k = buf[0] + C, c.v = buf[0] + 2 * C;
    } else {
        nbuf = 3;
        c.ldq = C + ac->padq, c.ldk = C + ac->padk, c.ldv = C + ac->padv;
        len[0] = (size_t)B * Tq * c.ldq, len[1] = (size_t)B * Tk * c.ldk,
        len[2] = (size_t)B * Tk * c.ldv;
        for (int i = 0; i < 3; i++) buf[i] = frandn(len[i], -1.5, 1.5);
        c.q = buf[0], c.k = buf[1], c.v = buf[2];
    }
    float *mask = NULL;
    if (ac->mask_kind) {
        mask = falloc((size_t)B * Tk);
        if (ac->mask_kind == 1) {
            mask[0 * Tk + Tk - 1] = -INFINITY;  // batch 0: last key hidden
            if (B > 1) {
                mask[1 * Tk + 1] = -10000.0f;   // batch 1: keys 1 and 3 hidden BERT-style
                if (Tk > 3) mask[1 * Tk + 3] = -10000.0f;
                mask[1 * Tk + 0] = 0.5f;        // and a plain additive bias
            }
        } else {
            for (int j = 0; j < Tk; j++) mask[(B - 1) * Tk + j] = -INFINITY;
            mask[0] = -1.0f;
        }
    }
    c.mask = mask;
    size_t TT = (size_t)Tq * Tk, nprob = (size_t)B * H * TT, nout = (size_t)B * Tq * C;
    uint8_t *keep = ac->p > 0 ? keep_mask(nprob, ac->p) : NULL;
    c.keep = keep;
    c.out = falloc(nout), c.probs = falloc(nprob), c.r = frandn(nout, -1, 1);

    // forward
    attn_loss(&c);
    double *rout = dalloc(nout), *rprob = dalloc(nprob);
    attn_ref(rout, rprob, &c);
    cmp(&st, 0, "out", c.out, rout, nout);
    cmp(&st, 0, "probs", c.probs, rprob, nprob);
    check_true(&st, all_finite(c.out, nout) && all_finite(c.probs, nprob), "non-finite forward");

    // backward into pre-filled gradients with the same layout; scratch with a guard zone
    float *g0[3], *g[3];
    for (int i = 0; i < nbuf; i++) g0[i] = frandn(len[i], -1, 1), g[i] = fcopy(g0[i], len[i]);
    float *dq = g[0], *dk = ac->fused ? g[0] + C : g[1], *dv = ac->fused ? g[0] + 2 * C : g[2];
    const size_t guard = 64;
    float *scratch = falloc(2 * TT + guard);
    for (size_t i = 2 * TT; i < 2 * TT + guard; i++) scratch[i] = 12345.0f;
    float *probs = fcopy(c.probs, nprob);
    O->attention_bwd(dq, dk, dv, c.r, probs, c.q, c.ldq, c.k, c.ldk, c.v, c.ldv, keep, ac->p, B,
                     Tq, Tk, C, H, scratch);
    int guard_ok = 1;
    for (size_t i = 2 * TT; i < 2 * TT + guard; i++) guard_ok &= scratch[i] == 12345.0f;
    check_true(&st, guard_ok, "attention_bwd wrote past Tq*Tk*2 scratch floats");
    const char *names[3] = {ac->fused ? "dqkv" : "dq", "dk", "dv"};
    for (int i = 0; i < nbuf; i++) {
        check_true(&st, all_finite(g[i], len[i]), "non-finite gradient");
        check_fd(&st, names[i], attn_loss, &c, buf[i], len[i], g[i], g0[i]);
    }
    if (ac->null_test && !ac->fused) {
        float *dk2 = falloc(len[1]), *dkinc = falloc(len[1]);
        O->attention_bwd(NULL, dk2, NULL, c.r, probs, c.q, c.ldq, c.k, c.ldk, c.v, c.ldv, keep,
                         ac->p, B, Tq, Tk, C, H, scratch);
        for (size_t i = 0; i < len[1]; i++) dkinc[i] = g[1][i] - g0[1][i];
        cmpf(&st, 1, "dk_only", dk2, dkinc, len[1]);
    }
    report(&st);
}

static void test_attention(void) {
    static const AttnCase cases[] = {
        // cross-attention, different lengths, padded strides, mixed key mask, no dropout
        {"attention_cross_mask", 2, 3, 5, 8, 2, 0, 0, 3, 0, 1, 1, 0.0f, 1},
        // causal self-attention from a fused qkv buffer (ld 3C), key mask, dropout p=0.25
        {"attention_causal_qkv_dropout", 2, 5, 5, 8, 2, 1, 1, 0, 0, 0, 1, 0.25f, 0},
        // a fully masked batch row must give zeros, never NaN; dropout with B*H pairs > 1
        {"attention_fully_masked", 2, 3, 4, 6, 3, 0, 0, 0, 2, 1, 2, 0.25f, 0},
        // a single (b, h) pair with dropout (the in-place path), longer queries than keys
        {"attention_single_pair_dropout", 1, 5, 3, 4, 1, 0, 0, 1, 0, 0, 0, 0.25f, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_attention_case(&cases[i]);
}

// ---------------------------------------------------------------------------------------------
// xent

typedef struct {
    int M, V;
    const int32_t *labels;
    const float *soft;
    float alpha, dloss;
    float *logits, *probs;
} XentCtx;

static double xent_loss(void *p) {
    XentCtx *c = p;
    return (double)c->dloss *
           O->xent_fwd(c->probs, c->logits, c->labels, c->soft, c->alpha, c->M, c->V);
}

static void test_xent_case(const char *name, int use_labels, int use_soft, float alpha) {
    Stat st = stat_new(name);
    int M = 3, V = 7;
    static const int32_t labels[3] = {2, 0, 6};
    float *soft = NULL;
    if (use_soft) {
        soft = falloc(M * V);
        for (int r = 0; r < M; r++) {
            double s = 0;
            for (int j = 0; j < V; j++) soft[r * V + j] = frand(0, 1);
            if (r == 1) soft[r * V + 3] = 0.0f;  // an exact zero in a soft target
            for (int j = 0; j < V; j++) s += soft[r * V + j];
            // targets are distributions (the backward formula probs - target relies on it)
            for (int j = 0; j < V; j++) soft[r * V + j] /= (float)s;
        }
    }
    XentCtx c = {M, V, use_labels ? labels : NULL, soft, alpha, 1.3f, frandn(M * V, -3, 3),
                 falloc(M * V)};
    // stability: row 0 shifted by +100 (exp would overflow fp32 without the max subtraction; the
    // loss is shift-invariant, so it stays small enough for finite differences), and a dominant
    // logit in row 2
    for (int j = 0; j < V; j++) c.logits[j] += 100.0f;
    c.logits[2 * V + 1] += 8.0f;
    float loss = O->xent_fwd(c.probs, c.logits, c.labels, c.soft, alpha, M, V);
    // reference
    double a = !use_soft ? 0.0 : (!use_labels ? 1.0 : alpha), rl = 0.0;
    double *rp = dalloc(M * V);
    for (int r = 0; r < M; r++) {
        double m = -INFINITY, z = 0.0;
        for (int j = 0; j < V; j++) m = fmax(m, c.logits[r * V + j]);
        for (int j = 0; j < V; j++) z += exp(c.logits[r * V + j] - m);
        for (int j = 0; j < V; j++) {
            double ls = c.logits[r * V + j] - m - log(z);
            rp[r * V + j] = exp(ls);
            double t = (use_labels && labels[r] == j ? 1.0 - a : 0.0) +
                       (use_soft ? a * soft[r * V + j] : 0.0);
            rl -= t * ls;
        }
    }
    rl /= M;
    cmp(&st, 0, "loss", &loss, &rl, 1);
    cmp(&st, 0, "probs", c.probs, rp, M * V);
    float *probs = fcopy(c.probs, M * V);
    float *d0 = frandn(M * V, -1, 1), *d = fcopy(d0, M * V);
    O->xent_bwd(d, c.dloss, probs, c.labels, c.soft, alpha, M, V);
    check_fd(&st, "dlogits", xent_loss, &c, c.logits, M * V, d, d0);
    report(&st);
}

static void test_xent(void) {
    test_xent_case("xent_mixed", 1, 1, 0.4f);
    test_xent_case("xent_labels", 1, 0, 0.4f);
    test_xent_case("xent_soft", 0, 1, 0.4f);
}

// ---------------------------------------------------------------------------------------------
// l2norm

typedef struct {
    int M, C;
    float *x, *y, *norms, *r;
} L2Ctx;

static double l2_loss(void *p) {
    L2Ctx *c = p;
    O->l2norm_fwd(c->y, c->norms, c->x, c->M, c->C);
    return dot_d(c->y, c->r, (size_t)c->M * c->C);
}

static void test_l2norm(void) {
    Stat st = stat_new("l2norm");
    int M = 3, C = 5;
    L2Ctx c = {M, C, frandn(M * C, -1, 1), falloc(M * C), falloc(M), frandn(M * C, -1, 1)};
    for (int j = 0; j < C; j++) c.x[2 * C + j] *= 0.2f;  // a short vector
    l2_loss(&c);
    double *ry = dalloc(M * C), *rn = dalloc(M);
    for (int i = 0; i < M; i++) {
        double s = 0;
        for (int j = 0; j < C; j++) s += (double)c.x[i * C + j] * c.x[i * C + j];
        rn[i] = sqrt(s);
        for (int j = 0; j < C; j++) ry[i * C + j] = c.x[i * C + j] / fmax(rn[i], 1e-12);
    }
    cmp(&st, 0, "y", c.y, ry, M * C);
    cmp(&st, 0, "norms", c.norms, rn, M);
    float *y = fcopy(c.y, M * C), *norms = fcopy(c.norms, M);
    float *dx0 = frandn(M * C, -1, 1), *dx = fcopy(dx0, M * C);
    O->l2norm_bwd(dx, c.r, y, norms, M, C);
    check_fd(&st, "dx", l2_loss, &c, c.x, M * C, dx, dx0);
    // a zero row: y = 0 (no NaN), and the clamped gradient dy / 1e-12 stays finite
    float z[4] = {0}, zy[4], zn[1], zdy[4] = {1e-3f, -2e-3f, 0, 5e-4f}, zdx[4] = {0};
    O->l2norm_fwd(zy, zn, z, 1, 4);
    O->l2norm_bwd(zdx, zdy, zy, zn, 1, 4);
    check_true(&st, zy[0] == 0 && zy[3] == 0 && all_finite(zy, 4) && all_finite(zdx, 4),
               "zero row gives NaN or nonzero output");
    double zref[4];
    for (int j = 0; j < 4; j++) zref[j] = zdy[j] / 1e-12;
    cmp(&st, 1, "dx_zero_row", zdx, zref, 4);
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// div_scalar

typedef struct {
    size_t n;
    float *x, *s, *y, *r;
} DivCtx;

static double div_loss(void *p) {
    DivCtx *c = p;
    O->div_scalar_fwd(c->y, c->x, c->s, c->n);
    return dot_d(c->y, c->r, c->n);
}

static void test_div_scalar(void) {
    Stat st = stat_new("div_scalar");
    size_t n = 9;
    float s[1] = {0.37f};
    DivCtx c = {n, frandn(n, -1, 1), s, falloc(n), frandn(n, -1, 1)};
    div_loss(&c);
    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)c.x[i] / (double)s[0];
    cmp(&st, 0, "y", c.y, ref, n);
    float *dx0 = frandn(n, -1, 1), *dx = fcopy(dx0, n), ds0[1] = {0.25f}, ds[1] = {0.25f};
    O->div_scalar_bwd(dx, ds, c.r, c.x, s, n);
    check_fd(&st, "dx", div_loss, &c, c.x, n, dx, dx0);
    check_fd(&st, "ds", div_loss, &c, c.s, 1, ds, ds0);
    float ds2[1] = {0};
    O->div_scalar_bwd(NULL, ds2, c.r, c.x, s, n);
    float dsinc[1] = {ds[0] - ds0[0]};
    cmpf(&st, 1, "ds_only", ds2, dsinc, 1);
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// mse_rows

typedef struct {
    int R, P;
    float dloss;
    float *pred, *target, *w;
} MseCtx;

static double mse_loss(void *p) {
    MseCtx *c = p;
    return (double)c->dloss * O->mse_rows_fwd(c->pred, c->target, c->w, c->R, c->P);
}

static void test_mse_rows(void) {
    Stat st = stat_new("mse_rows");
    int R = 4, P = 5;
    float w[4] = {1.0f, 0.0f, 0.5f, 2.0f};
    MseCtx c = {R, P, 0.7f, frandn(R * P, -1, 1), frandn(R * P, -1, 1), w};
    float loss = O->mse_rows_fwd(c.pred, c.target, w, R, P);
    double num = 0, den = 0;
    for (int r = 0; r < R; r++) {
        double s = 0;
        for (int j = 0; j < P; j++) {
            double d = (double)c.pred[r * P + j] - c.target[r * P + j];
            s += d * d;
        }
        num += w[r] * s / P;
        den += w[r];
    }
    double rl = num / den;
    cmp(&st, 0, "loss", &loss, &rl, 1);
    float *d0 = frandn(R * P, -1, 1), *d = fcopy(d0, R * P);
    O->mse_rows_bwd(d, c.dloss, c.pred, c.target, w, R, P);
    check_fd(&st, "dpred", mse_loss, &c, c.pred, R * P, d, d0);
    // all weights zero: loss 0, no gradient
    float wz[4] = {0};
    float lz = O->mse_rows_fwd(c.pred, c.target, wz, R, P);
    float *dz = fcopy(d0, R * P);
    O->mse_rows_bwd(dz, c.dloss, c.pred, c.target, wz, R, P);
    check_true(&st, lz == 0.0f, "all-zero weights must give loss 0");
    check_true(&st, memcmp(dz, d0, R * P * sizeof(float)) == 0,
               "all-zero weights must leave the gradient untouched");
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// l1

typedef struct {
    size_t n;
    float dloss;
    float *a, *b;
} L1Ctx;

static double l1_loss(void *p) {
    L1Ctx *c = p;
    return (double)c->dloss * O->l1_fwd(c->a, c->b, c->n);
}

static void test_l1(void) {
    Stat st = stat_new("l1");
    size_t n = 10;
    L1Ctx c = {n, 0.9f, frandn(n, -1, 1), falloc(n)};
    for (size_t i = 0; i < n; i++)  // keep |a - b| well away from the kink
        c.b[i] = c.a[i] + (i % 2 ? 1.0f : -1.0f) * frand(0.05f, 1.0f);
    float loss = O->l1_fwd(c.a, c.b, n);
    double rl = 0;
    for (size_t i = 0; i < n; i++) rl += fabs((double)c.a[i] - c.b[i]);
    rl /= n;
    cmp(&st, 0, "loss", &loss, &rl, 1);
    float *d0 = frandn(n, -1, 1), *d = fcopy(d0, n);
    O->l1_bwd(d, c.dloss, c.a, c.b, n);
    check_fd(&st, "da", l1_loss, &c, c.a, n, d, d0);
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// gather_rows

typedef struct {
    int n, D;
    const int32_t *idx;
    float *x, *y, *r;
} GatherCtx;

static double gather_loss(void *p) {
    GatherCtx *c = p;
    O->gather_rows_fwd(c->y, c->x, c->idx, c->n, c->D);
    return dot_d(c->y, c->r, (size_t)c->n * c->D);
}

static void test_gather_rows(void) {
    Stat st = stat_new("gather_rows");
    static const int32_t idx[6] = {2, 0, 2, 3, 2, 0};  // repeats; row 1 never gathered
    int R = 4, n = 6, D = 3;
    GatherCtx c = {n, D, idx, frandn(R * D, -1, 1), falloc(n * D), frandn(n * D, -1, 1)};
    gather_loss(&c);
    double *ref = dalloc(n * D);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) ref[i * D + d] = c.x[idx[i] * D + d];
    cmp(&st, 0, "y", c.y, ref, n * D);
    float *dx0 = frandn(R * D, -1, 1), *dx = fcopy(dx0, R * D);
    O->gather_rows_bwd(dx, c.r, idx, n, D);
    check_fd(&st, "dx", gather_loss, &c, c.x, R * D, dx, dx0);
    // wide rows (more than one column block): scatter-add against a direct sum
    int Dw = 300;
    float *dyw = frandn(n * Dw, -1, 1), *dxw = frandn(R * Dw, -1, 1);
    double *rw = dalloc(R * Dw);
    for (int i = 0; i < R * Dw; i++) rw[i] = dxw[i];
    for (int i = 0; i < n; i++)
        for (int d = 0; d < Dw; d++) rw[idx[i] * Dw + d] += dyw[i * Dw + d];
    O->gather_rows_bwd(dxw, dyw, idx, n, Dw);
    cmp(&st, 1, "dx_wide", dxw, rw, R * Dw);
    report(&st);
}

// ---------------------------------------------------------------------------------------------
// softmax_rows (no gradient)

static void test_softmax_rows(void) {
    Stat st = stat_new("softmax_rows");
    int M = 4, V = 6;
    float *x = frandn(M * V, -3, 3), *y = falloc(M * V);
    x[0] += 50.0f;                                         // stability
    x[2 * V + 1] = -INFINITY;                              // a hidden entry
    for (int j = 0; j < V; j++) x[3 * V + j] = -INFINITY;  // fully hidden row: zeros
    O->softmax_rows(y, x, M, V);
    double *ref = dalloc(M * V);
    for (int i = 0; i < M; i++) {
        double m = -INFINITY, z = 0;
        for (int j = 0; j < V; j++) m = fmax(m, x[i * V + j]);
        for (int j = 0; j < V; j++) z += m == -INFINITY ? 0.0 : exp(x[i * V + j] - m);
        for (int j = 0; j < V; j++) ref[i * V + j] = z > 0 ? exp(x[i * V + j] - m) / z : 0.0;
    }
    cmp(&st, 0, "y", y, ref, M * V);
    O->softmax_rows(x, x, M, V);  // in place
    cmp(&st, 0, "y_inplace", x, ref, M * V);
    report(&st);
}

// ---------------------------------------------------------------------------------------------

int main(void) {
    void (*tests[])(void) = {test_linear,    test_layernorm,   test_gelu,       test_add,
                             test_add_bcast, test_sum_rows_acc, test_acc_axpy,  test_dropout,
                             test_attention, test_xent,        test_l2norm,     test_div_scalar,
                             test_mse_rows,  test_l1,          test_gather_rows, test_softmax_rows};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        tests[i]();
        release_all();
    }
    free(tracked);
    if (n_failed) {
        printf("test_ops: %d op(s) FAILED\n", n_failed);
        return 1;
    }
    printf("test_ops: all ops passed\n");
    return 0;
}
