// optim_cuda.cu: the optimizer and model-state kernels of the CUDA backend (declared in
// ops_cuda.h): AdamW over one flat fp32 master buffer (optionally writing a bf16 copy), the
// momentum EMA over one flat buffer, the ITC queue enqueue, small helpers (clamp, finite check,
// scale) and dropout keep-masks. All run on the backend's stream (ops_cuda_backend.cu),
// asynchronously unless noted.
//
// The arithmetic follows the CPU code statement by statement (adamw_step and ema in
// src/engine/ops_cpu.c) so the two agree to rounding; nvcc may contract a*b+c into one FMA, so they
// agree to a few ulps, not bit for bit. The dropout masks do agree bit for bit (integer hash).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_common.h"
#include "engine/hash_uniform.h"
#include "ops_cuda.h"

#define THREADS 256

// The backend's stream. NULL only before cuda_backend_init() (a created stream is never NULL):
// stop there rather than run on the legacy default stream of whatever device is current.
static cudaStream_t stream(void) {
    cudaStream_t s = (cudaStream_t)cuda_backend_stream();
    if (!s) {
        fprintf(stderr, "vlmae: optim_cuda: called before cuda_backend_init()\n");
        exit(1);
    }
    return s;
}

#define FOR_EACH(i, n)                                                          \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

static __global__ void adamw_k(float *p, const float *g, float *m, float *v, const uint8_t *decay, size_t n,
                        float lr, float b1, float b2, float eps, float wd, float c1, float c2,
                        __nv_bfloat16 *p_bf16) {
    FOR_EACH(i, n) {
        float gi = g[i], pi = p[i];
        float dk = decay ? (float)decay[i] : 1.0f;
        pi -= lr * wd * dk * pi;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        pi -= lr * (mi / c1) / (sqrtf(vi / c2) + eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        if (p_bf16) p_bf16[i] = __float2bfloat16_rn(pi);
    }
}

extern "C" void cuda_adamw_step(float *p, const float *g, float *m, float *v, const uint8_t *decay,
                                size_t n, float lr, float beta1, float beta2, float eps,
                                float weight_decay, int64_t t, uint16_t *p_bf16) {
    if (!n) return;
    if (t < 1) {
        fprintf(stderr, "vlmae: cuda_adamw_step: step count %lld < 1\n", (long long)t);
        exit(1);
    }
    // bias corrections computed on the host exactly as src/train/optim.c does
    float c1 = 1.0f - powf(beta1, (float)t), c2 = 1.0f - powf(beta2, (float)t);
    adamw_k<<<grid_for(n, THREADS), THREADS, 0, stream()>>>(p, g, m, v, decay, n, lr, beta1, beta2,
                                                             eps, weight_decay, c1, c2,
                                                             (__nv_bfloat16 *)p_bf16);
    cudaLaunchCheck();
}

static __global__ void ema_k(float *pm, const float *p, size_t n, float mu) {
    FOR_EACH(i, n) pm[i] = mu * pm[i] + (1.0f - mu) * p[i];
}

extern "C" void cuda_ema_update(float *pm, const float *p, size_t n, float mu) {
    if (!n) return;
    ema_k<<<grid_for(n, THREADS), THREADS, 0, stream()>>>(pm, p, n, mu);
    cudaLaunchCheck();
}

extern "C" void cuda_queue_enqueue(float *image_queue, float *text_queue, int *queue_ptr, int Q,
                                   int E, const float *image_feats, const float *text_feats, int n) {
    if (n <= 0 || Q % n != 0 || *queue_ptr < 0 || *queue_ptr + n > Q) {
        fprintf(stderr, "vlmae: cuda_queue_enqueue: queue_size %d, pointer %d, %d new rows\n", Q,
                *queue_ptr, n);
        exit(1);
    }
    size_t off = (size_t)*queue_ptr * E, bytes = (size_t)n * E * sizeof(float);
    cudaCheck(cudaMemcpyAsync(image_queue + off, image_feats, bytes, cudaMemcpyDeviceToDevice, stream()));
    cudaCheck(cudaMemcpyAsync(text_queue + off, text_feats, bytes, cudaMemcpyDeviceToDevice, stream()));
    *queue_ptr = (*queue_ptr + n) % Q;
}

static __global__ void clamp_k(float *x, float lo, float hi) {
    float t = *x;
    if (t < lo) t = lo;
    if (t > hi) t = hi;
    *x = t;
}

extern "C" void cuda_clamp_scalar(float *x, float lo, float hi) {
    clamp_k<<<1, 1, 0, stream()>>>(x, lo, hi);
    cudaLaunchCheck();
}

static __global__ void nonfinite_k(int *flag, const float *x, size_t n) {
    FOR_EACH(i, n) if (!isfinite(x[i])) *flag = 1;  // benign race: every writer stores 1
}

extern "C" int cuda_all_finite(const float *x, size_t n) {
    static int *flag = NULL;  // one device int for the life of the process
    if (!n) return 1;
    if (!flag) flag = (int *)cuda_malloc(sizeof(int));
    int h = 0;
    cuda_memset(flag, 0, sizeof(int));
    nonfinite_k<<<grid_for(n, THREADS), THREADS, 0, stream()>>>(flag, x, n);
    cudaLaunchCheck();
    cuda_memcpy_d2h(&h, flag, sizeof(int));
    return !h;
}

static __global__ void scale_k(float *y, float s, size_t n) {
    FOR_EACH(i, n) y[i] *= s;
}

extern "C" void cuda_scale(float *y, float s, size_t n) {
    if (!n) return;
    scale_k<<<grid_for(n, THREADS), THREADS, 0, stream()>>>(y, s, n);
    cudaLaunchCheck();
}

// keep (n) = hash_uniform(seed, i) >= p: the very function ops_cpu uses (src/engine/hash_uniform.h),
// one independent draw per index, so the masks agree bit for bit whatever the launch shape (the
// draw is 24 bits, exact in fp32, and the comparison is exact on both sides).
static __global__ void dropout_mask_k(uint8_t *keep, size_t n, float p, uint64_t seed) {
    FOR_EACH(i, n) keep[i] = hash_uniform(seed, (uint64_t)i) >= p;
}

extern "C" void cuda_dropout_mask(uint8_t *keep, size_t n, float p, uint64_t seed) {
    if (!n) return;
    dropout_mask_k<<<grid_for(n, THREADS), THREADS, 0, stream()>>>(keep, n, p, seed);
    cudaLaunchCheck();
}
