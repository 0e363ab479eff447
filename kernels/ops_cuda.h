// ops_cuda.h: the CUDA backend of the op interface (ops.h) and what a device-resident step needs
// around it: device memory, copies, the optimizer and momentum kernels (kernels/optim_cuda.cu).
// Callable from C. Only built when configure found CUDA (VLMAE_HAVE_CUDA).
//
// Every pointer given to ops_cuda's members is a DEVICE pointer (float, int32 and uint8 arrays
// alike, masks and targets included), except where a comment says host (the host side of the
// copy_* members; ops_cuda.host_memory is 0). All work goes to one CUDA stream, in order,
// asynchronously; the members that return a host value (xent_fwd, mse_rows_fwd, l1_fwd,
// all_finite) or fill or read host memory (copy_h2d, copy_d2h, copy_d2h_2d) wait for the stream,
// as does synchronize. Semantics are exactly ops_cpu's (src/engine/ops_cpu.c): fully-masked attention
// rows give zeros, probs are saved before dropout, backward ops accumulate and skip NULL
// gradients, dropout_mask draws the same bits. The members are the cuda_* functions below where
// one exists (mem_alloc = cuda_malloc, copy_h2d = cuda_memcpy_h2d_sync, ema = cuda_ema_update,
// ...; adamw_step = cuda_adamw_step without the bf16 copy).
//
// Precision: tensors stay fp32 in memory. In bf16 mode every matrix product (linear layers and
// attention) runs on the bf16 tensor cores with fp32 accumulation (cuBLAS compute type
// CUBLAS_COMPUTE_32F_FAST_16BF: inputs rounded to bf16 inside cuBLAS); in fp32 mode they are
// plain fp32 (CUBLAS_COMPUTE_32F, no TF32). Everything else (LayerNorm, softmax, losses,
// reductions) is fp32 in both modes.
//
// Determinism: every reduction has a fixed order (no floating-point atomics), so two runs give
// the same bits -- except gather_rows_bwd, which scatter-adds with atomicAdd unless
// deterministic mode is on (cuda_set_deterministic(1) or VLMAE_CUDA_DETERMINISTIC=1 in the
// environment at init), where it uses a slower column-owner kernel.
//
// Scratch: the attention ops and the reductions use a device workspace owned by the backend
// (the `scratch` argument of attention_bwd is not used). It grows on demand -- a cudaMalloc, so
// a synchronisation -- which only happens while the first (largest) step runs; call
// cuda_reserve_workspace() up front to avoid even that.
#ifndef VLMAE_OPS_CUDA_H
#define VLMAE_OPS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const Ops ops_cuda;

// ---------------------------------------------------------------------------------------------
// Backend lifetime.

// Number of CUDA devices; 0 when there is none or no usable driver (never fails).
int cuda_device_count(void);
// cudaSetDevice(device), then create the stream, the cuBLAS handle and the workspace. bf16: 1 for
// bf16 tensor-core GEMMs, 0 for fp32. Returns 0, or -1 (with a message on stderr) when there is no
// such device. Calling it again while initialised only changes the bf16 mode (same device).
int cuda_backend_init(int device, int bf16);
void cuda_backend_shutdown(void);
int cuda_backend_bf16(void);               // the current GEMM mode
void cuda_set_bf16(int bf16);              // switch the GEMM mode (backend initialised)
void cuda_set_deterministic(int on);       // see "Determinism" above
// The backend's stream (a cudaStream_t), for code that enqueues its own work (NCCL).
void *cuda_backend_stream(void);
// Grow the device workspace to at least `bytes` now (see "Scratch" above).
void cuda_reserve_workspace(size_t bytes);
// Bytes the attention ops need for one call of these shapes (for cuda_reserve_workspace).
size_t cuda_attention_workspace_bytes(int B, int Tq, int Tk, int H, int dropout);
// Device name and peak dense bf16 / fp32 FLOP/s estimate of the current device (for MFU lines).
void cuda_device_info(char *name, size_t name_len, double *peak_bf16, double *peak_fp32);

// ---------------------------------------------------------------------------------------------
// Device memory for a device-resident arena and parameter buffers. All copies and sets are
// ordered on the backend stream; *_sync variants (and cuda_synchronize) wait for it. Errors exit
// with file:line (cudaCheck).

// cudaMalloc (256-byte aligned); 0 bytes gives NULL; failure (out of memory) exits with the size
// asked for and the free memory.
// Device memory in use now (cudaMemGetInfo: total - free; includes the CUDA context and other
// processes on the device), for the benchmark's memory column.
size_t cuda_memory_used(void);
void *cuda_malloc(size_t bytes);
void cuda_free(void *p);           // NULL is fine
void *cuda_malloc_host(size_t bytes);  // pinned host memory (fast, truly asynchronous copies)
void cuda_free_host(void *p);
void cuda_memset(void *dst, int value, size_t bytes);                 // async
void cuda_memcpy_h2d(void *dst, const void *src, size_t bytes);       // async (src must stay valid
                                                                      // until the stream reaches
                                                                      // it: pinned or synchronised)
void cuda_memcpy_d2h(void *dst, const void *src, size_t bytes);       // waits (the result is needed)
void cuda_memcpy_d2d(void *dst, const void *src, size_t bytes);       // async
void cuda_memcpy_h2d_sync(void *dst, const void *src, size_t bytes);  // waits (src reusable at once)
// rows x width bytes from device src (row pitch spitch bytes) to host dst (row pitch dpitch), as
// cudaMemcpy2D; waits. width must not exceed either pitch (when rows > 1).
void cuda_memcpy_d2h_2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                        size_t rows);
void cuda_synchronize(void);  // waits for the stream and reports device-side errors

// ---------------------------------------------------------------------------------------------
// Optimizer and model-state kernels (kernels/optim_cuda.cu). Device pointers, async.

// One AdamW step over n values of the flat fp32 master buffer p, PyTorch semantics as in
// src/train/optim.c (p -= lr*wd*decay*p; m, v moments; bias correction for step t, the step count
// after this step, t >= 1). decay (n bytes) is the 0/1 per-value weight-decay factor or NULL for all 1.
// p_bf16 (n uint16 = bf16 bit patterns) or NULL: also writes the updated parameters rounded to
// bf16 (round to nearest even), for bf16 weight storage.
void cuda_adamw_step(float *p, const float *g, float *m, float *v, const uint8_t *decay, size_t n,
                     float lr, float beta1, float beta2, float eps, float weight_decay, int64_t t,
                     uint16_t *p_bf16);
// Momentum EMA over one flat buffer: pm = mu * pm + (1 - mu) * p (n values).
void cuda_ema_update(float *pm, const float *p, size_t n, float mu);
// The ITC feature queues (Q, E), device: rows [*queue_ptr, *queue_ptr + n) <- feats (n, E) of both
// queues, *queue_ptr (host) advances modulo Q (Q must be a multiple of n, as in model_enqueue).
void cuda_queue_enqueue(float *image_queue, float *text_queue, int *queue_ptr, int Q, int E,
                        const float *image_feats, const float *text_feats, int n);
// Clamp one device float into [lo, hi] (the learnable temperature), async.
void cuda_clamp_scalar(float *x, float lo, float hi);
// 1 when all n device values are finite, else 0. Waits for the stream.
int cuda_all_finite(const float *x, size_t n);
// y (n) *= s, async (e.g. the gradient average when summing collectives are used).
void cuda_scale(float *y, float s, size_t n);
// Dropout keep-mask drawn on the device (n bytes, 1 = keep with probability 1 - p), async:
// keep[i] = hash_uniform(seed, i) >= p (src/engine/hash_uniform.h: splitmix64 of seed and i, 24-bit
// resolution), so the mask depends only on (seed, i): reproducible, independent of launch
// shape, and bit-identical to ops_cpu.dropout_mask -- CPU/GPU parity runs may use dropout.
// Drawing masks on the host and copying them costs far more at base size (attention masks are
// B*H*T*T bytes per layer).
void cuda_dropout_mask(uint8_t *keep, size_t n, float p, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif
