// ops_cuda.cu: the CUDA backend of the op interface (ops.h); see ops_cuda.h for the contract.
//
// How each op maps to the GPU (one stream; row-major tensors; B batch, H heads, hd = C/H):
//   linear_fwd/bwd   cuBLAS GEMMs (cublasGemmEx): y = x w^T (+ bias pre-filled, beta = 1);
//                    dx += dy w; dw += dy^T x; db += column sums (two-stage, fixed order).
//   attention        per head h, one strided-batched GEMM over the B batches
//                    (cublasGemmStridedBatchedEx, stride Tq*ldq / Tk*ldk / H*Tq*Tk), so the
//                    ldq/ldk/ldv row strides of fused qkv buffers work as they are: scores
//                    S = scale Q K^T straight into probs, a masked-softmax kernel in place (additive
//                    key mask, causal, fully-masked rows -> zeros), dropout into a workspace copy,
//                    out = P V. Backward: dV += P^T dO, dP = dO V^T, softmax-backward kernel
//                    (with the keep-mask), dQ += scale dS K, dK += scale dS^T Q.
//   layernorm        warp per row (fp32 two-pass statistics); dgamma/dbeta by two-stage
//                    column sums.
//   elementwise      grid-stride kernels (gelu erf, add, add_bcast, acc, axpy, dropout, xent_bwd,
//                    l1_bwd, gather_rows_fwd, ...).
//   row-wise         warp per row (l2norm, attention softmax) or block per row (xent, softmax_rows,
//                    whose rows are vocabulary- or queue-wide).
//   reductions       losses and the div_scalar gradient: block partials in double, then one block
//                    sums the partials in a fixed order (no float atomics: bitwise reproducible);
//                    host-returning ops copy the result into pinned memory and wait.
//   gather_rows_bwd  atomicAdd scatter; deterministic mode: one thread per column walks the rows
//                    in order.
//   relu_fwd         elementwise: keep = x > 0, y = keep ? x : 0 as ops_cpu (NaN and -0 give
//                    keep 0 and y +0: bit for bit the CPU's).
//   memory, copies   cudaMalloc / cudaMemsetAsync / cudaMemcpy(2D)Async on the backend stream
//                    (cuda_malloc ... below); copies into or out of host memory wait for the
//                    stream (the host side may be reused or read on return), the others do not.
//   training state   adamw_step, ema, all_finite, clamp_scalar, dropout_mask: the kernels of
//                    kernels/optim_cuda.cu (all_finite waits for its answer).
// GEMM precision: fp32 tensors in both modes; CUBLAS_COMPUTE_32F (fp32) or
// CUBLAS_COMPUTE_32F_FAST_16BF (bf16 tensor cores, fp32 accumulate).
//
// Row-major GEMMs on column-major cuBLAS: a row-major (r, c) matrix with leading dimension ld is
// the column-major (c, r) matrix with the same ld, i.e. its transpose. So row-major
// C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: call cuBLAS with the operands swapped,
// the transpose flags kept, and m, n swapped (gemm_rm below mirrors cblas_sgemm(CblasRowMajor)).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"
#include "ops_cuda.h"

// The member list of ops.h as this file knows it: a new member must be implemented here too.
// 43 pointers (name and 42 functions) and the int host_memory, which the pointer after it pads
// to a pointer's size.
static_assert(sizeof(Ops) == 44 * sizeof(void *), "ops.h changed: implement the new op in ops_cuda.cu");

// ---------------------------------------------------------------------------------------------
// Backend state.

// Device-side scalars: reduction results and the error flag, copied to pinned host memory in one
// transfer by the host-returning ops.
struct DevScalars {
    double d[4];
    int err;  // 1: xent saw a label outside [0, V)
    int pad;
};

static struct {
    int ready, device, bf16, deterministic;
    size_t max_pitch;  // cudaDevAttrMaxPitch: the largest pitch cudaMemcpy2D accepts
    cudaStream_t stream;
    cublasHandle_t blas;
    char *ws;
    size_t ws_cap;
    DevScalars *dsc;   // device
    DevScalars *hsc;   // pinned host mirror
} be;

#define THREADS 256
#define ROWS_PER_BLOCK (THREADS / WARP)  // warp-per-row kernels
#define RED_MAX_BLOCKS 1024              // first-stage blocks of a reduction
#define L2_EPS 1e-12f

static void not_ready(const char *what) {
    fprintf(stderr, "vlmae: ops_cuda: %s called before cuda_backend_init()\n", what);
    exit(1);
}
#define READY()                               \
    do {                                      \
        if (!be.ready) not_ready(__func__);   \
    } while (0)


// The workspace: one device block reused by every op (ops run in stream order, so one op's use
// ends before the next op's kernels start). Growing it waits for the stream first, since
// kernels already queued may still read the old block.
static char *workspace(size_t bytes) {
    if (bytes > be.ws_cap) {
        cudaCheck(cudaStreamSynchronize(be.stream));
        if (be.ws) cudaCheck(cudaFree(be.ws));
        size_t cap = bytes + bytes / 4 + ((size_t)1 << 20);
        cudaCheck(cudaMalloc((void **)&be.ws, cap));
        be.ws_cap = cap;
    }
    return be.ws;
}

static size_t align256(size_t b) { return (b + 255) / 256 * 256; }

static float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

// ---------------------------------------------------------------------------------------------
// GEMMs.

static cublasComputeType_t compute_type(void) {
    return be.bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
}

// Row-major C (M,N) = alpha op(A) op(B) + beta C, as cblas_sgemm(CblasRowMajor, ta, tb, ...):
// op(A) is (M,K) (A stored (M,K), or (K,M) when ta); op(B) is (K,N) (B stored (K,N), or (N,K)
// when tb).
static void gemm_rm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *Bm, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cublasCheck(cublasGemmEx(be.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                             N, M, K, &alpha, Bm, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C,
                             CUDA_R_32F, ldc, compute_type(), CUBLAS_GEMM_DEFAULT));
}

// The same for `batch` independent products, operand i at A + i*sA, B + i*sB, C + i*sC.
static void gemm_rm_batched(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                            int lda, long long sA, const float *Bm, int ldb, long long sB,
                            float beta, float *C, int ldc, long long sC, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    cublasCheck(cublasGemmStridedBatchedEx(
        be.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
        Bm, CUDA_R_32F, ldb, sB, A, CUDA_R_32F, lda, sA, &beta, C, CUDA_R_32F, ldc, sC, batch,
        compute_type(), CUBLAS_GEMM_DEFAULT));
}

// ---------------------------------------------------------------------------------------------
// Column sums: dst (ncols) += sum over R rows of f(r, c), in two stages with a fixed order.
// Stage 1: block (32 columns x 8 row-threads) per (column block, chunk of rows); stage 2: one
// thread per column adds the chunk partials in order (in double).

#define COL_TX 32
#define COL_TY 8

struct ColPlain {  // dy[r, c]
    const float *dy;
    size_t ld;
    __device__ float operator()(int r, size_t c) const { return dy[(size_t)r * ld + c]; }
};

struct ColLnGamma {  // dy[r, c] * xhat[r, c]
    const float *dy, *x, *mean, *rstd;
    size_t ld;
    __device__ float operator()(int r, size_t c) const {
        size_t i = (size_t)r * ld + c;
        return dy[i] * ((x[i] - mean[r]) * rstd[r]);
    }
};

template <class F>
static __global__ void colsum_partial_k(float *part, size_t ncols, int R, int rows_per_chunk, F f) {
    __shared__ float sh[COL_TY][COL_TX + 1];
    size_t c = (size_t)blockIdx.x * COL_TX + threadIdx.x;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = min(R, r0 + rows_per_chunk);
    float acc = 0.0f;
    if (c < ncols)
        for (int r = r0 + threadIdx.y; r < r1; r += COL_TY) acc += f(r, c);
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < ncols) {
        float s = 0.0f;
        for (int k = 0; k < COL_TY; k++) s += sh[k][threadIdx.x];
        part[(size_t)blockIdx.y * ncols + c] = s;
    }
}

static __global__ void colsum_final_k(float *dst, const float *part, size_t ncols, int nchunks) {
    for (size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x; c < ncols;
         c += (size_t)gridDim.x * blockDim.x) {
        double s = 0.0;
        for (int k = 0; k < nchunks; k++) s += part[(size_t)k * ncols + c];
        dst[c] += (float)s;
    }
}

template <class F>
static void colsum_acc(float *dst, int R, size_t ncols, F f) {
    if (R <= 0 || ncols == 0) return;
    int rows_per_chunk = 64;
    if (CEIL_DIV(R, rows_per_chunk) > 1024) rows_per_chunk = CEIL_DIV(R, 1024);
    int nchunks = CEIL_DIV(R, rows_per_chunk);
    float *part = (float *)workspace((size_t)nchunks * ncols * sizeof(float));
    dim3 grid((unsigned)CEIL_DIV(ncols, (size_t)COL_TX), (unsigned)nchunks);
    colsum_partial_k<<<grid, dim3(COL_TX, COL_TY), 0, be.stream>>>(part, ncols, R, rows_per_chunk, f);
    cudaLaunchCheck();
    colsum_final_k<<<grid_for(ncols, THREADS), THREADS, 0, be.stream>>>(dst, part, ncols, nchunks);
    cudaLaunchCheck();
}

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

// Copy the device scalars to the host, wait, and check the error flag.
static const DevScalars *fetch_scalars(void) {
    cudaCheck(cudaMemcpyAsync(be.hsc, be.dsc, sizeof(DevScalars), cudaMemcpyDeviceToHost, be.stream));
    cudaCheck(cudaStreamSynchronize(be.stream));
    if (be.hsc->err) {
        fprintf(stderr, "vlmae: ops_cuda: xent: a label outside [0, V) (device check)\n");
        exit(1);
    }
    return be.hsc;
}

// ---------------------------------------------------------------------------------------------
// Linear.

static __global__ void bias_fill_k(float *y, const float *b, size_t total, int N) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = b[i % N];
}

static void linear_fwd(float *y, const float *x, const float *w, const float *b, int M, int K,
                       int N) {
    READY();
    if (M <= 0 || N <= 0) return;
    float beta = 0.0f;
    if (b) {
        size_t total = (size_t)M * N;
        bias_fill_k<<<grid_for(total, THREADS), THREADS, 0, be.stream>>>(y, b, total, N);
        cudaLaunchCheck();
        beta = 1.0f;
    }
    gemm_rm(0, 1, M, N, K, 1.0f, x, K, w, K, beta, y, N);
}

static void sum_rows_acc(float *db, const float *dy, int R, size_t n) {
    READY();
    colsum_acc(db, R, n, ColPlain{dy, n});
}

static void linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int M, int K, int N) {
    READY();
    if (dx) gemm_rm(0, 0, M, K, N, 1.0f, dy, N, w, K, 1.0f, dx, K);  // dx (M,K) += dy (M,N) w (N,K)
    if (dw) gemm_rm(1, 0, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);  // dw (N,K) += dy^T x (M,K)
    if (db) colsum_acc(db, M, (size_t)N, ColPlain{dy, (size_t)N});
}

// ---------------------------------------------------------------------------------------------
// LayerNorm: warp per row.

static __global__ void layernorm_fwd_k(float *y, float *mean, float *rstd, const float *x, const float *g,
                                const float *b, int M, int C, float eps) {
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= M) return;  // the whole warp leaves together
    const float *xr = x + (size_t)row * C;
    float *yr = y + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += WARP) s += xr[c];
    float m = warp_sum(s) / (float)C;
    float v = 0.0f;
    for (int c = lane; c < C; c += WARP) {
        float d = xr[c] - m;
        v += d * d;
    }
    v = warp_sum(v) / (float)C;
    float rs = 1.0f / sqrtf(v + eps);
    for (int c = lane; c < C; c += WARP) {
        float n = (xr[c] - m) * rs;
        yr[c] = n * (g ? g[c] : 1.0f) + (b ? b[c] : 0.0f);
    }
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = rs;
    }
}

static void layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g,
                          const float *b, int M, int C, float eps) {
    READY();
    if (M <= 0) return;
    layernorm_fwd_k<<<CEIL_DIV(M, ROWS_PER_BLOCK), THREADS, 0, be.stream>>>(y, mean, rstd, x, g, b,
                                                                            M, C, eps);
    cudaLaunchCheck();
}

static __global__ void layernorm_bwd_dx_k(float *dx, const float *dy, const float *x, const float *g,
                                   const float *mean, const float *rstd, int M, int C) {
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= M) return;
    const float *xr = x + (size_t)row * C, *dyr = dy + (size_t)row * C;
    float *dxr = dx + (size_t)row * C;
    float m = mean[row], rs = rstd[row];
    float s1 = 0.0f, s2 = 0.0f;
    for (int c = lane; c < C; c += WARP) {
        float dn = dyr[c] * (g ? g[c] : 1.0f);
        s1 += dn;
        s2 += dn * ((xr[c] - m) * rs);
    }
    float a = warp_sum(s1) / (float)C, bb = warp_sum(s2) / (float)C;
    for (int c = lane; c < C; c += WARP) {
        float dn = dyr[c] * (g ? g[c] : 1.0f);
        float xh = (xr[c] - m) * rs;
        dxr[c] += rs * (dn - a - xh * bb);
    }
}

static void layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x,
                          const float *g, const float *mean, const float *rstd, int M, int C) {
    READY();
    if (M <= 0) return;
    if (dx) {
        layernorm_bwd_dx_k<<<CEIL_DIV(M, ROWS_PER_BLOCK), THREADS, 0, be.stream>>>(dx, dy, x, g, mean,
                                                                                   rstd, M, C);
        cudaLaunchCheck();
    }
    if (dg) colsum_acc(dg, M, (size_t)C, ColLnGamma{dy, x, mean, rstd, (size_t)C});
    if (db) colsum_acc(db, M, (size_t)C, ColPlain{dy, (size_t)C});
}

// ---------------------------------------------------------------------------------------------
// Elementwise kernels (grid-stride loops).

#define FOR_EACH(i, n)                                                          \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

#define LAUNCH_1D(kernel, n, ...)                                                           \
    do {                                                                                    \
        if ((n) > 0) {                                                                      \
            kernel<<<grid_for((n), THREADS), THREADS, 0, be.stream>>>(__VA_ARGS__);         \
            cudaLaunchCheck();                                                              \
        }                                                                                   \
    } while (0)

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

static void gelu_fwd(float *y, const float *x, size_t n) {
    READY();
    LAUNCH_1D(gelu_fwd_k, n, y, x, n);
}

static void gelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
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

static void add_fwd(float *y, const float *a, const float *b, size_t n) {
    READY();
    LAUNCH_1D(add_k, n, y, a, b, n);
}

static void add_bcast_fwd(float *y, const float *a, const float *b, int R, size_t n) {
    READY();
    size_t total = (size_t)(R > 0 ? R : 0) * n;
    LAUNCH_1D(add_bcast_k, total, y, a, b, total, n);
}

static void acc(float *y, const float *a, size_t n) {
    READY();
    LAUNCH_1D(acc_k, n, y, a, n);
}

static void axpy(float *y, float s, const float *a, size_t n) {
    READY();
    LAUNCH_1D(axpy_k, n, y, s, a, n);
}

// Inverted dropout: y = keep ? x * s : 0; backward dx += keep ? dy * s : 0.
static __global__ void dropout_fwd_k(float *y, const float *x, const uint8_t *keep, float s, size_t n) {
    FOR_EACH(i, n) y[i] = keep[i] ? x[i] * s : 0.0f;
}

static __global__ void dropout_bwd_k(float *dx, const float *dy, const uint8_t *keep, float s, size_t n) {
    FOR_EACH(i, n) if (keep[i]) dx[i] += dy[i] * s;
}

static void dropout_fwd(float *y, const float *x, const uint8_t *keep, float p, size_t n) {
    READY();
    LAUNCH_1D(dropout_fwd_k, n, y, x, keep, keep_scale(p), n);
}

static void dropout_bwd(float *dx, const float *dy, const uint8_t *keep, float p, size_t n) {
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

static void relu_fwd(float *y, uint8_t *keep, const float *x, size_t n) {
    READY();
    LAUNCH_1D(relu_fwd_k, n, y, keep, x, n);
}

// ---------------------------------------------------------------------------------------------
// Attention. probs (B,H,Tq,Tk): row r = (b*H + h)*Tq + i.

// In place on the raw scaled scores: add the key mask of batch b, hide keys j > i when causal,
// softmax; a row with every key at -inf becomes zeros. Warp per row.
static __global__ void attn_softmax_k(float *P, const float *mask, int rows, int H, int Tq, int Tk,
                               int causal) {
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= rows) return;
    int i = row % Tq, b = (row / Tq) / H;
    float *pr = P + (size_t)row * Tk;
    const float *mb = mask ? mask + (size_t)b * Tk : NULL;
    float mx = -INFINITY;
    for (int j = lane; j < Tk; j += WARP) {
        float s = pr[j] + (mb ? mb[j] : 0.0f);
        if (causal && j > i) s = -INFINITY;
        mx = fmaxf(mx, s);
    }
    mx = warp_max(mx);
    if (mx == -INFINITY) {
        for (int j = lane; j < Tk; j += WARP) pr[j] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int j = lane; j < Tk; j += WARP) {  // each lane rewrites only the entries it read
        float s = pr[j] + (mb ? mb[j] : 0.0f);
        if (causal && j > i) s = -INFINITY;
        float e = expf(s - mx);
        pr[j] = e;
        sum += e;
    }
    float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < Tk; j += WARP) pr[j] *= inv;
}

// dS = P * (dP - sum_j dP P) with dP = dA * keep * s, in place on dA. Warp per row.
static __global__ void attn_softmax_bwd_k(float *dS, const float *P, const uint8_t *keep, float s,
                                   int rows, int Tk) {
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (row >= rows) return;
    float *dr = dS + (size_t)row * Tk;
    const float *pr = P + (size_t)row * Tk;
    const uint8_t *kr = keep ? keep + (size_t)row * Tk : NULL;
    float dot = 0.0f;
    for (int j = lane; j < Tk; j += WARP) {
        float d = dr[j];
        if (kr) d = kr[j] ? d * s : 0.0f;
        dot += d * pr[j];
    }
    dot = warp_sum(dot);
    for (int j = lane; j < Tk; j += WARP) {
        float d = dr[j];
        if (kr) d = kr[j] ? d * s : 0.0f;
        dr[j] = pr[j] * (d - dot);
    }
}

static void attn_check(int C, int H) {
    if (H <= 0 || C % H) {
        fprintf(stderr, "vlmae: ops_cuda: attention: width %d not divisible by %d heads\n", C, H);
        exit(1);
    }
}

extern "C" size_t cuda_attention_workspace_bytes(int B, int Tq, int Tk, int H, int dropout) {
    size_t np = (size_t)B * H * Tq * Tk * sizeof(float);
    return align256(np) * (dropout ? 2 : 1);
}

static void attention_fwd(float *out, float *probs, const float *q, int ldq, const float *k,
                          int ldk, const float *v, int ldv, const float *mask,
                          const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C, int H,
                          int causal) {
    READY();
    attn_check(C, H);
    if (B <= 0 || Tq <= 0) return;
    const int hd = C / H;
    const long long TT = (long long)Tq * Tk;
    const size_t np = (size_t)B * H * TT;
    const float scale = 1.0f / sqrtf((float)hd);
    // scores: S[b,h] (Tq,Tk) = scale * Q[b,h] (Tq,hd) K[b,h]^T, batched over b for each head
    for (int h = 0; h < H; h++)
        gemm_rm_batched(0, 1, Tq, Tk, hd, scale, q + (size_t)h * hd, ldq, (long long)Tq * ldq,
                        k + (size_t)h * hd, ldk, (long long)Tk * ldk, 0.0f, probs + h * TT, Tk,
                        (long long)H * TT, B);
    int rows = B * H * Tq;
    attn_softmax_k<<<CEIL_DIV(rows, ROWS_PER_BLOCK), THREADS, 0, be.stream>>>(probs, mask, rows, H,
                                                                              Tq, Tk, causal);
    cudaLaunchCheck();
    const float *A = probs;
    if (attn_keep) {  // dropped probabilities in the workspace; probs keep the clean ones
        float *D = (float *)workspace(np * sizeof(float));
        LAUNCH_1D(dropout_fwd_k, np, D, probs, attn_keep, keep_scale(p), np);
        A = D;
    }
    // out[b, :, h] (Tq,hd) = A[b,h] (Tq,Tk) V[b,h] (Tk,hd)
    for (int h = 0; h < H; h++)
        gemm_rm_batched(0, 0, Tq, hd, Tk, 1.0f, A + h * TT, Tk, (long long)H * TT, v + (size_t)h * hd,
                        ldv, (long long)Tk * ldv, 0.0f, out + (size_t)h * hd, C, (long long)Tq * C, B);
}

static void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                          const float *q, int ldq, const float *k, int ldk, const float *v,
                          int ldv, const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C,
                          int H, float *scratch) {
    READY();
    (void)scratch;  // the backend's workspace is used instead
    attn_check(C, H);
    if (B <= 0 || Tq <= 0 || (!dq && !dk && !dv)) return;
    const int hd = C / H;
    const long long TT = (long long)Tq * Tk;
    const size_t np = (size_t)B * H * TT;
    const float s = keep_scale(p), scale = 1.0f / sqrtf((float)hd);
    char *ws = workspace(cuda_attention_workspace_bytes(B, Tq, Tk, H, attn_keep != NULL));
    float *dS = (float *)ws;
    float *Pd = attn_keep ? (float *)(ws + align256(np * sizeof(float))) : NULL;
    if (dv) {
        const float *A = probs;
        if (attn_keep) {
            LAUNCH_1D(dropout_fwd_k, np, Pd, probs, attn_keep, s, np);
            A = Pd;
        }
        // dV[b,h] (Tk,hd) += A[b,h]^T (Tk,Tq) dO[b,:,h] (Tq,hd)
        for (int h = 0; h < H; h++)
            gemm_rm_batched(1, 0, Tk, hd, Tq, 1.0f, A + h * TT, Tk, (long long)H * TT,
                            dout + (size_t)h * hd, C, (long long)Tq * C, 1.0f, dv + (size_t)h * hd,
                            ldv, (long long)Tk * ldv, B);
    }
    if (!dq && !dk) return;
    // dA[b,h] (Tq,Tk) = dO[b,:,h] (Tq,hd) V[b,h]^T
    for (int h = 0; h < H; h++)
        gemm_rm_batched(0, 1, Tq, Tk, hd, 1.0f, dout + (size_t)h * hd, C, (long long)Tq * C,
                        v + (size_t)h * hd, ldv, (long long)Tk * ldv, 0.0f, dS + h * TT, Tk,
                        (long long)H * TT, B);
    int rows = B * H * Tq;
    attn_softmax_bwd_k<<<CEIL_DIV(rows, ROWS_PER_BLOCK), THREADS, 0, be.stream>>>(dS, probs,
                                                                                  attn_keep, s, rows, Tk);
    cudaLaunchCheck();
    for (int h = 0; h < H; h++) {
        // dQ[b,h] (Tq,hd) += scale dS (Tq,Tk) K[b,h] (Tk,hd)
        if (dq)
            gemm_rm_batched(0, 0, Tq, hd, Tk, scale, dS + h * TT, Tk, (long long)H * TT,
                            k + (size_t)h * hd, ldk, (long long)Tk * ldk, 1.0f, dq + (size_t)h * hd,
                            ldq, (long long)Tq * ldq, B);
        // dK[b,h] (Tk,hd) += scale dS^T (Tk,Tq) Q[b,h] (Tq,hd)
        if (dk)
            gemm_rm_batched(1, 0, Tk, hd, Tq, scale, dS + h * TT, Tk, (long long)H * TT,
                            q + (size_t)h * hd, ldq, (long long)Tq * ldq, 1.0f, dk + (size_t)h * hd,
                            ldk, (long long)Tk * ldk, B);
    }
}

// ---------------------------------------------------------------------------------------------
// Row softmax over wide rows (vocabulary, queue): block per row.

#define ROW_THREADS 256

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

static void softmax_rows(float *y, const float *x, int M, int V) {
    READY();
    if (M <= 0 || V <= 0) return;
    softmax_rows_k<<<M, ROW_THREADS, 0, be.stream>>>(y, x, V);
    cudaLaunchCheck();
}

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

static float xent_fwd(float *probs, const float *logits, const int32_t *labels, const float *soft,
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

static void xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *labels,
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

static void l2norm_fwd(float *y, float *norms, const float *x, int M, int C) {
    READY();
    if (M <= 0) return;
    l2norm_fwd_k<<<CEIL_DIV(M, ROWS_PER_BLOCK), THREADS, 0, be.stream>>>(y, norms, x, M, C);
    cudaLaunchCheck();
}

static void l2norm_bwd(float *dx, const float *dy, const float *y, const float *norms, int M,
                       int C) {
    READY();
    if (M <= 0 || !dx) return;
    l2norm_bwd_k<<<CEIL_DIV(M, ROWS_PER_BLOCK), THREADS, 0, be.stream>>>(dx, dy, y, norms, M, C);
    cudaLaunchCheck();
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

static void div_scalar_fwd(float *y, const float *x, const float *s, size_t n) {
    READY();
    LAUNCH_1D(div_scalar_fwd_k, n, y, x, s, n);
}

static void div_scalar_bwd(float *dx, float *ds, const float *dy, const float *x, const float *s,
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

static float mse_rows_fwd(const float *pred, const float *target, const float *w, int R, int P) {
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

static void mse_rows_bwd(float *dpred, float dloss, const float *pred, const float *target,
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

static float l1_fwd(const float *a, const float *b, size_t n) {
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

static void l1_bwd(float *da, float dloss, const float *a, const float *b, size_t n) {
    READY();
    if (!n || !da) return;
    LAUNCH_1D(l1_bwd_k, n, da, dloss / (float)n, a, b, n);
}

// ---------------------------------------------------------------------------------------------
// Row gather and its scatter-add adjoint.

static __global__ void gather_rows_fwd_k(float *y, const float *x, const int32_t *idx, int D, size_t total) {
    FOR_EACH(e, total) {
        size_t i = e / D, d = e - i * D;
        y[e] = x[(size_t)idx[i] * D + d];
    }
}

static __global__ void gather_rows_bwd_atomic_k(float *dx, const float *dy, const int32_t *idx, int D,
                                         size_t total) {
    FOR_EACH(e, total) {
        size_t i = e / D, d = e - i * D;
        atomicAdd(dx + (size_t)idx[i] * D + d, dy[e]);
    }
}

// Deterministic: thread d owns column d and adds the rows in index order (no races, fixed order).
static __global__ void gather_rows_bwd_cols_k(float *dx, const float *dy, const int32_t *idx, int n, int D) {
    for (size_t d = (size_t)blockIdx.x * blockDim.x + threadIdx.x; d < (size_t)D;
         d += (size_t)gridDim.x * blockDim.x)
        for (int i = 0; i < n; i++) dx[(size_t)idx[i] * D + d] += dy[(size_t)i * D + d];
}

static void gather_rows_fwd(float *y, const float *x, const int32_t *idx, int n, int D) {
    READY();
    if (n <= 0 || D <= 0) return;
    size_t total = (size_t)n * D;
    LAUNCH_1D(gather_rows_fwd_k, total, y, x, idx, D, total);
}

static void gather_rows_bwd(float *dx, const float *dy, const int32_t *idx, int n, int D) {
    READY();
    if (n <= 0 || D <= 0 || !dx) return;
    if (be.deterministic) {
        LAUNCH_1D(gather_rows_bwd_cols_k, (size_t)D, dx, dy, idx, n, D);
    } else {
        size_t total = (size_t)n * D;
        LAUNCH_1D(gather_rows_bwd_atomic_k, total, dx, dy, idx, D, total);
    }
}

// ---------------------------------------------------------------------------------------------
// Table adapters for members whose signature differs from the cuda_* function behind them.

static void mem_zero(void *p, size_t bytes) { cuda_memset(p, 0, bytes); }

// The ops.h AdamW has no bf16 copy (cuda_adamw_step's p_bf16): the graph reads fp32 parameters.
static void adamw_step(float *p, const float *g, float *m, float *v, const uint8_t *decay, size_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay, int64_t t) {
    READY();
    cuda_adamw_step(p, g, m, v, decay, n, lr, beta1, beta2, eps, weight_decay, t, NULL);
}

// ---------------------------------------------------------------------------------------------
// The op table. Filled by name (C++17 has no designated initialisers), at static-initialisation
// time, before main().

static Ops make_ops_cuda(void) {
    Ops o;
    memset(&o, 0, sizeof(o));
    o.name = "cuda";
    o.linear_fwd = linear_fwd;
    o.linear_bwd = linear_bwd;
    o.layernorm_fwd = layernorm_fwd;
    o.layernorm_bwd = layernorm_bwd;
    o.gelu_fwd = gelu_fwd;
    o.gelu_bwd = gelu_bwd;
    o.add_fwd = add_fwd;
    o.add_bcast_fwd = add_bcast_fwd;
    o.sum_rows_acc = sum_rows_acc;
    o.acc = acc;
    o.axpy = axpy;
    o.dropout_fwd = dropout_fwd;
    o.dropout_bwd = dropout_bwd;
    o.attention_fwd = attention_fwd;
    o.attention_bwd = attention_bwd;
    o.xent_fwd = xent_fwd;
    o.xent_bwd = xent_bwd;
    o.l2norm_fwd = l2norm_fwd;
    o.l2norm_bwd = l2norm_bwd;
    o.div_scalar_fwd = div_scalar_fwd;
    o.div_scalar_bwd = div_scalar_bwd;
    o.mse_rows_fwd = mse_rows_fwd;
    o.mse_rows_bwd = mse_rows_bwd;
    o.l1_fwd = l1_fwd;
    o.l1_bwd = l1_bwd;
    o.gather_rows_fwd = gather_rows_fwd;
    o.gather_rows_bwd = gather_rows_bwd;
    o.softmax_rows = softmax_rows;
    o.relu_fwd = relu_fwd;
    o.dropout_mask = cuda_dropout_mask;
    o.host_memory = 0;
    o.mem_alloc = cuda_malloc;
    o.mem_free = cuda_free;
    o.mem_zero = mem_zero;
    o.copy_h2d = cuda_memcpy_h2d_sync;  // the contract: src may be reused on return
    o.copy_d2h = cuda_memcpy_d2h;
    o.copy_d2d = cuda_memcpy_d2d;
    o.copy_d2h_2d = cuda_memcpy_d2h_2d;
    o.synchronize = cuda_synchronize;
    o.adamw_step = adamw_step;
    o.ema = cuda_ema_update;
    o.all_finite = cuda_all_finite;
    o.clamp_scalar = cuda_clamp_scalar;
    return o;
}

const Ops ops_cuda = make_ops_cuda();  // C linkage from the declaration in ops_cuda.h

// ---------------------------------------------------------------------------------------------
// Backend lifetime and device memory (ops_cuda.h).

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the error so later calls start clean
        return 0;
    }
    return n;
}

extern "C" int cuda_backend_init(int device, int bf16) {
    if (be.ready) {
        if (device != be.device)
            fprintf(stderr, "vlmae: ops_cuda: already initialised on device %d (not %d)\n", be.device,
                    device);
        be.bf16 = bf16 ? 1 : 0;
        return 0;
    }
    int n = cuda_device_count();
    if (device < 0 || device >= n) {
        fprintf(stderr, "vlmae: ops_cuda: no CUDA device %d (%d found)\n", device, n);
        return -1;
    }
    cudaCheck(cudaSetDevice(device));
    cudaCheck(cudaStreamCreate(&be.stream));
    cublasCheck(cublasCreate(&be.blas));
    cublasCheck(cublasSetStream(be.blas, be.stream));
    cublasCheck(cublasSetPointerMode(be.blas, CUBLAS_POINTER_MODE_HOST));
    cudaCheck(cudaMalloc((void **)&be.dsc, sizeof(DevScalars)));
    cudaCheck(cudaMemset(be.dsc, 0, sizeof(DevScalars)));
    cudaCheck(cudaMallocHost((void **)&be.hsc, sizeof(DevScalars)));
    memset(be.hsc, 0, sizeof(DevScalars));
    int max_pitch = 0;
    cudaCheck(cudaDeviceGetAttribute(&max_pitch, cudaDevAttrMaxPitch, device));
    be.max_pitch = max_pitch > 0 ? (size_t)max_pitch : 0;
    be.device = device;
    be.bf16 = bf16 ? 1 : 0;
    const char *det = getenv("VLMAE_CUDA_DETERMINISTIC");
    be.deterministic = det && *det && strcmp(det, "0") != 0;
    be.ready = 1;
    workspace((size_t)16 << 20);
    return 0;
}

extern "C" void cuda_backend_shutdown(void) {
    if (!be.ready) return;
    cudaCheck(cudaStreamSynchronize(be.stream));
    if (be.ws) cudaCheck(cudaFree(be.ws));
    cudaCheck(cudaFree(be.dsc));
    cudaCheck(cudaFreeHost(be.hsc));
    cublasCheck(cublasDestroy(be.blas));
    cudaCheck(cudaStreamDestroy(be.stream));
    memset(&be, 0, sizeof(be));
}

extern "C" int cuda_backend_bf16(void) { return be.bf16; }
extern "C" void cuda_set_bf16(int bf16) { be.bf16 = bf16 ? 1 : 0; }
extern "C" void cuda_set_deterministic(int on) { be.deterministic = on ? 1 : 0; }
extern "C" void *cuda_backend_stream(void) { return (void *)be.stream; }

extern "C" void cuda_reserve_workspace(size_t bytes) {
    READY();
    workspace(bytes);
}

extern "C" void cuda_device_info(char *name, size_t name_len, double *peak_bf16, double *peak_fp32) {
    cudaDeviceProp prop;
    int dev = be.ready ? be.device : 0;
    cudaCheck(cudaGetDeviceProperties(&prop, dev));
    if (name && name_len) snprintf(name, name_len, "%s", prop.name);
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev) != cudaSuccess || khz <= 0) {
        (void)cudaGetLastError();
        khz = 1500000;
    }
    // Dense FLOPs per clock per SM: Hopper 4096 bf16 (tensor cores) / 256 fp32; Ampere and
    // Ada 2048 / 256 (A100: 128 fp32 lanes -> 256 would overstate it; close enough for MFU).
    double bf16_clk = prop.major >= 9 ? 4096.0 : prop.major == 8 ? 2048.0 : 1024.0;
    double fp32_clk = prop.major == 8 && prop.minor == 0 ? 128.0 : 256.0;
    double hz = khz * 1e3, sms = prop.multiProcessorCount;
    if (peak_bf16) *peak_bf16 = sms * hz * bf16_clk;
    if (peak_fp32) *peak_fp32 = sms * hz * fp32_clk;
}

extern "C" size_t cuda_memory_used(void) {
    size_t free_b = 0, total_b = 0;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    return total_b - free_b;
}

extern "C" void *cuda_malloc(size_t bytes) {
    READY();  // before init cudaMalloc would silently pick device 0, whatever the rank's device
    // 0 bytes: NULL, which every member accepts for a 0-byte region (copies, zero and free
    // return before touching it).
    if (!bytes) return NULL;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
        // Out of memory is the usual cause (a batch too large for the card): say how much.
        size_t fr = 0, tot = 0;
        if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) fr = tot = 0;
        fprintf(stderr, "vlmae: %s:%d: cudaMalloc of %zu bytes failed: %s (%s); device %d has %zu "
                "of %zu MiB free\n", __FILE__, __LINE__, bytes, cudaGetErrorName(err),
                cudaGetErrorString(err), be.device, fr >> 20, tot >> 20);
        exit(1);
    }
    return p;
}

extern "C" void cuda_free(void *p) {
    if (p) cudaCheck(cudaFree(p));
}

extern "C" void *cuda_malloc_host(size_t bytes) {
    if (!bytes) return NULL;
    void *p = NULL;
    cudaCheck(cudaMallocHost(&p, bytes));
    return p;
}

extern "C" void cuda_free_host(void *p) {
    if (p) cudaCheck(cudaFreeHost(p));
}

extern "C" void cuda_memset(void *dst, int value, size_t bytes) {
    READY();
    if (bytes) cudaCheck(cudaMemsetAsync(dst, value, bytes, be.stream));
}

extern "C" void cuda_memcpy_h2d(void *dst, const void *src, size_t bytes) {
    READY();
    if (bytes) cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, be.stream));
}

extern "C" void cuda_memcpy_h2d_sync(void *dst, const void *src, size_t bytes) {
    READY();
    if (!bytes) return;
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, be.stream));
    cudaCheck(cudaStreamSynchronize(be.stream));
}

extern "C" void cuda_memcpy_d2h(void *dst, const void *src, size_t bytes) {
    READY();
    if (!bytes) return;
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, be.stream));
    cudaCheck(cudaStreamSynchronize(be.stream));
}

extern "C" void cuda_memcpy_d2d(void *dst, const void *src, size_t bytes) {
    READY();
    if (bytes) cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, be.stream));
}

extern "C" void cuda_memcpy_d2h_2d(void *dst, size_t dpitch, const void *src, size_t spitch,
                                   size_t width, size_t rows) {
    READY();
    if (!width || !rows) return;
    if (rows == 1 || (spitch == width && dpitch == width)) {
        // one row, or rows back to back on both sides: a plain copy (no pitch limits apply)
        cuda_memcpy_d2h(dst, src, width * rows);
        return;
    }
    if (width > spitch || width > dpitch) {
        fprintf(stderr, "vlmae: ops_cuda: copy_d2h_2d: rows of %zu bytes are wider than the "
                "source pitch %zu or the destination pitch %zu\n", width, spitch, dpitch);
        exit(1);
    }
    if (spitch <= be.max_pitch && dpitch <= be.max_pitch) {
        cudaCheck(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToHost,
                                    be.stream));
    } else {  // a pitch beyond cudaMemcpy2D's limit (cudaDevAttrMaxPitch, ~2 GiB): row by row
        for (size_t r = 0; r < rows; r++)
            cudaCheck(cudaMemcpyAsync((char *)dst + r * dpitch, (const char *)src + r * spitch, width,
                                      cudaMemcpyDeviceToHost, be.stream));
    }
    cudaCheck(cudaStreamSynchronize(be.stream));  // dst holds the data on return
}

extern "C" void cuda_synchronize(void) {
    READY();
    fetch_scalars();  // waits for the stream and checks the device-side error flag
}
