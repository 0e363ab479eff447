// ops_cpu.c: the CPU backend of the op interface (ops.h), in fp32.
//
// Every matrix product (linear layers and attention's per-(batch, head) products) goes through
// OpenBLAS cblas_sgemm; elementwise and row-wise loops are OpenMP-parallel. OpenBLAS is never
// called from inside an OpenMP parallel region (the pthread OpenBLAS runs its own thread pool).
// Row statistics (LayerNorm moments, softmax sums, loss sums) accumulate in double.
//
// Conventions (see ops.h): tensors are dense row-major and caller-owned, ops never allocate, and
// backward functions accumulate (+=) into the gradients they are given and skip NULL ones.
#include "engine/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "engine/common.h"
#include "engine/hash_uniform.h"

// Below this many values a loop is not worth waking the OpenMP team for (build with -DPAR_MIN=0
// to force every loop parallel, e.g. to run the op tests through the threaded paths).
#ifndef PAR_MIN
#define PAR_MIN 16384
#endif
// Column block width for loops that reduce over rows (each thread owns a block of columns).
#define COL_BLOCK 256

// ---------------------------------------------------------------------------------------------
// Linear: y = x w^T + b, PyTorch nn.Linear layout (w is (N,K)).

static void linear_fwd(float *y, const float *x, const float *w, const float *b, int M, int K,
                       int N) {
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for if ((size_t)M * N > PAR_MIN)
        for (int i = 0; i < M; i++) memcpy(y + (size_t)i * N, b, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, beta, y, N);
}

// db (n) += sum over the R rows of dy (R, n). Each thread owns a block of columns.
static void sum_rows_acc(float *db, const float *dy, int R, size_t n) {
    long nblk = (long)((n + COL_BLOCK - 1) / COL_BLOCK);
#pragma omp parallel for if ((size_t)R * n > PAR_MIN)
    for (long blk = 0; blk < nblk; blk++) {
        size_t j0 = (size_t)blk * COL_BLOCK, j1 = MIN(j0 + COL_BLOCK, n);
        double acc[COL_BLOCK];
        for (size_t j = j0; j < j1; j++) acc[j - j0] = 0.0;
        for (int r = 0; r < R; r++) {
            const float *row = dy + (size_t)r * n;
            for (size_t j = j0; j < j1; j++) acc[j - j0] += row[j];
        }
        for (size_t j = j0; j < j1; j++) db[j] += (float)acc[j - j0];
    }
}

static void linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int M, int K, int N) {
    // dx (M,K) += dy (M,N) @ w (N,K)
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, w, K,
                        1.0f, dx, K);
    // dw (N,K) += dy^T (N,M) @ x (M,K)
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x, K,
                        1.0f, dw, K);
    if (db) sum_rows_acc(db, dy, M, (size_t)N);
}

// ---------------------------------------------------------------------------------------------
// LayerNorm over the last dim, biased variance (PyTorch), rstd = 1/sqrt(var + eps).

static void layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g,
                          const float *b, int M, int C, float eps) {
#pragma omp parallel for if ((size_t)M * C > PAR_MIN)
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * C;
        float *yi = y + (size_t)i * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += xi[c];
        double m = s / C;
        double v = 0.0;
        for (int c = 0; c < C; c++) {
            double d = xi[c] - m;
            v += d * d;
        }
        v /= C;
        float mf = (float)m, rs = (float)(1.0 / sqrt(v + eps));
        for (int c = 0; c < C; c++) {
            float n = (xi[c] - mf) * rs;
            yi[c] = n * (g ? g[c] : 1.0f) + (b ? b[c] : 0.0f);
        }
        if (mean) mean[i] = mf;
        if (rstd) rstd[i] = rs;
    }
}

static void layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x,
                          const float *g, const float *mean, const float *rstd, int M, int C) {
    // dx = rstd * (dy*g - mean(dy*g) - xhat * mean(dy*g*xhat))
    if (dx) {
#pragma omp parallel for if ((size_t)M * C > PAR_MIN)
        for (int i = 0; i < M; i++) {
            const float *xi = x + (size_t)i * C, *dyi = dy + (size_t)i * C;
            float *dxi = dx + (size_t)i * C;
            float m = mean[i], rs = rstd[i];
            double s1 = 0.0, s2 = 0.0;
            for (int c = 0; c < C; c++) {
                float dn = dyi[c] * (g ? g[c] : 1.0f);
                s1 += dn;
                s2 += dn * ((xi[c] - m) * rs);
            }
            float a = (float)(s1 / C), bb = (float)(s2 / C);
            for (int c = 0; c < C; c++) {
                float dn = dyi[c] * (g ? g[c] : 1.0f);
                float xh = (xi[c] - m) * rs;
                dxi[c] += rs * (dn - a - xh * bb);
            }
        }
    }
    if (dg || db) {
        long nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for if ((size_t)M * C > PAR_MIN)
        for (long blk = 0; blk < nblk; blk++) {
            int c0 = (int)blk * COL_BLOCK, c1 = MIN(c0 + COL_BLOCK, C);
            double ag[COL_BLOCK], ab[COL_BLOCK];
            for (int c = c0; c < c1; c++) ag[c - c0] = ab[c - c0] = 0.0;
            for (int i = 0; i < M; i++) {
                const float *xi = x + (size_t)i * C, *dyi = dy + (size_t)i * C;
                float m = mean[i], rs = rstd[i];
                for (int c = c0; c < c1; c++) {
                    ag[c - c0] += dyi[c] * ((xi[c] - m) * rs);
                    ab[c - c0] += dyi[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dg) dg[c] += (float)ag[c - c0];
                if (db) db[c] += (float)ab[c - c0];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GELU (exact, erf form).

static void gelu_fwd(float *y, const float *x, size_t n) {
    const float r2 = 0.70710678118654752f;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * r2));
}

static void gelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    const float r2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float xi = x[i];
        float cdf = 0.5f * (1.0f + erff(xi * r2));
        float pdf = inv_sqrt_2pi * expf(-0.5f * xi * xi);
        dx[i] += dy[i] * (cdf + xi * pdf);
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise arithmetic.

static void add_fwd(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void add_bcast_fwd(float *y, const float *a, const float *b, int R, size_t n) {
#pragma omp parallel for if ((size_t)R * n > PAR_MIN)
    for (int r = 0; r < R; r++) {
        const float *ar = a + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        for (size_t j = 0; j < n; j++) yr[j] = ar[j] + b[j];
    }
}

static void acc(float *y, const float *a, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += a[i];
}

static void axpy(float *y, float s, const float *a, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += s * a[i];
}

// ---------------------------------------------------------------------------------------------
// Inverted dropout: y = keep ? x / (1-p) : 0.

static float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

static void dropout_fwd(float *y, const float *x, const uint8_t *keep, float p, size_t n) {
    float s = keep_scale(p);
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = keep[i] ? x[i] * s : 0.0f;
}

static void dropout_bwd(float *dx, const float *dy, const uint8_t *keep, float p, size_t n) {
    float s = keep_scale(p);
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (keep[i]) dx[i] += dy[i] * s;
}

// ---------------------------------------------------------------------------------------------
// Softmax of one row in place. A row whose every entry is -inf (fully masked) becomes all zeros
// rather than NaN, so it contributes nothing forward and passes no gradient backward.

static void softmax_row_inplace(float *row, int n) {
    float m = -INFINITY;
    for (int j = 0; j < n; j++) m = row[j] > m ? row[j] : m;
    if (m == -INFINITY) {
        for (int j = 0; j < n; j++) row[j] = 0.0f;
        return;
    }
    double s = 0.0;
    for (int j = 0; j < n; j++) {
        float e = expf(row[j] - m);
        row[j] = e;
        s += e;
    }
    float inv = (float)(1.0 / s);
    for (int j = 0; j < n; j++) row[j] *= inv;
}

static void softmax_rows(float *y, const float *x, int M, int V) {
#pragma omp parallel for if ((size_t)M * V > PAR_MIN)
    for (int i = 0; i < M; i++) {
        float *yi = y + (size_t)i * V;
        if (yi != x + (size_t)i * V) memcpy(yi, x + (size_t)i * V, (size_t)V * sizeof(float));
        softmax_row_inplace(yi, V);
    }
}

static void relu_fwd(float *y, uint8_t *keep, const float *x, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        keep[i] = x[i] > 0.0f;
        y[i] = keep[i] ? x[i] : 0.0f;
    }
}

static void dropout_mask(uint8_t *keep, size_t n, float p, uint64_t seed) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) keep[i] = hash_uniform(seed, i) >= p;
}

// ---------------------------------------------------------------------------------------------
// Multi-head attention. Head h of batch b works on the (Tq, hd) block of q starting at
// q + b*Tq*ldq + h*hd (row stride ldq), likewise k and v with Tk rows; out uses row stride C.

// Scores, mask, causal hiding and softmax for one (b, h) into P (Tq, Tk).
static void attn_probs_bh(float *P, const float *qbh, int ldq, const float *kbh, int ldk,
                          const float *maskb, int Tq, int Tk, int hd, int causal) {
    float scale = 1.0f / sqrtf((float)hd);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, hd, scale, qbh, ldq, kbh, ldk,
                0.0f, P, Tk);
#pragma omp parallel for if ((size_t)Tq * Tk > PAR_MIN)
    for (int i = 0; i < Tq; i++) {
        float *row = P + (size_t)i * Tk;
        if (maskb)
            for (int j = 0; j < Tk; j++) row[j] += maskb[j];
        if (causal)
            for (int j = i + 1; j < Tk; j++) row[j] = -INFINITY;
        softmax_row_inplace(row, Tk);
    }
}

// dst = src * keep * s over n values (attention dropout applied to a probability block).
static void attn_drop(float *dst, const float *src, const uint8_t *keep, float s, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = keep[i] ? src[i] * s : 0.0f;
}

static void attention_fwd(float *out, float *probs, const float *q, int ldq, const float *k,
                          int ldk, const float *v, int ldv, const float *mask,
                          const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C, int H,
                          int causal) {
    if (H <= 0 || C % H) die("attention: width %d not divisible by %d heads", C, H);
    const int hd = C / H;
    const size_t TT = (size_t)Tq * Tk;
    const float s = keep_scale(p);
    // With dropout the output needs the dropped probabilities while probs must keep the clean
    // ones. Pairs are processed last to first so that the slot of the previous pair (n-1), not yet
    // written, serves as scratch; pair 0 has none, so it is dropped in place and recomputed.
    for (int n = B * H - 1; n >= 0; n--) {
        const int b = n / H, h = n % H;
        float *P = probs + (size_t)n * TT;
        const float *qbh = q + (size_t)b * Tq * ldq + (size_t)h * hd;
        const float *kbh = k + (size_t)b * Tk * ldk + (size_t)h * hd;
        const float *vbh = v + (size_t)b * Tk * ldv + (size_t)h * hd;
        const float *maskb = mask ? mask + (size_t)b * Tk : NULL;
        float *obh = out + (size_t)b * Tq * C + (size_t)h * hd;
        attn_probs_bh(P, qbh, ldq, kbh, ldk, maskb, Tq, Tk, hd, causal);
        const float *A = P;
        if (attn_keep) {
            float *D = n > 0 ? probs + (size_t)(n - 1) * TT : P;
            attn_drop(D, P, attn_keep + (size_t)n * TT, s, TT);
            A = D;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hd, Tk, 1.0f, A, Tk, vbh, ldv,
                    0.0f, obh, C);
        if (attn_keep && n == 0) attn_probs_bh(P, qbh, ldq, kbh, ldk, maskb, Tq, Tk, hd, causal);
    }
}

static void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                          const float *q, int ldq, const float *k, int ldk, const float *v,
                          int ldv, const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C,
                          int H, float *scratch) {
    if (H <= 0 || C % H) die("attention: width %d not divisible by %d heads", C, H);
    const int hd = C / H;
    const size_t TT = (size_t)Tq * Tk;
    const float s = keep_scale(p), scale = 1.0f / sqrtf((float)hd);
    float *Pd = scratch;           // dropped probabilities (only with attn_keep)
    float *dS = scratch + TT;      // dP, then dS in place
    for (int n = 0; n < B * H; n++) {
        const int b = n / H, h = n % H;
        const float *P = probs + (size_t)n * TT;
        const uint8_t *keep = attn_keep ? attn_keep + (size_t)n * TT : NULL;
        const size_t qo = (size_t)b * Tq * ldq + (size_t)h * hd;
        const size_t ko = (size_t)b * Tk * ldk + (size_t)h * hd;
        const size_t vo = (size_t)b * Tk * ldv + (size_t)h * hd;
        const float *dobh = dout + (size_t)b * Tq * C + (size_t)h * hd;
        if (dv) {
            const float *A = P;
            if (keep) {
                attn_drop(Pd, P, keep, s, TT);
                A = Pd;
            }
            // dV (Tk,hd) += A^T (Tk,Tq) @ dout (Tq,hd)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, hd, Tq, 1.0f, A, Tk, dobh, C,
                        1.0f, dv + vo, ldv);
        }
        if (!dq && !dk) continue;
        // dA (Tq,Tk) = dout (Tq,hd) @ V^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, hd, 1.0f, dobh, C, v + vo, ldv,
                    0.0f, dS, Tk);
        // dP = dA * keep * s; dS = P * (dP - sum_j dP*P)
#pragma omp parallel for if (TT > PAR_MIN)
        for (int i = 0; i < Tq; i++) {
            float *dr = dS + (size_t)i * Tk;
            const float *pr = P + (size_t)i * Tk;
            if (keep) {
                const uint8_t *kr = keep + (size_t)i * Tk;
                for (int j = 0; j < Tk; j++) dr[j] = kr[j] ? dr[j] * s : 0.0f;
            }
            double dot = 0.0;
            for (int j = 0; j < Tk; j++) dot += (double)dr[j] * pr[j];
            float df = (float)dot;
            for (int j = 0; j < Tk; j++) dr[j] = pr[j] * (dr[j] - df);
        }
        // scores = scale * Q K^T: dQ += scale * dS @ K; dK += scale * dS^T @ Q
        if (dq) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hd, Tk, scale, dS, Tk,
                            k + ko, ldk, 1.0f, dq + qo, ldq);
        if (dk) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, hd, Tq, scale, dS, Tk,
                            q + qo, ldq, 1.0f, dk + ko, ldk);
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy against target = (1-alpha) onehot(label) + alpha soft.

// Resolve the effective weights of the one-hot and soft parts from which inputs are present.
static void xent_weights(const int32_t *labels, const float *soft, float alpha, float *wl,
                         float *ws) {
    if (!soft) alpha = 0.0f;
    else if (!labels) alpha = 1.0f;
    *wl = labels ? 1.0f - alpha : 0.0f;
    *ws = soft ? alpha : 0.0f;
}

static void xent_check_labels(const int32_t *labels, int M, int V) {
    if (!labels) return;
    for (int r = 0; r < M; r++)
        if (labels[r] < 0 || labels[r] >= V)
            die("xent: label %d of row %d outside [0, %d)", (int)labels[r], r, V);
}

static float xent_fwd(float *probs, const float *logits, const int32_t *labels, const float *soft,
                      float alpha, int M, int V) {
    float wl, ws;
    xent_weights(labels, soft, alpha, &wl, &ws);
    xent_check_labels(labels, M, V);
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) if ((size_t)M * V > PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *x = logits + (size_t)r * V;
        float *pr = probs + (size_t)r * V;
        float m = -INFINITY;
        for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
        double se = 0.0;
        for (int j = 0; j < V; j++) {
            float e = expf(x[j] - m);
            pr[j] = e;
            se += e;
        }
        float inv = (float)(1.0 / se);
        for (int j = 0; j < V; j++) pr[j] *= inv;
        double lse = (double)m + log(se);  // log_softmax(x)_j = x_j - lse
        double lr = 0.0;
        if (wl != 0.0f) lr -= wl * ((double)x[labels[r]] - lse);
        if (ws != 0.0f) {
            const float *sr = soft + (size_t)r * V;
            double d = 0.0;
            for (int j = 0; j < V; j++)
                if (sr[j] != 0.0f) d += (double)sr[j] * ((double)x[j] - lse);
            lr -= ws * d;
        }
        total += lr;
    }
    return M > 0 ? (float)(total / M) : 0.0f;
}

static void xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *labels,
                     const float *soft, float alpha, int M, int V) {
    if (M <= 0) return;
    float wl, ws;
    xent_weights(labels, soft, alpha, &wl, &ws);
    xent_check_labels(labels, M, V);
    const float c = dloss / (float)M;
#pragma omp parallel for if ((size_t)M * V > PAR_MIN)
    for (int r = 0; r < M; r++) {
        const float *pr = probs + (size_t)r * V;
        float *dr = dlogits + (size_t)r * V;
        const float *sr = soft ? soft + (size_t)r * V : NULL;
        for (int j = 0; j < V; j++) {
            float t = sr ? ws * sr[j] : 0.0f;
            if (labels && j == labels[r]) t += wl;
            dr[j] += c * (pr[j] - t);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row L2 normalisation, torch.nn.functional.normalize semantics: y = x / max(||x||, 1e-12).
// norms holds the raw ||x||. Backward: where ||x|| > eps, dx = (dy - y (y.dy)) / ||x||; where the
// clamp is active the divisor is the constant eps, so dx = dy / eps.

#define L2_EPS 1e-12f

static void l2norm_fwd(float *y, float *norms, const float *x, int M, int C) {
#pragma omp parallel for if ((size_t)M * C > PAR_MIN)
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * C;
        float *yi = y + (size_t)i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xi[c] * xi[c];
        float nrm = (float)sqrt(ss);
        float inv = 1.0f / MAX(nrm, L2_EPS);
        for (int c = 0; c < C; c++) yi[c] = xi[c] * inv;
        norms[i] = nrm;
    }
}

static void l2norm_bwd(float *dx, const float *dy, const float *y, const float *norms, int M,
                       int C) {
#pragma omp parallel for if ((size_t)M * C > PAR_MIN)
    for (int i = 0; i < M; i++) {
        const float *yi = y + (size_t)i * C, *dyi = dy + (size_t)i * C;
        float *dxi = dx + (size_t)i * C;
        float nrm = norms[i];
        if (nrm > L2_EPS) {
            double d = 0.0;
            for (int c = 0; c < C; c++) d += (double)yi[c] * dyi[c];
            float df = (float)d, inv = 1.0f / nrm;
            for (int c = 0; c < C; c++) dxi[c] += (dyi[c] - yi[c] * df) * inv;
        } else {
            for (int c = 0; c < C; c++) dxi[c] += dyi[c] / L2_EPS;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Division by a scalar held in memory (a learnable temperature, for instance).

static void div_scalar_fwd(float *y, const float *x, const float *s, size_t n) {
    const float inv = 1.0f / s[0];
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * inv;
}

static void div_scalar_bwd(float *dx, float *ds, const float *dy, const float *x, const float *s,
                           size_t n) {
    const float sv = s[0], inv = 1.0f / sv;
    if (dx) {
#pragma omp parallel for if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * inv;
    }
    if (ds) {
        double d = 0.0;
#pragma omp parallel for reduction(+ : d) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) d += (double)dy[i] * x[i];
        ds[0] += (float)(-d / ((double)sv * sv));
    }
}

// ---------------------------------------------------------------------------------------------
// Losses with constant targets.

static float mse_rows_fwd(const float *pred, const float *target, const float *w, int R, int P) {
    double num = 0.0, den = 0.0;
#pragma omp parallel for reduction(+ : num, den) if ((size_t)R * P > PAR_MIN)
    for (int r = 0; r < R; r++) {
        if (w[r] == 0.0f) continue;
        const float *pr = pred + (size_t)r * P, *tr = target + (size_t)r * P;
        double s = 0.0;
        for (int j = 0; j < P; j++) {
            double d = (double)pr[j] - tr[j];
            s += d * d;
        }
        num += w[r] * s / P;
        den += w[r];
    }
    return den != 0.0 ? (float)(num / den) : 0.0f;
}

static void mse_rows_bwd(float *dpred, float dloss, const float *pred, const float *target,
                         const float *w, int R, int P) {
    double den = 0.0;
    for (int r = 0; r < R; r++) den += w[r];
    if (den == 0.0) return;
    const float c = (float)(2.0 * dloss / (den * P));
#pragma omp parallel for if ((size_t)R * P > PAR_MIN)
    for (int r = 0; r < R; r++) {
        if (w[r] == 0.0f) continue;
        const float *pr = pred + (size_t)r * P, *tr = target + (size_t)r * P;
        float *dr = dpred + (size_t)r * P;
        const float cr = c * w[r];
        for (int j = 0; j < P; j++) dr[j] += cr * (pr[j] - tr[j]);
    }
}

static float l1_fwd(const float *a, const float *b, size_t n) {
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) s += fabs((double)a[i] - b[i]);
    return n ? (float)(s / n) : 0.0f;
}

static void l1_bwd(float *da, float dloss, const float *a, const float *b, size_t n) {
    if (!n) return;
    const float c = dloss / (float)n;
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        da[i] += d > 0.0f ? c : (d < 0.0f ? -c : 0.0f);  // sign(0) = 0, as in PyTorch
    }
}

// ---------------------------------------------------------------------------------------------
// Row gather and its scatter-add adjoint (repeated indices accumulate; each thread owns a block
// of columns, so there are no races).

static void gather_rows_fwd(float *y, const float *x, const int32_t *idx, int n, int D) {
#pragma omp parallel for if ((size_t)n * D > PAR_MIN)
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * D, x + (size_t)idx[i] * D, (size_t)D * sizeof(float));
}

static void gather_rows_bwd(float *dx, const float *dy, const int32_t *idx, int n, int D) {
    long nblk = (D + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for if ((size_t)n * D > PAR_MIN)
    for (long blk = 0; blk < nblk; blk++) {
        int d0 = (int)blk * COL_BLOCK, d1 = MIN(d0 + COL_BLOCK, D);
        for (int i = 0; i < n; i++) {
            float *dr = dx + (size_t)idx[i] * D;
            const float *gr = dy + (size_t)i * D;
            for (int d = d0; d < d1; d++) dr[d] += gr[d];
        }
    }
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Memory: host memory, so the copies are memcpy.

static void *mem_alloc(size_t bytes) {
    size_t sz = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, sz ? sz : 64);
    if (!p) die("out of memory (%zu bytes)", bytes);
    return p;
}

static void mem_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}

static void copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memcpy(dst, src, bytes);
}

static void copy_2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                    size_t rows) {
    for (size_t r = 0; r < rows; r++)
        memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
}

static void synchronize(void) {}

// ---------------------------------------------------------------------------------------------
// Training state over flat buffers.

static void adamw_step(float *p, const float *g, float *m, float *v, const uint8_t *decay, size_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay,
                       int64_t t) {
    float c1 = 1.0f - powf(beta1, (float)t), c2 = 1.0f - powf(beta2, (float)t);
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        p[i] -= lr * weight_decay * (float)decay[i] * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

static void ema(float *pm, const float *p, size_t n, float mu) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) pm[i] = mu * pm[i] + (1.0f - mu) * p[i];
}

static int all_finite(const float *x, size_t n) {
    int ok = 1;
#pragma omp parallel for reduction(&& : ok) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) ok = ok && isfinite(x[i]);
    return ok;
}

static void clamp_scalar(float *x, float lo, float hi) {
    if (*x < lo) *x = lo;
    if (*x > hi) *x = hi;
}

const Ops ops_cpu = {
    .name = "cpu",
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
    .host_memory = 1,
    .mem_alloc = mem_alloc,
    .mem_free = free,
    .mem_zero = mem_zero,
    .copy_h2d = copy,
    .copy_d2h = copy,
    .copy_d2d = copy,
    .copy_d2h_2d = copy_2d,
    .synchronize = synchronize,
    .adamw_step = adamw_step,
    .ema = ema,
    .all_finite = all_finite,
    .clamp_scalar = clamp_scalar,
};
