// ops_cuda_gather.cu: the CUDA backend's row gather (gather_rows_fwd) and its scatter-add adjoint
// (gather_rows_bwd): atomicAdd by default, or, in deterministic mode (cuda_set_deterministic,
// VLMAE_CUDA_DETERMINISTIC), one thread per column adding the rows in index order.
#include <cuda_runtime.h>
#include <stdint.h>

#include "ops_cuda_internal.h"

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

void gather_rows_fwd(float *y, const float *x, const int32_t *idx, int n, int D) {
    READY();
    if (n <= 0 || D <= 0) return;
    size_t total = (size_t)n * D;
    LAUNCH_1D(gather_rows_fwd_k, total, y, x, idx, D, total);
}

void gather_rows_bwd(float *dx, const float *dy, const int32_t *idx, int n, int D) {
    READY();
    if (n <= 0 || D <= 0 || !dx) return;
    if (be.deterministic) {
        LAUNCH_1D(gather_rows_bwd_cols_k, (size_t)D, dx, dy, idx, n, D);
    } else {
        size_t total = (size_t)n * D;
        LAUNCH_1D(gather_rows_bwd_atomic_k, total, dx, dy, idx, D, total);
    }
}
