// ops_cuda_internal.h: what the files of the CUDA backend (kernels/ops_cuda*.cu) share: the backend
// state, the launch constants and macros, the workspace, and the op functions that the table in
// ops_cuda.cu points at. CUDA C++, internal to kernels/ (the C side uses ops_cuda.h).
//
// The backend, by file:
//   ops_cuda.cu              the op table (ops_cuda) and how each op maps to the GPU
//   ops_cuda_backend.cu      the backend state, its lifetime (device, stream, cuBLAS handle,
//                            workspace, device scalars) and device memory (alloc, free, copies)
//   ops_cuda_layers.cu       GEMMs (cuBLAS), column sums, linear, LayerNorm, attention
//   ops_cuda_elementwise.cu  elementwise kernels (gelu, add, acc, axpy, dropout, relu), row
//                            softmax, row L2 normalisation
//   ops_cuda_loss.cu         full reductions and the losses: xent, div_scalar, mse_rows, l1
//   ops_cuda_gather.cu       gather_rows and its scatter-add adjoint
#ifndef VLMAE_OPS_CUDA_INTERNAL_H
#define VLMAE_OPS_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_common.h"
#include "ops_cuda.h"

// ---------------------------------------------------------------------------------------------
// Backend state (defined in ops_cuda_backend.cu).

// Device-side scalars: reduction results and the error flag, copied to pinned host memory in one
// transfer by the host-returning ops.
struct DevScalars {
    double d[4];
    int err;  // 1: xent saw a label outside [0, V)
    int pad;
};

// The state of the backend: one per process, zero until cuda_backend_init().
struct CudaBackend {
    int ready, device, bf16, deterministic;
    size_t max_pitch;  // cudaDevAttrMaxPitch: the largest pitch cudaMemcpy2D accepts
    cudaStream_t stream;
    cublasHandle_t blas;
    char *ws;
    size_t ws_cap;
    DevScalars *dsc;   // device
    DevScalars *hsc;   // pinned host mirror
};
// In a namespace, so that the library's symbol is not a bare `be` (which a C file could define).
namespace ops_cuda_internal {
extern CudaBackend be;
}
using ops_cuda_internal::be;

#define THREADS 256
#define ROWS_PER_BLOCK (THREADS / WARP)  // warp-per-row kernels
#define RED_MAX_BLOCKS 1024              // first-stage blocks of a reduction
#define L2_EPS 1e-12f

#define ROW_THREADS 256  // block-per-row kernels (row softmax, xent)

// Exits with a message naming `what` (the READY() check of every op).
void not_ready(const char *what);
#define READY()                               \
    do {                                      \
        if (!be.ready) not_ready(__func__);   \
    } while (0)

// The backend workspace, at least `bytes` (ops_cuda_backend.cu).
char *workspace(size_t bytes);

// Copy the device scalars to the host, wait, and check the error flag (ops_cuda_backend.cu).
const DevScalars *fetch_scalars(void);

// Bytes rounded up to a multiple of 256 (workspace sub-blocks).
static inline size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// The inverted-dropout scale 1 / (1 - p) (0 for p = 1).
static inline float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

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

// Inverted dropout, y = keep ? x * s : 0 (ops_cuda_elementwise.cu); attention uses it too.
__global__ void dropout_fwd_k(float *y, const float *x, const uint8_t *keep, float s, size_t n);

// ---------------------------------------------------------------------------------------------
// The op functions of the table (ops_cuda.cu), by file; semantics as ops.h.

// ops_cuda_layers.cu
void linear_fwd(float *y, const float *x, const float *w, const float *b, int M, int K,
                int N);
void sum_rows_acc(float *db, const float *dy, int R, size_t n);
void linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                const float *w, int M, int K, int N);
void layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g,
                   const float *b, int M, int C, float eps);
void layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x,
                   const float *g, const float *mean, const float *rstd, int M, int C);
void attention_fwd(float *out, float *probs, const float *q, int ldq, const float *k,
                   int ldk, const float *v, int ldv, const float *mask,
                   const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C, int H,
                   int causal);
void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                   const float *q, int ldq, const float *k, int ldk, const float *v,
                   int ldv, const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C,
                   int H, float *scratch);

// ops_cuda_elementwise.cu
void gelu_fwd(float *y, const float *x, size_t n);
void gelu_bwd(float *dx, const float *dy, const float *x, size_t n);
void add_fwd(float *y, const float *a, const float *b, size_t n);
void add_bcast_fwd(float *y, const float *a, const float *b, int R, size_t n);
void acc(float *y, const float *a, size_t n);
void axpy(float *y, float s, const float *a, size_t n);
void dropout_fwd(float *y, const float *x, const uint8_t *keep, float p, size_t n);
void dropout_bwd(float *dx, const float *dy, const uint8_t *keep, float p, size_t n);
void relu_fwd(float *y, uint8_t *keep, const float *x, size_t n);
void softmax_rows(float *y, const float *x, int M, int V);
void l2norm_fwd(float *y, float *norms, const float *x, int M, int C);
void l2norm_bwd(float *dx, const float *dy, const float *y, const float *norms, int M,
                int C);

// ops_cuda_loss.cu
float xent_fwd(float *probs, const float *logits, const int32_t *labels, const float *soft,
               float alpha, int M, int V);
void xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *labels,
              const float *soft, float alpha, int M, int V);
void div_scalar_fwd(float *y, const float *x, const float *s, size_t n);
void div_scalar_bwd(float *dx, float *ds, const float *dy, const float *x, const float *s,
                    size_t n);
float mse_rows_fwd(const float *pred, const float *target, const float *w, int R, int P);
void mse_rows_bwd(float *dpred, float dloss, const float *pred, const float *target,
                  const float *w, int R, int P);
float l1_fwd(const float *a, const float *b, size_t n);
void l1_bwd(float *da, float dloss, const float *a, const float *b, size_t n);

// ops_cuda_gather.cu
void gather_rows_fwd(float *y, const float *x, const int32_t *idx, int n, int D);
void gather_rows_bwd(float *dx, const float *dy, const int32_t *idx, int n, int D);

#endif
