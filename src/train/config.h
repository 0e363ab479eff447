// config.h: the run configuration — typed, validated, loaded from one YAML file (libyaml) plus
// `--set key=value` overrides, and dumped back as YAML so a run directory records exactly what ran.
//
// Schema (every key optional; the defaults are config_defaults(); configs/pretrain_4m.yaml documents
// each key with a one-line comment):
//   model:    preset (base | tiny), objective (vlmae | albef | tcl), every field of ModelConfig by name
//   losses:   itc, itm, mlm, rmim, ifr                       -> ModelConfig.w_*
//   train:    batch_size (per rank), epochs, max_steps, lr, warmup_lr, min_lr, warmup_steps,
//             weight_decay, beta1, beta2, eps, alpha, alpha_ramp, seed, log_every, ckpt_every,
//             keep_checkpoints, nonfinite (stop | skip), val_every, val_batches
//   data:     vocab, text_max_len, max_words, threads, prefetch, skip_corrupt,
//             augment: {randaugment, color_jitter, grayscale, blur, hflip, crop_scale_min},
//             datasets: [{name: coco, shards: ["shards/coco-*.h5", ...]}, ...],
//             val: ["shards/val-*.h5"] (held-out shards for validation losses)
//   init:     vit, bert (optional .safetensors checkpoints)
//   runtime:  device (cpu | cuda | guard), precision (fp32 | bf16), timeout_s (watchdog; 0 = off)
//   task:     name, train, val, test (lists of paths / globs), image_size, text_max_len, k_test,
//             answer_list, image_root, gradcam_layer, eval_every, distill (fine-tuning; TaskConfig)
//
// Semantics:
// - model.preset is applied first wherever it appears in the file: it sets every architecture
//   field of ModelConfig (model_config_base / model_config_tiny); the other model keys override
//   it. The objective and the loss weights are their own keys and a preset leaves them alone.
// - Numbers: integers in decimal (65536, 65_536, or an exact 1e3); reals like 1.0e-4 or .5;
//   booleans true/false/yes/no/on/off. Quoted scalars are accepted for numbers too.
// - Path strings (data.vocab, data.datasets[].shards[], init.vit, init.bert) expand ${VAR} and
//   ${VAR:-default} from the environment at load time ($$ is a literal $); the dump records the
//   expanded paths. Shard entries are file paths or glob patterns, resolved by the data loader.
// - data.datasets given in the file (or with --set) replaces the whole list; the default is empty.
// - A dotted key at any level names the same key as the nested form (train.lr: 1e-4 at the top
//   level is train: {lr: 1e-4}), as in --set.
// - Single-field ranges (batch_size >= 1, mask_ratio in [0, 1), ...) are checked as each key is
//   read, so errors carry the file and line; config_validate repeats them and adds cross-field
//   checks (the program may also change fields between loading and validating).
//
// Every error message is one line: "FILE:LINE: message naming the full key path" for the file,
// "--set KEY=VALUE: message" for overrides, "message" for config_validate.
#ifndef VLMAE_CONFIG_H
#define VLMAE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/model.h"

#define CONFIG_PATH_MAX 1024
#define CONFIG_NAME_MAX 64

typedef enum { PRESET_BASE = 0, PRESET_TINY = 1 } ModelPreset;
// guard: ops_cpu behind a device-memory guard (src/engine/ops_guard.h), a debugging aid for the
// device-resident step on machines without a GPU.
typedef enum { DEVICE_CPU = 0, DEVICE_CUDA = 1, DEVICE_GUARD = 2 } RuntimeDevice;
typedef enum { PRECISION_FP32 = 0, PRECISION_BF16 = 1 } Precision;

// A list of paths or glob patterns (data.val, task.train / task.val / task.test), malloc'ed.
typedef struct {
    char **items;
    int n;
} PathList;

typedef struct {
    char name[CONFIG_NAME_MAX];  // non-empty, unique within data.datasets
    char **shards;               // malloc'ed paths or glob patterns (config_free releases them)
    int n_shards;
} DatasetConfig;

typedef struct {
    int batch_size;         // per rank
    int epochs;
    int64_t max_steps;      // 0 = run the epochs; > 0 stops after this many optimizer steps
    float lr, warmup_lr, min_lr;
    int64_t warmup_steps;
    float weight_decay, beta1, beta2, eps;
    float alpha;            // distillation weight
    int alpha_ramp;         // ramp alpha linearly from 0 over the first epoch (ALBEF)
    uint64_t seed;
    int log_every;          // steps
    int64_t ckpt_every;     // steps; 0 = only at the end / on signal
    int keep_checkpoints;   // most recent step checkpoints kept; 0 = keep all
    int nonfinite;          // NonfinitePolicy (trainer.h): 0 = stop, 1 = skip
    int64_t val_every;      // held-out validation every N steps and at the end (data.val; 0 = off)
    int64_t val_batches;    // at most this many validation batches per rank (0 = all of data.val)
} TrainConfig;

typedef struct {
    char vocab[CONFIG_PATH_MAX];  // "" = the installed vocab (the program resolves it)
    int text_max_len;             // tokens, [CLS] included
    int max_words;                // captions truncated to this many words before WordPiece
    int threads, prefetch;        // loader threads, batches prepared ahead
    int skip_corrupt;             // count and skip undecodable images instead of stopping
    int randaugment, color_jitter, grayscale, blur;  // data.augment.*
    int hflip;                    // data.augment.hflip: random horizontal flip
    float crop_scale_min;         // data.augment.crop_scale_min: RandomResizedCrop's smallest area
    DatasetConfig *datasets;      // malloc'ed (config_free releases them)
    int n_datasets;
    PathList val;                 // held-out pre-training shards (train.val_every); none = no validation
} DataConfig;

typedef struct {
    char vit[CONFIG_PATH_MAX];   // "" = random init; else .safetensors with timm/DeiT names
    char bert[CONFIG_PATH_MAX];  // "" = random init; else .safetensors with HF bert-base-uncased names
} InitConfig;

typedef struct {
    RuntimeDevice device;
    Precision precision;
    float timeout_s;  // watchdog (train/watchdog.h): longest one phase of a step may take; 0 = off
} RuntimeConfig;

// task: the downstream task of `vlmae finetune` / `vlmae eval` (src/tasks/finetune.h, src/tasks/).
// Optimizer and schedule settings come from train.*; with --init the architecture comes from the
// pre-trained checkpoint, except the image size (task.image_size; pos_embed resized bicubically).
typedef struct {
    char name[CONFIG_NAME_MAX];     // retrieval | grounding | vqa | ve | nlvr2 ("" = none)
    PathList train, val, test;      // shard paths / globs (grounding val/test: its JSON files)
    int image_size;                 // fine-tuning / evaluation resolution (384)
    int text_max_len;               // tokens, [CLS] included (30)
    int k_test;                     // retrieval: ITM re-scores each query's top k (256 COCO, 128 Flickr)
    char answer_list[CONFIG_PATH_MAX];  // vqa: candidate answers (JSON list)
    char image_root[CONFIG_PATH_MAX];   // images of JSON annotation files ("" = the file's directory)
    int gradcam_layer;              // grounding: BERT layer (index over all layers) of the Grad-CAM (8)
    int eval_every;                 // evaluate val/test every N epochs while fine-tuning (0 = at the end)
    int distill;                    // ALBEF's momentum distillation while fine-tuning (true; weight
                                    // train.alpha, ramp train.alpha_ramp): vqa, ve, nlvr2, retrieval
} TaskConfig;

typedef struct {
    ModelConfig model;
    TrainConfig train;
    DataConfig data;
    InitConfig init;
    RuntimeConfig runtime;
    ModelPreset preset;  // model.preset: what the model section started from (recorded in the dump)
    TaskConfig task;
} RunConfig;

// Defaults: preset base, objective vlmae, the values in the schema above, no datasets.
// (c need not be initialised; it must not hold datasets, or they leak: use config_free first.)
void config_defaults(RunConfig *c);
// Frees the datasets and resets c to config_defaults.
void config_free(RunConfig *c);
// Deep copy (dst must not hold datasets).
void config_copy(RunConfig *dst, const RunConfig *src);

// config_defaults(c), then the file. c need not be initialised; datasets it already holds are not
// freed (config_free first to reuse a config). On error c still holds a valid (partially loaded)
// config that config_free releases.
int config_load(RunConfig *c, const char *path, char *err, size_t errlen);
// Parse YAML text as if it were the file `name` (what config_load does after reading the file).
int config_load_string(RunConfig *c, const char *yaml, size_t len, const char *name, char *err,
                       size_t errlen);
// One override "KEY=VALUE", e.g. "train.batch_size=48", "model.preset=tiny" (resets the model's
// architecture fields), "data.augment.blur=false". For a scalar key VALUE is taken verbatim; for a
// section or data.datasets it is YAML (flow style): 'data.datasets=[{name: coco, shards: [a.h5]}]',
// 'losses={itc: 1, ifr: 0}'. Same type, range and key checks as the file.
int config_set(RunConfig *c, const char *assignment, char *err, size_t errlen);

// Every single-field range plus the cross-field rules (divisibility of widths by heads, image
// size by patch size, queue_size by batch_size * world_size, visible patches, token ids, ...).
int config_validate(const RunConfig *c, int world_size, char *err, size_t errlen);
// Training needs at least one dataset with at least one shard, unique non-empty names.
int config_validate_data(const RunConfig *c, char *err, size_t errlen);

// The full resolved config as YAML (every key, loadable by config_load to the same config).
// Returns 0, or -1 when writing failed.
int config_dump(const RunConfig *c, FILE *f);
// config_dump into a malloc'ed string (what a checkpoint records); dies only when out of memory.
char *config_to_yaml(const RunConfig *c);
// Number of keys whose values differ; the first few are written to buf (may be NULL) as
// "train.lr: 0.0001 -> 0.0002; ..." (e.g. to compare a checkpoint's config with this run's).
int config_diff(const RunConfig *a, const RunConfig *b, char *buf, size_t buflen);

const char *preset_name(ModelPreset p);
const char *device_name(RuntimeDevice d);
const char *precision_name(Precision p);

#endif
