// cuda_common.h: error-checking macros and small device helpers shared by the CUDA sources of
// vlmae (kernels/*.cu). CUDA C++ only: the C side talks to the backend through ops_cuda.h.
//
// Every check names the file and line of the call site (as common.h does for the C side), so a
// failure in a multi-day cluster run says exactly where it came from, then exits(1).
#ifndef VLMAE_CUDA_COMMON_H
#define VLMAE_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

// cudaCheck(call): any CUDA runtime call (and cudaGetLastError() after a launch).
#define cudaCheck(call)                                                                         \
    do {                                                                                        \
        cudaError_t err_ = (call);                                                              \
        if (err_ != cudaSuccess) {                                                              \
            fprintf(stderr, "vlmae: %s:%d: CUDA error %d (%s): %s\n", __FILE__, __LINE__,      \
                    (int)err_, cudaGetErrorName(err_), cudaGetErrorString(err_));               \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

// cublasCheck(call): any cuBLAS call.
#define cublasCheck(call)                                                                       \
    do {                                                                                        \
        cublasStatus_t st_ = (call);                                                            \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                     \
            fprintf(stderr, "vlmae: %s:%d: cuBLAS error %d (%s)\n", __FILE__, __LINE__,         \
                    (int)st_, cublasGetStatusString(st_));                                      \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

// ncclCheck(call): any NCCL call (the file using it includes <nccl.h>).
#define ncclCheck(call)                                                                         \
    do {                                                                                        \
        ncclResult_t nr_ = (call);                                                              \
        if (nr_ != ncclSuccess) {                                                               \
            fprintf(stderr, "vlmae: %s:%d: NCCL error %d (%s)\n", __FILE__, __LINE__, (int)nr_, \
                    ncclGetErrorString(nr_));                                                   \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

// After a kernel launch: catches bad launch configurations at once (asynchronous faults show
// up at the next synchronising call).
#define cudaLaunchCheck() cudaCheck(cudaGetLastError())

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

// Blocks for a grid-stride loop over n items with `threads` threads per block: enough to fill
// the GPU, never more than needed. The count depends on n only (never on the device), so the
// same launch shape, and the same reduction order, is used on every run.
static inline unsigned grid_for(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535u * 16u) b = 65535u * 16u;
    return (unsigned)b;
}

#ifdef __CUDACC__

#define WARP 32
#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Block-wide reductions for blockDim.x a multiple of 32 (at most 1024). Every thread gets the
// result. `sh` is shared scratch of at least 32 values; the function syncs before returning and
// before reusing sh, so it may be called several times in a row with the same scratch.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T *sh) {
    const int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP, nw = blockDim.x / WARP;
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    __syncthreads();  // sh may still be read by a previous call
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    T r = (T)0;
    for (int w = 0; w < nw; w++) r += sh[w];  // same fixed order in every thread
    return r;
}

__device__ __forceinline__ float block_max(float v, float *sh) {
    const int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP, nw = blockDim.x / WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float r = -INFINITY;
    for (int w = 0; w < nw; w++) r = fmaxf(r, sh[w]);
    return r;
}

#endif  // __CUDACC__

#endif
