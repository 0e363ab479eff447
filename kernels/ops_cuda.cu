// ops_cuda.cu: the CUDA backend of the op interface (ops.h): the op table, ops_cuda; see
// ops_cuda.h for the contract and ops_cuda_internal.h for the files that implement it.
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
//                    (ops_cuda_backend.cu); copies into or out of host memory wait for the
//                    stream (the host side may be reused or read on return), the others do not.
//   training state   adamw_step, ema, all_finite, clamp_scalar, dropout_mask: the kernels of
//                    kernels/optim_cuda.cu (all_finite waits for its answer).
// GEMM precision: fp32 tensors in both modes; CUBLAS_COMPUTE_32F (fp32) or
// CUBLAS_COMPUTE_32F_FAST_16BF (bf16 tensor cores, fp32 accumulate).
#include <stdint.h>
#include <string.h>

#include "ops_cuda_internal.h"

// The member list of ops.h as this file knows it: a new member must be implemented here too.
// 43 pointers (name and 42 functions) and the int host_memory, which the pointer after it pads
// to a pointer's size.
static_assert(sizeof(Ops) == 44 * sizeof(void *), "ops.h changed: implement the new op in ops_cuda.cu");

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
