// ops_cuda_loss.cu: the CUDA backend's losses and what they rest on: the full reductions (block
// partials in double, then one block in a fixed order: no float atomics, bitwise reproducible),
// softmax cross-entropy (xent), division by a device scalar (div_scalar, whose scalar gradient is
// a reduction), the row-weighted MSE and L1. Host-returning ops read the device scalars back with
// fetch_scalars (ops_cuda_backend.cu).
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "ops_cuda_internal.h"

// ---------------------------------------------------------------------------------------------
// Full reductions: out (device double) = sum_i f(i) over n items. Block partials in double, then
// one block adds them; the block count depends on n only, so the order is fixed.

template <class F>
static __global__ void reduce_partial_k(double *part, size_t n, F f) {
    __shared__ double sh[32];
    double acc = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        acc += f(i);
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

static __global__ void reduce_final_k(double *out, const double *part, int np) {
    __shared__ double sh[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) acc += part[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) *out = acc;
}

// `part` must hold RED_MAX_BLOCKS doubles (device).
template <class F>
static void reduce_sum(double *out, double *part, size_t n, F f) {
    unsigned G = grid_for(n, THREADS);
    if (G > RED_MAX_BLOCKS) G = RED_MAX_BLOCKS;
    reduce_partial_k<<<G, THREADS, 0, be.stream>>>(part, n, f);
    cudaLaunchCheck();
    reduce_final_k<<<1, THREADS, 0, be.stream>>>(out, part, (int)G);
    cudaLaunchCheck();
}

static double *reduce_part(void) { return (double *)workspace(RED_MAX_BLOCKS * sizeof(double)); }

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy against target = wl onehot(label) + ws soft (see ops_cpu.c).

static void xent_weights(const int32_t *labels, const float *soft, float alpha, float *wl,
                         float *ws) {
    if (!soft) alpha = 0.0f;
    else if (!labels) alpha = 1.0f;
    *wl = labels ? 1.0f - alpha : 0.0f;
    *ws = soft ? alpha : 0.0f;
}

// Block per row: probs, and the row's loss into rowloss.
static __global__ void xent_fwd_k(float *probs, float *rowloss, const float *logits, const int32_t *labels,
                           const float *soft, float wl, float ws, int V, int *err) {
    __shared__ float sh[32];
    const int r = blockIdx.x;
    const float *x = logits + (size_t)r * V;
    float *pr = probs + (size_t)r * V;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
    mx = block_max(mx, sh);
    float se = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float e = expf(x[j] - mx);
        pr[j] = e;
        se += e;
    }
    se = block_sum(se, sh);
    float inv = 1.0f / se;
    for (int j = threadIdx.x; j < V; j += blockDim.x) pr[j] *= inv;
    float lse = mx + logf(se);  // log_softmax(x)_j = x_j - lse
    float lr = 0.0f;
    if (ws != 0.0f) {
        const float *sr = soft + (size_t)r * V;
        float d = 0.0f;
        for (int j = threadIdx.x; j < V; j += blockDim.x)
            if (sr[j] != 0.0f) d += sr[j] * (x[j] - lse);
        lr = -ws * block_sum(d, sh);
    }
    if (threadIdx.x == 0) {
        if (wl != 0.0f) {
            int lab = labels[r];
            if (lab < 0 || lab >= V) *err = 1;
            else lr -= wl * (x[lab] - lse);
        }
        rowloss[r] = lr;
    }
}

struct SumArray {
    const float *a;
    __device__ double operator()(size_t i) const { return (double)a[i]; }
};

float xent_fwd(float *probs, const float *logits, const int32_t *labels, const float *soft,
               float alpha, int M, int V) {
    READY();
    if (M <= 0) return 0.0f;
    float wl, ws;
    xent_weights(labels, soft, alpha, &wl, &ws);
    char *w = workspace(align256(RED_MAX_BLOCKS * sizeof(double)) + (size_t)M * sizeof(float));
    double *part = (double *)w;
    float *rowloss = (float *)(w + align256(RED_MAX_BLOCKS * sizeof(double)));
    xent_fwd_k<<<M, ROW_THREADS, 0, be.stream>>>(probs, rowloss, logits, labels, soft, wl, ws, V,
                                                 &be.dsc->err);
    cudaLaunchCheck();
    reduce_sum(&be.dsc->d[0], part, (size_t)M, SumArray{rowloss});
    const DevScalars *h = fetch_scalars();
    return (float)(h->d[0] / M);
}

static __global__ void xent_bwd_k(float *dlogits, float c, const float *probs, const int32_t *labels,
                           const float *soft, float wl, float ws, int V, size_t total) {
    FOR_EACH(e, total) {
        size_t r = e / V;
        int j = (int)(e - r * V);
        float t = soft ? ws * soft[e] : 0.0f;
        if (labels && j == labels[r]) t += wl;
        dlogits[e] += c * (probs[e] - t);
    }
}

void xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *labels,
              const float *soft, float alpha, int M, int V) {
    READY();
    if (M <= 0) return;
    float wl, ws;
    xent_weights(labels, soft, alpha, &wl, &ws);
    const float c = dloss / (float)M;
    size_t total = (size_t)M * V;
    LAUNCH_1D(xent_bwd_k, total, dlogits, c, probs, labels, soft, wl, ws, V, total);
}

// ---------------------------------------------------------------------------------------------
// Division by a scalar held in device memory.

static __global__ void div_scalar_fwd_k(float *y, const float *x, const float *s, size_t n) {
    const float inv = 1.0f / s[0];
    FOR_EACH(i, n) y[i] = x[i] * inv;
}

static __global__ void div_scalar_dx_k(float *dx, const float *dy, const float *s, size_t n) {
    const float inv = 1.0f / s[0];
    FOR_EACH(i, n) dx[i] += dy[i] * inv;
}

static __global__ void div_scalar_ds_k(float *ds, const double *d, const float *s) {
    const float sv = s[0];
    ds[0] += (float)(-d[0] / ((double)sv * sv));
}

struct DotArrays {
    const float *a, *b;
    __device__ double operator()(size_t i) const { return (double)a[i] * b[i]; }
};

void div_scalar_fwd(float *y, const float *x, const float *s, size_t n) {
    READY();
    LAUNCH_1D(div_scalar_fwd_k, n, y, x, s, n);
}

void div_scalar_bwd(float *dx, float *ds, const float *dy, const float *x, const float *s,
                    size_t n) {
    READY();
    if (dx) LAUNCH_1D(div_scalar_dx_k, n, dx, dy, s, n);
    if (ds) {
        reduce_sum(&be.dsc->d[1], reduce_part(), n, DotArrays{dy, x});
        div_scalar_ds_k<<<1, 1, 0, be.stream>>>(ds, &be.dsc->d[1], s);
        cudaLaunchCheck();
    }
}

// ---------------------------------------------------------------------------------------------
// Losses with constant targets.

struct MseNum {  // w[r] * (pred - target)^2 / P, rows with w == 0 skipped
    const float *pred, *target, *w;
    int P;
    __device__ double operator()(size_t i) const {
        size_t r = i / P;
        float wr = w[r];
        if (wr == 0.0f) return 0.0;
        double d = (double)pred[i] - target[i];
        return (double)wr * d * d / P;
    }
};

float mse_rows_fwd(const float *pred, const float *target, const float *w, int R, int P) {
    READY();
    if (R <= 0 || P <= 0) return 0.0f;
    double *part = reduce_part();
    reduce_sum(&be.dsc->d[0], part, (size_t)R * P, MseNum{pred, target, w, P});
    reduce_sum(&be.dsc->d[1], part, (size_t)R, SumArray{w});
    const DevScalars *h = fetch_scalars();
    return h->d[1] != 0.0 ? (float)(h->d[0] / h->d[1]) : 0.0f;
}

static __global__ void mse_rows_bwd_k(float *dpred, float dloss, const float *pred, const float *target,
                               const float *w, int P, size_t total, const double *den) {
    const double dn = *den;
    if (dn == 0.0) return;
    const float c = (float)(2.0 * dloss / (dn * P));
    FOR_EACH(i, total) {
        size_t r = i / P;
        if (w[r] == 0.0f) continue;
        const float cr = c * w[r];
        dpred[i] += cr * (pred[i] - target[i]);
    }
}

void mse_rows_bwd(float *dpred, float dloss, const float *pred, const float *target,
                  const float *w, int R, int P) {
    READY();
    if (R <= 0 || P <= 0 || !dpred) return;
    reduce_sum(&be.dsc->d[2], reduce_part(), (size_t)R, SumArray{w});
    size_t total = (size_t)R * P;
    LAUNCH_1D(mse_rows_bwd_k, total, dpred, dloss, pred, target, w, P, total, &be.dsc->d[2]);
}

struct AbsDiff {
    const float *a, *b;
    __device__ double operator()(size_t i) const { return fabs((double)a[i] - b[i]); }
};

float l1_fwd(const float *a, const float *b, size_t n) {
    READY();
    if (!n) return 0.0f;
    reduce_sum(&be.dsc->d[0], reduce_part(), n, AbsDiff{a, b});
    const DevScalars *h = fetch_scalars();
    return (float)(h->d[0] / n);
}

static __global__ void l1_bwd_k(float *da, float c, const float *a, const float *b, size_t n) {
    FOR_EACH(i, n) {
        float d = a[i] - b[i];
        da[i] += d > 0.0f ? c : (d < 0.0f ? -c : 0.0f);  // sign(0) = 0, as in PyTorch
    }
}

void l1_bwd(float *da, float dloss, const float *a, const float *b, size_t n) {
    READY();
    if (!n || !da) return;
    LAUNCH_1D(l1_bwd_k, n, da, dloss / (float)n, a, b, n);
}
