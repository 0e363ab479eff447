// tasklib.h: what the classification-style downstream tasks (vqa.c, ve.c, nlvr2.c) share:
//
//   TlData    the shards of one split opened for their task tables (shard.h): labels, answers,
//             second images, ids by global text index (the loader's order: shard after shard as
//             the sorted glob lists them), and image decoding + transforms for the task's own
//             reads (the second NLVR2 image while training; every image in evaluation);
//   TlExtra   task parameters outside the Model (heads, the VQA answer decoder, NLVR2's doubled
//             fusion layers): their ParamSet, their AdamW, and their share of the training step.
//             ft_train (finetune.h) optimises the Model's parameters only, so the task runs the
//             same AdamW schedule on its own set from its after_step hook (the schedule is
//             rebuilt exactly as ft_train builds it) and saves them in the checkpoint's .extra
//             file (names, values, AdamW moments, step). For ALBEF's momentum distillation the
//             set can carry momentum copies (cls_head_m, text_decoder_m, ...): a second ParamSet
//             of the same layout without gradients, named "m." + the online name, EMA'd by the
//             task before each step and saved in the same .extra file;
//   layers    BERT post-LN sub-layers with masks on both sides and causal self-attention (the
//             answer decoder), embeddings, an MLP head with ReLU;
//   TlInfer   a gradient-free graph on a private arena (evaluation);
//   TlTask    what the three tasks hold alike (context, task parameters, training data and
//             graph), the first member of each task's state, and the FtHooks they share: the
//             task parameters' update after each step, their .extra file, freeing.
#ifndef VLMAE_TASKS_TASKLIB_H
#define VLMAE_TASKS_TASKLIB_H

#include <stddef.h>
#include <stdint.h>

#include "data/augment.h"
#include "data/shard.h"
#include "engine/graph.h"
#include "model/model.h"
#include "model/params.h"
#include "tasks/finetune.h"
#include "train/optim.h"

// ---- data -------------------------------------------------------------------------------------

typedef struct {
    int n_shards;
    Shard **shards;
    int64_t *text_base;   // first global text of each shard (n_shards + 1)
    int64_t n_texts;
} TlData;

// Opens the shards of patterns (globs expanded and sorted like the loader's). Returns 0 or -1.
int tl_data_open(TlData *d, const PathList *patterns, char *err, size_t errlen);
void tl_data_close(TlData *d);
// The shard holding global text t and the row in it.
const Shard *tl_data_text(const TlData *d, int64_t t, int64_t *row);
int32_t tl_data_label(const TlData *d, int64_t t);           // -1 = none
const char *tl_data_caption(const TlData *d, int64_t t);
const char *tl_data_answers(const TlData *d, int64_t t);     // "" = none
const char *tl_data_key(const TlData *d, int64_t t);         // "" = none
int tl_data_has_image2(const TlData *d, int64_t t);

// The fine-tuning training transform of ft_open_loader (RandomResizedCrop scale 0.5-1, flip,
// data.augment.* switches).
void tl_train_augment(const FtContext *cx, AugmentOptions *o);
// Image (which = 0) or second image (which = 1) of text t as normalised CHW floats (3*size*size):
// aug NULL = evaluation transform (plain bicubic resize); else aug with a random stream drawn
// from (seed, a, b). Returns 0, or -1 with err (unreadable / undecodable image).
int tl_data_image(const TlData *d, int64_t t, int which, int size, const AugmentOptions *aug,
                  uint64_t seed, uint64_t a, uint64_t b, float *out, char *err, size_t errlen);

// An evaluation batch filled by tl_data_eval_batch.
typedef struct {
    int cap, n, T, S, two;
    float *image, *image2;      // (cap, 3, S, S); image2 only when two
    int32_t *ids, *mask;        // (cap, T)
    int64_t *text;              // (cap) global text index
} TlBatch;
void tl_batch_alloc(TlBatch *b, int cap, int T, int S, int two);
void tl_batch_free(TlBatch *b);
// Texts [first, first + n) of d, eval transform, tokenized to b->T. Images are decoded in
// parallel (OpenMP). Returns 0, or -1 with err.
int tl_data_eval_batch(const TlData *d, const Tokenizer *tok, int64_t first, int n, TlBatch *b,
                       char *err, size_t errlen);
// This rank's contiguous slice [*lo, *hi) of n samples.
void tl_rank_slice(const Dist *dist, int64_t n, int64_t *lo, int64_t *hi);

// ---- task parameters ----------------------------------------------------------------------------

typedef struct {
    ParamSet ps;
    ParamSet mps;          // momentum copies of ps (same layout, "m." names, no gradients)
    int has_mo;            // mps is allocated (tl_extra_momentum)
    AdamW adam;
    LrSchedule sched;
    int64_t step;          // training steps begun (the harness's step counter)
    int64_t cur;           // the step in progress (tl_extra_begin_step)
    int ready;             // optimizer initialised
} TlExtra;

void tl_extra_init(TlExtra *x);  // params_init; then register with the helpers below
Linear tl_reg_linear(TlExtra *x, const char *prefix, const char *name, int out, int in);
Norm tl_reg_norm(TlExtra *x, const char *prefix, const char *name, int C);
// A BERT attention sub-layer; share_kv: reuse its key/value projections (NULL: own ones).
BertAttn tl_reg_attn(TlExtra *x, const char *prefix, int C, int Ckv, const BertAttn *share_kv);
void tl_reg_ffn(TlExtra *x, BertLayer *l, const char *prefix, int C, int F);
// Allocates values and gradients (values: N(0, 0.02) matrices, zero biases, unit LayerNorm).
void tl_extra_alloc(TlExtra *x, uint64_t seed);
void tl_extra_free(TlExtra *x);
// AdamW with train.* settings and the lr schedule of ft_train for n_train_texts training texts.
void tl_extra_optim(TlExtra *x, const FtContext *cx, int64_t n_train_texts);
// At the start of every training step (ft_train's step hook, skipped steps included): zero the
// gradients and take the step number.
void tl_extra_begin_step(TlExtra *x);
// 1 when every gradient is finite.
int tl_extra_grads_finite(const TlExtra *x);
// The training step's update of the task parameters (ft_train's after_step): average the
// gradients over ranks, AdamW at the schedule's lr of step x->cur.
void tl_extra_update(TlExtra *x, const Dist *d);
// Checkpoint .extra file: every parameter by name ("p:NAME"), AdamW moments and step; with
// momentum copies also "p:m.NAME".
int tl_extra_save(const TlExtra *x, const char *path, char *err, size_t errlen);
// Loads what the file has for this set. with_optim: also the AdamW state and step (resume).
// Missing parameters are an error unless allow_missing (then the count of missing online ones
// is returned in *missing). With momentum copies: a missing copy is an error unless
// allow_missing, when it becomes a copy of its online parameter if the file had that one (the
// teacher starts as the student it came with, ALBEF's copy_params) and stays as it was if not.
// A file with copies loads into a set without them (vlmae eval): they are ignored.
int tl_extra_load(TlExtra *x, const char *path, int with_optim, int allow_missing, int *missing,
                  char *err, size_t errlen);
// finetune --init CKPT: task parameters found in CKPT.extra (the checkpoint of an earlier
// fine-tuning of this task, or of a stage before it) replace the fresh ones (momentum copies as
// tl_extra_load with allow_missing); says so on rank 0.
// Returns how many were loaded (0 without an .extra file), or -1 after printing an error.
int tl_extra_from_init(TlExtra *x, const FtContext *cx, const char *task);
// Momentum copies (after tl_extra_alloc and the task's own initialisation of the values):
// allocates mps with the layout of ps and copies the values (ALBEF's copy_params).
void tl_extra_momentum(TlExtra *x);
// mps <- mu * mps + (1 - mu) * ps (ALBEF's _momentum_update; the task calls it at the start of
// its step, before the teacher's forward, as ft_train does for the Model's tower).
void tl_extra_ema(TlExtra *x, float mu);
// The momentum copy of online parameter t of x (a registered tensor; dies otherwise), and of
// modules built from them (shared tensors stay shared: NLVR2's key/value projections).
Tensor *tl_mo(const TlExtra *x, const Tensor *t);
Linear tl_mo_linear(const TlExtra *x, Linear l);
Norm tl_mo_norm(const TlExtra *x, Norm n);
BertLayer tl_mo_layer(const TlExtra *x, const BertLayer *l);  // attention, cross if any, FFN
void tl_copy(Tensor *dst, const Tensor *src);  // same number of values (dies otherwise)
void tl_copy_attn(BertAttn *dst, const BertAttn *src, int with_kv);
void tl_copy_ffn(BertLayer *dst, const BertLayer *src);

// ---- layers -------------------------------------------------------------------------------------

// Post-LN attention sub-layer: LN(x + dropout(o(attn(q(x), k(kv), v(kv))))); kv_mask: additive
// (B, Tk) or NULL; causal: also hide later keys (decoder self-attention).
Tensor *tl_attn(Graph *g, const ModelConfig *c, const BertAttn *a, Tensor *x, Tensor *kv,
                const float *kv_mask, int B, int Tq, int Tk, int causal);
Tensor *tl_ffn(Graph *g, const ModelConfig *c, const BertLayer *l, Tensor *x);
// BERT embeddings of ids (B, T): word + position + type 0, LayerNorm, dropout.
Tensor *tl_embed(Graph *g, const ModelConfig *c, Tensor *word, Tensor *position, Tensor *type,
                 const Norm *ln, const int32_t *ids, int B, int T);
// Rows i*stride (i < n) of x (width D).
Tensor *tl_rows(Graph *g, Tensor *x, int n, int stride, int D);
// fc2(ReLU(fc1(x))): ALBEF's classification head.
Tensor *tl_mlp_head(Graph *g, const Linear *fc1, const Linear *fc2, Tensor *x);
// Additive key masks (0 / -10000) of a 0/1 mask.
void tl_additive_mask(const int32_t *mask, size_t n, float *out);

// ---- inference ---------------------------------------------------------------------------------

typedef struct {
    Arena arena;
    Graph g;
    int planned;
} TlInfer;
void tl_infer_init(TlInfer *in);
void tl_infer_begin(TlInfer *in);  // reset the arena and tape
void tl_infer_end(TlInfer *in);    // after the first (largest) pass: fix the arena size
void tl_infer_free(TlInfer *in);

// Training graph on an arena planned by the first step (the caller's worst case).
typedef struct {
    Arena arena;
    Graph g;
    int planned;
} TlTrain;
void tl_train_init(TlTrain *t);
void tl_train_begin(TlTrain *t, Rng *rng);  // reset; dropout masks from rng
void tl_train_end(TlTrain *t);              // after the planning step: fix the arena size
void tl_train_free(TlTrain *t);

// Logits (B, K) of the training batch in ctx from the online model (teacher 0) or from its
// momentum copies (teacher 1: the Model's tower m->mo and the task's momentum parameters).
typedef Tensor *(*TlLogitsFn)(Graph *g, void *ctx, int teacher);
// One training pass of a classification task (ve, nlvr2): logits, loss, backward; returns the
// loss. distill: ALBEF's momentum distillation, loss = (1 - alpha) CE(labels) + alpha x the
// cross-entropy against softmax(teacher logits) (model_ve.py / model_nlvr.py). The teacher runs
// after the student's forward, so the student's dropout masks do not depend on it, in a no-grad
// region whose memory is released (only its softmax is kept for the backward), with dropout
// as the student's (ALBEF's momentum modules train in train mode too); at alpha 0 the loss and
// gradients equal those of distill 0 bit for bit.
float tl_cls_train_pass(TlTrain *t, Rng *rng, TlLogitsFn logits, void *ctx, const int32_t *labels,
                        int distill, float alpha);

// Image encoder of tower tw (m->on or m->mo) on n images (n, 3, S, S) -> (n*(1+N), C), all
// patches.
Tensor *tl_encode_images(Graph *g, const Model *m, const Tower *tw, const float *images, int n);

// ---- task plumbing ------------------------------------------------------------------------------

// The first member of each task's state (VeState, NlvrState, VqaState), so that the state
// pointer ft_train hands the hooks is also a TlTask pointer.
typedef struct {
    FtContext *cx;
    TlExtra x;          // the task's parameters (heads, decoder, doubled layers)
    int distill;        // momentum distillation (finetune only; evaluation needs no teacher)
    int registered;     // x registered and allocated (finetune: in init; eval: in load)
    TlData train;       // task.train (labels, answers, second images; the lr schedule's size)
    int have_train;
    TlTrain tr;         // the training graph
} TlTask;

// finetune: t->cx = cx and task.train opened into t->train. Returns 0, or -1 after saying why
// on rank 0.
int tl_task_open_train(TlTask *t, FtContext *cx);
// The hooks a task starts from: state t, one loss named loss_name, the Model's momentum tower
// EMA'd before each step when t->distill, and after_step (tl_extra_update), save_extra /
// load_extra (tl_extra_save / tl_extra_load with the optimizer state) and free (tl_task_free)
// on t. The task adds init and step (and its own free, calling tl_task_free).
FtHooks tl_task_hooks(TlTask *t, const char *loss_name);
// The free hook: the training data and graph (the task parameters stay for an evaluation after
// training; the process ends soon after).
void tl_task_free(void *state);
// Planning step (the task's init hook): tl_task_plan_begin sets up the training graph, seeds
// *rng with 1 and begins a step; the task runs its pass on the shape batch (the arena's worst
// case); tl_task_plan_end fixes the arena and zeroes the task's gradients and step counter.
void tl_task_plan_begin(TlTask *t, Rng *rng);
void tl_task_plan_end(TlTask *t);
// The start of every training step (the task's step hook): tl_extra_begin_step, then the task's
// momentum copies move by EMA with m->cfg.momentum (ft_train moves the Model's tower:
// FtHooks.momentum).
void tl_task_begin_step(TlTask *t, const Model *m);
// vlmae eval (the task's load): the task parameters of CKPT.extra into t->x, registered by the
// caller; no optimizer state. Returns 0, or -1 with err.
int tl_task_load(TlTask *t, const char *ckpt, char *err, size_t errlen);

#endif
