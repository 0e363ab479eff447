// ops.h: the backend op interface. Model code never touches numbers directly; it calls these ops
// through the graph (graph.h), and a backend implements them: ops_cpu.c in fp32 with OpenBLAS and
// OpenMP, kernels/*.cu for CUDA. One model, written once; backends swap underneath.
//
// Conventions
// - All tensors are dense row-major float arrays owned by the caller; ops never allocate.
// - Backward functions ACCUMULATE (+=) into every gradient they are given, and skip any gradient
//   pointer that is NULL (an input that needs no gradient).
// - Shapes are in the comments: M rows, K in-features, N out-features, B batch, T tokens, C width.
#ifndef VLMAE_OPS_H
#define VLMAE_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct Ops {
    const char *name;

    // y (M,N) = x (M,K) @ w(N,K)^T + b (N); b may be NULL. PyTorch nn.Linear layout.
    void (*linear_fwd)(float *y, const float *x, const float *w, const float *b, int M, int K, int N);
    // dx (M,K) += dy @ w; dw (N,K) += dy^T @ x; db (N) += sum_rows dy. Any of dx, dw, db may be NULL.
    void (*linear_bwd)(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int M, int K, int N);

    // LayerNorm over the last dim C of x (M,C); saves mean (M) and rstd (M) for backward.
    void (*layernorm_fwd)(float *y, float *mean, float *rstd, const float *x, const float *g,
                          const float *b, int M, int C, float eps);
    void (*layernorm_bwd)(float *dx, float *dg, float *db, const float *dy, const float *x,
                          const float *g, const float *mean, const float *rstd, int M, int C);

    // Exact (erf) GELU, elementwise over n values.
    void (*gelu_fwd)(float *y, const float *x, size_t n);
    void (*gelu_bwd)(float *dx, const float *dy, const float *x, size_t n);

    // y = a + b elementwise (n); y = a (R, n) + b (n) broadcast over R rows.
    void (*add_fwd)(float *y, const float *a, const float *b, size_t n);
    void (*add_bcast_fwd)(float *y, const float *a, const float *b, int R, size_t n);
    // db (n) += sum over rows of dy (R, n)
    void (*sum_rows_acc)(float *db, const float *dy, int R, size_t n);
    // y += a (n); y += s * a
    void (*acc)(float *y, const float *a, size_t n);
    void (*axpy)(float *y, float s, const float *a, size_t n);

    // Inverted dropout with keep-mask (n, one byte per value, 1 = keep) drawn by the caller.
    void (*dropout_fwd)(float *y, const float *x, const uint8_t *keep, float p, size_t n);
    void (*dropout_bwd)(float *dx, const float *dy, const uint8_t *keep, float p, size_t n);

    // Multi-head scaled dot-product attention.
    //   q: rows (B*Tq) of width C at q[(b*Tq+i)*ldq + c]; k, v: rows (B*Tk) with ldk, ldv.
    //   mask: additive key mask (B,Tk) or NULL; causal: also hide keys j > i.
    //   out (B,Tq,C) contiguous; probs (B,H,Tq,Tk) saved for backward (post-dropout probs are not
    //   stored: attn_keep (B,H,Tq,Tk) or NULL holds the dropout keep-mask with rate p).
    void (*attention_fwd)(float *out, float *probs, const float *q, int ldq, const float *k, int ldk,
                          const float *v, int ldv, const float *mask, const uint8_t *attn_keep,
                          float p, int B, int Tq, int Tk, int C, int H, int causal);
    // dq, dk, dv accumulate with the same strides as q, k, v. scratch: at least Tq*Tk*2 floats.
    void (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                          const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                          const uint8_t *attn_keep, float p, int B, int Tq, int Tk, int C, int H,
                          float *scratch);

    // Row softmax cross-entropy over logits (M,V) against a mixed target:
    //   target_r = (1-alpha) * onehot(labels[r]) + alpha * soft[r]   (soft (M,V) or NULL => alpha 0;
    //   labels NULL => alpha 1). loss = mean over rows of -sum target * log_softmax(logits).
    //   probs (M,V) saved. Returns the loss.
    float (*xent_fwd)(float *probs, const float *logits, const int32_t *labels, const float *soft,
                      float alpha, int M, int V);
    // dlogits += dloss * (probs - target) / M
    void (*xent_bwd)(float *dlogits, float dloss, const float *probs, const int32_t *labels,
                     const float *soft, float alpha, int M, int V);

    // Row L2-normalise x (M,C): y = x / max(||x||, 1e-12); norms (M) saved.
    void (*l2norm_fwd)(float *y, float *norms, const float *x, int M, int C);
    void (*l2norm_bwd)(float *dx, const float *dy, const float *y, const float *norms, int M, int C);

    // y = x / s[0] (n); ds[0] += -sum(dy * x) / s^2.
    void (*div_scalar_fwd)(float *y, const float *x, const float *s, size_t n);
    void (*div_scalar_bwd)(float *dx, float *ds, const float *dy, const float *x, const float *s,
                           size_t n);

    // Weighted patch MSE: loss = sum_r w[r] * mean_p (pred - target)^2 / sum_r w[r]
    // over pred, target (R,P), w (R). Returns 0 when sum w == 0.
    float (*mse_rows_fwd)(const float *pred, const float *target, const float *w, int R, int P);
    void (*mse_rows_bwd)(float *dpred, float dloss, const float *pred, const float *target,
                         const float *w, int R, int P);

    // loss = mean |a - b| over n values; b is a constant target.
    float (*l1_fwd)(const float *a, const float *b, size_t n);
    void (*l1_bwd)(float *da, float dloss, const float *a, const float *b, size_t n);

    // y (n, D) = x[idx[i]] rows of x (R, D); backward scatter-adds dy into dx rows.
    void (*gather_rows_fwd)(float *y, const float *x, const int32_t *idx, int n, int D);
    void (*gather_rows_bwd)(float *dx, const float *dy, const int32_t *idx, int n, int D);

    // Softmax over the last dim of x (M,V) into y, no gradient (targets, sampling weights).
    void (*softmax_rows)(float *y, const float *x, int M, int V);

    // y = max(x, 0) and keep = x > 0 (n); the backward is dropout_bwd with p = 0.
    void (*relu_fwd)(float *y, uint8_t *keep, const float *x, size_t n);
    // Dropout keep-mask: keep[i] = hash_uniform(seed, i) >= p (src/engine/hash_uniform.h), so every
    // backend draws the same mask for the same seed.
    void (*dropout_mask)(uint8_t *keep, size_t n, float p, uint64_t seed);

    // ---- Memory. "Device" pointers are the backend's memory: every pointer an op above takes is
    // one. host_memory = 1 means they are ordinary host pointers (ops_cpu), so the copies below
    // are memcpy and code may read results directly; otherwise (ops_cuda) host code must copy.
    int host_memory;
    void *(*mem_alloc)(size_t bytes);  // 64-byte aligned or better; exits with a message on failure
    void (*mem_free)(void *p);         // NULL is fine
    void (*mem_zero)(void *p, size_t bytes);
    void (*copy_h2d)(void *dst, const void *src, size_t bytes);  // src may be reused on return
    void (*copy_d2h)(void *dst, const void *src, size_t bytes);  // dst holds the data on return
    void (*copy_d2d)(void *dst, const void *src, size_t bytes);
    // rows x width bytes: device src (row pitch spitch bytes) to host dst (pitch dpitch), waits.
    void (*copy_d2h_2d)(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                        size_t rows);
    void (*synchronize)(void);  // all queued work done (no-op on the CPU)

    // ---- Training state over flat device buffers (trainer.c).
    // One AdamW step over n values (PyTorch semantics, src/train/optim.h): p -= lr*wd*decay*p, then
    // Adam with bias correction for step t (>= 1). decay (n) holds 0/1, one byte per value.
    void (*adamw_step)(float *p, const float *g, float *m, float *v, const uint8_t *decay, size_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay, int64_t t);
    void (*ema)(float *pm, const float *p, size_t n, float mu);  // pm = mu*pm + (1-mu)*p
    int (*all_finite)(const float *x, size_t n);                 // 1 when every value is finite
    void (*clamp_scalar)(float *x, float lo, float hi);          // x[0] into [lo, hi]
} Ops;

extern const Ops ops_cpu;

#endif
