// checkpoint.h: training checkpoints in HDF5 — everything needed to continue a run exactly.
//
// File layout (format version 1; every float dataset is float32 with the parameter's shape, stored
// as chunks with the Fletcher-32 checksum filter so a corrupted byte is an error, not a silent
// wrong weight):
//   /params/NAME          online parameters (NAME as in ParamInfo.name, e.g. vit.blocks.0.attn.qkv.weight)
//   /momentum/NAME        momentum copy (names as in Model.momentum, i.e. "m." prefixed)
//   /adam/m/NAME, /adam/v/NAME   AdamW moments, same names and shapes as /params; attribute t
//   /queue/image, /queue/text    (Q, E) feature queues; attribute ptr on /queue
//   root attributes       format = "vlmae-checkpoint", format_version = 1, step, epoch,
//                         epoch_step (int64), seed (uint64), world_size (int32), config_yaml (string),
//                         and complete = 1, written last.
// The data loader needs no more than (seed, epoch, epoch_step) to continue mid-epoch (its order
// is a seeded permutation per epoch); per-step random streams are derived from (seed, step, rank)
// by the trainer, so no RNG state is stored.
//
// Saving is atomic: PATH.tmp is written, flushed, closed and fsync'ed, renamed to PATH, and the
// directory fsync'ed. On any failure the .tmp is removed and an existing PATH is never touched.
// The HDF5 file is built in memory (core driver) and written out by our own code, so a disk-full
// or quota error is reported cleanly instead of leaving HDF5 with a file it cannot close (which
// crashes the library at exit); the cost is one in-memory copy of the checkpoint during the save
// (3.8 GB for the base model with AdamW state). Only rank 0 saves.
// HDF5's automatic error printing is switched off inside these functions; errors come back as one
// message naming the file (and the parameter, where there is one).
// checkpoint_write.c saves, checkpoint_read.c loads, checkpoint.c scans and prunes run directories.
#ifndef VLMAE_CHECKPOINT_H
#define VLMAE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "train/optim.h"

#define CHECKPOINT_FORMAT_VERSION 1

typedef struct {
    int64_t step, epoch, epoch_step;
    uint64_t seed;
    int world_size;
    char *config_yaml;  // save: may be NULL (stored as ""); load: malloc'ed, caller frees
} CheckpointMeta;

// Returns 0, or -1 with the reason in err. Refuses (-1, naming the tensor) when any online or
// momentum parameter, AdamW moment or queue value is not finite.
int checkpoint_save(const char *path, const Model *m, const AdamW *opt, const CheckpointMeta *meta,
                    char *err, size_t errlen);
// Loads into a model built with the same configuration (model_create). opt may be NULL (weights
// only; the /adam group is then not read); otherwise it must be adamw_init'ed on m->params. meta
// may be NULL. Every name and shape is validated before any value is read; missing and extra
// parameters are errors. On -1 the model/optimizer contents are unspecified (a read may have
// failed half-way), so callers treat it as fatal or re-initialise.
int checkpoint_load(const char *path, Model *m, AdamW *opt, CheckpointMeta *meta, char *err,
                    size_t errlen);
void checkpoint_meta_free(CheckpointMeta *meta);  // frees config_yaml

// Checkpoint file name for a step: "ckpt-%08lld.h5" into buf (run_dir/ prefixed when run_dir).
int checkpoint_path(char *buf, size_t n, const char *run_dir, int64_t step);
// Newest complete checkpoint "ckpt-<step>.h5" in run_dir into path_out. .tmp files are ignored;
// incomplete or unreadable checkpoints are skipped with a note on stderr. Returns 0 found, 1 none,
// -1 error (run_dir unreadable, path too long).
int checkpoint_find_latest(const char *run_dir, char *path_out, size_t n);
// Deletes all but the newest `keep` complete checkpoints of run_dir (incomplete or unreadable
// files are left alone for inspection; keep <= 0 deletes nothing). Returns the number deleted, or
// -1 on error (reported on stderr).
int checkpoint_prune(const char *run_dir, int keep);

#endif
