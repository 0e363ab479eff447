// ops_cuda_layers.cu: the CUDA ops of the transformer layers: the cuBLAS GEMMs, the two-stage column
// sums (bias and LayerNorm parameter gradients), linear, LayerNorm and attention (ops_cuda.cu
// says how each maps to the GPU).
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

#include "ops_cuda_internal.h"

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
// Linear.

static __global__ void bias_fill_k(float *y, const float *b, size_t total, int N) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = b[i % N];
}

void linear_fwd(float *y, const float *x, const float *w, const float *b, int M, int K,
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

void sum_rows_acc(float *db, const float *dy, int R, size_t n) {
    READY();
    colsum_acc(db, R, n, ColPlain{dy, n});
}

void linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
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

void layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g,
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

void layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x,
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

void attention_fwd(float *out, float *probs, const float *q, int ldq, const float *k,
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

void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs,
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
