// finetune.h: the harness behind `vlmae finetune` and `vlmae eval` — downstream tasks on a
// pre-trained model — that every task uses (tasks/task.h is the registry of tasks; the command
// line is cli/finetune.c). finetune.c: loaders, reports, the training loop; finetune_model.c: the
// model from a checkpoint; finetune_blobs.c: extra-state files.
//
// The config names the task (task.name) and its data (task.train / task.val / task.test); the
// optimizer and schedule are train.* (lr, warmup, min_lr, epochs or max_steps, batch_size, alpha,
// seed, log/ckpt cadence). ALBEF's momentum distillation is task.distill (true): its weight is
// train.alpha, ramped up over the first epoch with train.alpha_ramp; task.distill false makes
// the alpha a step gets (and logs) 0. Model architecture: with --init (a pre-training checkpoint) or --ckpt
// (a fine-tuning checkpoint) it is the checkpoint's own (its config_yaml), with the image size
// replaced by task.image_size: parameters are loaded by name and vit.pos_embed / m.vit.pos_embed
// are resized bicubically when the patch grid differs (ALBEF's interpolate_pos_embed). How it is
// trained is this config's: model.hidden_dropout, model.attn_dropout, model.momentum and the
// losses.* weights (ITC and ITM for retrieval). Without a checkpoint, the config's model section
// is used with random weights (a warning says so).
//
// A run directory holds config.yaml (resolved: the model that was built, the task), log.jsonl
// (training lines {"step", "epoch", losses..., "lr"} and evaluation lines {"eval": split, metrics})
// and checkpoints ckpt-STEP.h5 (the same HDF5 format as pre-training; a task's extra state, e.g.
// retrieval's image-id queue, goes to ckpt-STEP.h5.extra next to it). Resume, signals (SIGUSR1 /
// SIGTERM: checkpoint at the next step, exit 99) and the non-finite guard work as in pretraining.
#ifndef VLMAE_FINETUNE_H
#define VLMAE_FINETUNE_H

#include <stddef.h>
#include <stdint.h>

#include "data/batch.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "engine/rng.h"
#include "model/model.h"
#include "train/config.h"
#include "train/dist.h"

// Everything a task sees: the command line, the resolved config, the ranks, the tokenizer.
typedef struct FtContext {
    int is_eval;              // vlmae eval (else vlmae finetune)
    const char *config_path;
    const char *init;         // finetune --init: pre-trained checkpoint (NULL: random init)
    const char *ckpt;         // eval --ckpt: the checkpoint to evaluate
    const char *resume;       // finetune --resume auto|PATH (NULL: start fresh)
    const char *split;        // eval --split: "test" (default), "val" or "all"
    const char *overlays;     // eval --overlays DIR: tasks that can draw write PNGs there (or NULL)
    int max_overlays;         // at most this many PNGs per split
    int64_t stop_after;       // finetune --stop-after N: checkpoint and stop after step N
    char run_dir[2048];       // finetune: the run directory; eval: where results go
    RunConfig rc;             // resolved config (model = the model actually built)
    Dist d;
    int R0;                   // rank 0
    Tokenizer *tok;
    uint64_t seed;            // train.seed
    int64_t ckpt_step;        // the step attribute of the checkpoint ft_build_model read (0: none)
} FtContext;

// Metrics of one evaluation, printed and logged generically.
#define FT_MAX_METRICS 24
typedef struct {
    int n;
    char name[FT_MAX_METRICS][32];
    double value[FT_MAX_METRICS];
} FtMetrics;
void ft_metric(FtMetrics *m, const char *name, double value);

// ---- model --------------------------------------------------------------------------------------

// Builds m and loads weights from a vlmae checkpoint (pre-training or fine-tuning) by name:
// architecture from the checkpoint's config_yaml with image_size = cx->rc.task.image_size;
// online + momentum parameters by name (pos_embed grids resized bicubically), the ITC queues when
// their shape matches (else random), temperature included. path NULL: cx->rc.model, random init.
// cx->rc.model is set to the model built. Returns 0, or -1 with the reason in err.
int ft_build_model(FtContext *cx, Model *m, const char *path, char *err, size_t errlen);

// ---- data ---------------------------------------------------------------------------------------

typedef enum { FT_TRAIN = 0, FT_EVAL_TEXTS = 1, FT_EVAL_IMAGES = 2, FT_EVAL_PAIRS = 3 } FtLoaderMode;
// A loader over the shards matching patterns: train (augmented, seeded epochs, rank slices of
// whole batches, data.augment.* switches, crop scale 0.5-1 as ALBEF's fine-tuning), or eval:
// texts only (no image decoding), each image once (by_image), or every (image, text) pair.
// Image size task.image_size, text length task.text_max_len. NULL with err on failure.
Loader *ft_open_loader(const FtContext *cx, const PathList *patterns, FtLoaderMode mode, int batch,
                       char *err, size_t errlen);

// ---- training harness ---------------------------------------------------------------------------

// What a task plugs into ft_train. Every callback gets the task's state pointer.
typedef struct FtHooks {
    void *state;
    int n_losses;                 // <= 6, named below; the total is their sum as the step weights it
    const char *loss_names[6];
    int momentum;                 // 1: EMA of the momentum tower before each step (cfg.momentum)
    int clamp_temp;               // 1: clamp the ITC temperature to [0.001, 0.5] before each step
    // Planning: run one step on a batch of this shape (arena sizing); gradients are zeroed after.
    void (*init)(void *state, Model *m, const Batch *shape, FtContext *cx);
    // Forward + backward of one batch: accumulate parameter gradients, write n_losses losses.
    // Non-finite state the step produced (e.g. queue features) is reported as a NaN loss.
    void (*step)(void *state, Model *m, const Batch *b, float alpha, Rng *rng, float *losses);
    // After the all-reduce and the non-finite check passed, before AdamW (e.g. gather + enqueue).
    void (*after_step)(void *state, Model *m, const Dist *d);
    // Extra state saved next to the checkpoint (FtBlob file ckpt.h5.extra); both optional.
    int (*save_extra)(void *state, const char *path, char *err, size_t errlen);
    int (*load_extra)(void *state, const char *path, char *err, size_t errlen);
    void (*free)(void *state);
} FtHooks;

// The whole fine-tuning run: model from --init (or the resumed checkpoint), train loader over
// task.train, AdamW with train.* schedule, per-step hooks, logs, checkpoints, signals, resume;
// evaluation of val and test (the task's eval) every task.eval_every epochs and at the end.
// Returns the process exit status (0, 99 after a signal checkpoint, else an error).
int ft_train(FtContext *cx, FtHooks *h);

// ---- evaluation helpers -------------------------------------------------------------------------

// Prints "name: metrics" on rank 0 and appends {"eval": name, "step": step, metrics} to
// cx->run_dir/log.jsonl (eval: to cx->run_dir/eval.jsonl).
void ft_report(FtContext *cx, const char *name, int64_t step, const FtMetrics *m);
// Runs task's eval on split "val" or "test" (nothing when its list is empty) and reports every
// set it returns (ft_report; a set whose first metric is "set:NAME" is reported as NAME).
// Returns 0, or -1 when the eval failed.
struct Task;
int ft_run_eval(FtContext *cx, const struct Task *task, Model *m, const char *split, int64_t step);

// ---- extra-state files (named byte blobs; written atomically by rank 0) --------------------------

typedef struct {
    int n;
    char **names;
    void **data;
    size_t *bytes;
} FtBlobs;
void ft_blobs_add(FtBlobs *b, const char *name, const void *data, size_t bytes);  // copies
int ft_blobs_write(const FtBlobs *b, const char *path, char *err, size_t errlen);
int ft_blobs_read(FtBlobs *b, const char *path, char *err, size_t errlen);
const void *ft_blobs_get(const FtBlobs *b, const char *name, size_t *bytes);  // NULL if absent
void ft_blobs_free(FtBlobs *b);

#endif
