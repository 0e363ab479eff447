// ops_cuda_elementwise.cu: the CUDA backend's elementwise ops (grid-stride kernels: gelu, add,
// add_bcast, acc, axpy, dropout, relu) and its row-wise ones other than the losses: softmax_rows
// (block per row) and the row L2 normalisation (warp per row).
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "ops_cuda_internal.h"

// ---------------------------------------------------------------------------------------------
// Elementwise kernels (grid-stride loops).

static __global__ void gelu_fwd_k(float *y, const float *x, size_t n) {
    const float r2 = 0.70710678118654752f;
    FOR_EACH(i, n) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * r2));
}

static __global__ void gelu_bwd_k(float *dx, const float *dy, const float *x, size_t n) {
    const float r2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
    FOR_EACH(i, n) {
        float xi = x[i];
        float cdf = 0.5f * (1.0f + erff(xi * r2));
        float pdf = inv_sqrt_2pi * expf(-0.5f * xi * xi);
        dx[i] += dy[i] * (cdf + xi * pdf);
    }
}

void gelu_fwd(float *y, const float *x, size_t n) {
    READY();
    LAUNCH_1D(gelu_fwd_k, n, y, x, n);
}

void gelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    READY();
    LAUNCH_1D(gelu_bwd_k, n, dx, dy, x, n);
}

static __global__ void add_k(float *y, const float *a, const float *b, size_t n) {
    FOR_EACH(i, n) y[i] = a[i] + b[i];
}

static __global__ void add_bcast_k(float *y, const float *a, const float *b, size_t total, size_t n) {
    FOR_EACH(i, total) y[i] = a[i] + b[i % n];
}

static __global__ void acc_k(float *y, const float *a, size_t n) {
    FOR_EACH(i, n) y[i] += a[i];
}

static __global__ void axpy_k(float *y, float s, const float *a, size_t n) {
    FOR_EACH(i, n) y[i] += s * a[i];
}

void add_fwd(float *y, const float *a, const float *b, size_t n) {
    READY();
    LAUNCH_1D(add_k, n, y, a, b, n);
}

void add_bcast_fwd(float *y, const float *a, const float *b, int R, size_t n) {
    READY();
    size_t total = (size_t)(R > 0 ? R : 0) * n;
    LAUNCH_1D(add_bcast_k, total, y, a, b, total, n);
}

void acc(float *y, const float *a, size_t n) {
    READY();
    LAUNCH_1D(acc_k, n, y, a, n);
}

void axpy(float *y, float s, const float *a, size_t n) {
    READY();
    LAUNCH_1D(axpy_k, n, y, s, a, n);
}

// Inverted dropout: y = keep ? x * s : 0; backward dx += keep ? dy * s : 0.
__global__ void dropout_fwd_k(float *y, const float *x, const uint8_t *keep, float s, size_t n) {
    FOR_EACH(i, n) y[i] = keep[i] ? x[i] * s : 0.0f;
}

static __global__ void dropout_bwd_k(float *dx, const float *dy, const uint8_t *keep, float s, size_t n) {
    FOR_EACH(i, n) if (keep[i]) dx[i] += dy[i] * s;
}

void dropout_fwd(float *y, const float *x, const uint8_t *keep, float p, size_t n) {
    READY();
    LAUNCH_1D(dropout_fwd_k, n, y, x, keep, keep_scale(p), n);
}

void dropout_bwd(float *dx, const float *dy, const uint8_t *keep, float p, size_t n) {
    READY();
    LAUNCH_1D(dropout_bwd_k, n, dx, dy, keep, keep_scale(p), n);
}

// ReLU with its keep-mask (the backward is dropout_bwd with p = 0). Written as ops_cpu does it,
// a select rather than fmaxf: NaN and -0 both fail x > 0, so they give keep 0 and y = +0 exactly
// as on the CPU (fmaxf(NaN, 0) is 0 too, but fmaxf(-0, 0) may be -0).
static __global__ void relu_fwd_k(float *y, uint8_t *keep, const float *x, size_t n) {
    FOR_EACH(i, n) {
        const float xi = x[i];  // read before writing: y may alias x
        const uint8_t k = xi > 0.0f;
        keep[i] = k;
        y[i] = k ? xi : 0.0f;
    }
}

void relu_fwd(float *y, uint8_t *keep, const float *x, size_t n) {
    READY();
    LAUNCH_1D(relu_fwd_k, n, y, keep, x, n);
}

// ---------------------------------------------------------------------------------------------
// Row softmax over wide rows (vocabulary, queue): block per row.

static __global__ void softmax_rows_k(float *y, const float *x, int V) {
    __shared__ float sh[32];
    const float *xr = x + (size_t)blockIdx.x * V;
    float *yr = y + (size_t)blockIdx.x * V;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, xr[j]);
    mx = block_max(mx, sh);
    if (mx == -INFINITY) {
        for (int j = threadIdx.x; j < V; j += blockDim.x) yr[j] = 0.0f;
        return;
    }
    float se = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {  // in place safe: same thread, same j
        float e = expf(xr[j] - mx);
        yr[j] = e;
        se += e;
    }
    float inv = 1.0f / block_sum(se, sh);
    for (int j = threadIdx.x; j < V; j += blockDim.x) yr[j] *= inv;
}

void softmax_rows(float *y, const float *x, int M, int V) {
    READY();
    if (M <= 0 || V <= 0) return;
    softmax_rows_k<<<M, ROW_THREADS, 0, be.stream>>>(y, x, V);
    cudaLaunchCheck();
}

// ---------------------------------------------------------------------------------------------
// Row L2 normalisation (warp per row): y = x / max(||x||, eps), norms = ||x||.

static __global__ void l2norm_fwd_k(float *y, float *norms, const float *x, int M, int C) {
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= M) return;
    const float *xr = x + (size_t)row * C;
    float *yr = y + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += WARP) ss += xr[c] * xr[c];
    float nrm = sqrtf(warp_sum(ss));
    float inv = 1.0f / fmaxf(nrm, L2_EPS);
    for (int c = lane; c < C; c += WARP) yr[c] = xr[c] * inv;
    if (lane == 0) norms[row] = nrm;
}

static __global__ void l2norm_bwd_k(float *dx, const float *dy, const float *y, const float *norms, int M,
                             int C) {
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= M) return;
    const float *yr = y + (size_t)row * C, *dyr = dy + (size_t)row * C;
    float *dxr = dx + (size_t)row * C;
    float nrm = norms[row];
    if (nrm > L2_EPS) {
        float d = 0.0f;
        for (int c = lane; c < C; c += WARP) d += yr[c] * dyr[c];
        d = warp_sum(d);
        float inv = 1.0f / nrm;
        for (int c = lane; c < C; c += WARP) dxr[c] += (dyr[c] - yr[c] * d) * inv;
    } else {
        for (int c = lane; c < C; c += WARP) dxr[c] += dyr[c] / L2_EPS;
    }
}

void l2norm_fwd(float *y, float *norms, const float *x, int M, int C) {
    READY();
    if (M <= 0) return;
    l2norm_fwd_k<<<CEIL_DIV(M, ROWS_PER_BLOCK), THREADS, 0, be.stream>>>(y, norms, x, M, C);
    cudaLaunchCheck();
}

void l2norm_bwd(float *dx, const float *dy, const float *y, const float *norms, int M,
                int C) {
    READY();
    if (M <= 0 || !dx) return;
    l2norm_bwd_k<<<CEIL_DIV(M, ROWS_PER_BLOCK), THREADS, 0, be.stream>>>(dx, dy, y, norms, M, C);
    cudaLaunchCheck();
}
