// loader.h: the training / evaluation data loader over HDF5 shards (shard.h).
//
// Samples are text rows (captions); each indexes an image. Several shard files (several
// datasets: the 4M set is coco + vg + cc3m + sbu) form one sample space, in the order given:
// global text index = texts of earlier shards + row in the shard; likewise global image index,
// which is the Batch's image_id (same image => same id, for retrieval positives).
//
// Train mode. Epoch e is a permutation of all M texts (Fisher-Yates, rng_seed_stream(seed, e,
// ~0)), the same on every rank. Global batch = B*W samples; rank r's batch at step s holds
// permutation positions [s*B*W + r*B, +B). steps/epoch = floor(M / (B*W)) with drop_last (the
// default: every rank always gets B samples, which the ITC queue needs), else ceil, the last
// step's batches being short (possibly empty, B = 0) so the W ranks together see every sample
// exactly once. loader_next never ends: after the last step of epoch e comes step 0 of e+1.
// Augmentation of the sample at position p of epoch e draws from rng_seed_stream(seed, e, p), so
// batches do not depend on threads, timing or where the run was resumed: loader_seek(e, s)
// restarts exactly there (store loader_position in the checkpoint).
//
// Eval mode (cfg.eval): identity order, no augmentation (plain bicubic resize), every sample once
// over the W ranks with the same slicing, last batches short; loader_next returns 0 after the
// pass; loader_seek(0, 0) starts another pass. For retrieval, by_image makes the samples the
// images (each once, for image features) and no_images gives a text-only pass (text features).
//
// Worker threads decode + augment + tokenize samples straight into the batch buffers of a ring of
// `prefetch` batches, ahead of the consumer. Buffers (batches, compressed-image buffer sized to
// the largest JPEG of the shards, augmentation workspaces) are allocated once at open; image
// bytes are read with pread() (no HDF5 after open). [The JPEG decoder, image.c, still mallocs
// its output per image.]
//
// Corrupt samples (unreadable or undecodable image) are reported once per image on stderr
// (shard file + image row), counted, and either replaced by the next valid sample of the epoch
// order (default; the augmentation stream stays that of the original position, so the result is
// deterministic) or, with skip_corrupt, dropped (the batch gets shorter).
#ifndef VLMAE_LOADER_H
#define VLMAE_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "data/augment.h"
#include "data/batch.h"
#include "data/tokenizer.h"

typedef struct {
    const char *const *shards;  // shard file paths (see loader_expand_shards for globs)
    int num_shards;
    int rank, world;            // this process's rank in [0, world)
    int batch_size;             // per rank
    uint64_t seed;
    int image_size;             // output H = W (256 pre-train, 384 fine-tune)
    int max_len;                // text length T (25 pre-train, 30 fine-tune)
    const Tokenizer *tok;       // required (read-only, shared by the threads)
    AugmentOptions aug;         // train-mode transform (augment_defaults)
    int threads;                // worker threads (>= 1)
    int prefetch;               // batches prepared ahead, ring depth (>= 1)
    int drop_last;              // train mode: drop the last partial global batch
    int eval;                   // eval mode (see above)
    int skip_corrupt;           // 1: drop corrupt samples; 0: replace by the next valid one
    int quiet;                  // 1: do not print corrupt-sample reports
    int by_image;               // samples are the images (each once, with its first caption;
                                // no box), e.g. for retrieval image features; default: texts
    int no_images;              // skip image reading/decoding (text-only pass: images are 0)
    int two_views;              // also fill Batch.image2 with a second view of each image (the
                                // objective tcl): train mode, an independent augmentation of the
                                // same decoded image (its own stream, rng_seed_stream(seed ^
                                // LOADER_VIEW2_SALT, epoch, position)); eval mode, a copy of image.
                                // Off: image2 is NULL.
    const char *const *shard_dataset;  // optional (NULL: none): for each shard, the dataset it
                                // belongs to (loader_expand_datasets' labels). A dataset whose
                                // shards hold no text at all is then an error naming it: it would
                                // otherwise drop out of the sample space without a word.
} LoaderConfig;

#define LOADER_VIEW2_SALT 0x7c1a5f2e9d3b4c61ull

// Defaults: world 1, batch 32, seed 0, image 256, max_len 25, augment_defaults, 4 threads,
// prefetch 3, drop_last 1, train mode, replace corrupt samples.
void loader_config_defaults(LoaderConfig *c);

typedef struct Loader Loader;

// Opens every shard (validating them) and starts the worker threads at (epoch 0, step 0).
// Returns NULL with a message in err (naming the file) on failure.
Loader *loader_open(const LoaderConfig *cfg, char *err, size_t errlen);
void loader_close(Loader *L);

// Blocks until the next batch is ready. Returns 1 with *out set (valid until the next
// loader_next / loader_seek / loader_close), 0 at the end of an eval pass, -1 on a fatal error
// (message from loader_error), e.g. no valid sample left to replace a corrupt one.
int loader_next(Loader *L, Batch **out);
const char *loader_error(const Loader *L);

// Position of the NEXT batch loader_next will return (what a checkpoint stores).
void loader_position(const Loader *L, int64_t *epoch, int64_t *step);
// Continue from (epoch, step); in-flight work is discarded. Returns 0, or -1 if step is out of
// range (step == steps_per_epoch is accepted as (epoch+1, 0) in train mode).
int loader_seek(Loader *L, int64_t epoch, int64_t step);

int64_t loader_steps_per_epoch(const Loader *L);
int64_t loader_num_samples(const Loader *L);  // texts, or images with by_image
int64_t loader_num_texts(const Loader *L);    // M, all shards
int64_t loader_num_images(const Loader *L);

// Global text index of each sample of a batch returned by loader_next (b->B entries; -1 for an
// image without captions in by_image mode). The global image index is b->image_id.
const int64_t *loader_batch_texts(const Batch *b);
// (epoch, step) of a batch returned by loader_next.
void loader_batch_position(const Batch *b, int64_t *epoch, int64_t *step);
// Caption (as stored, cleaned) and image of a global text index; for eval bookkeeping.
const char *loader_text_caption(const Loader *L, int64_t text);
int64_t loader_text_image(const Loader *L, int64_t text);

typedef struct {
    int64_t corrupt_images;  // distinct images found unreadable/undecodable (incl. prefetched)
    int64_t replaced;        // samples replaced by the next valid one, in returned batches
    int64_t skipped;         // samples dropped (skip_corrupt), in returned batches
} LoaderStats;
void loader_stats(const Loader *L, LoaderStats *s);

// Expand shell globs (sorted; a plain path is kept as is) into a malloc'd array of malloc'd
// strings. A pattern that matches nothing is an error naming it. Free with loader_free_paths.
int loader_expand_shards(const char *const *patterns, int n, char ***paths, int *npaths, char *err,
                         size_t errlen);
void loader_free_paths(char **paths, int n);

// A named set of shard patterns (a config's data.datasets entry).
typedef struct {
    const char *name;
    const char *const *patterns;
    int n;
} LoaderDataset;
// loader_expand_shards for each dataset in turn, the paths concatenated in order; (*labels)[k]
// names the dataset of path k as "NAME (PATTERN, ...)", for LoaderConfig.shard_dataset. An error
// names the dataset. Free both with loader_free_paths(..., *npaths).
int loader_expand_datasets(const LoaderDataset *ds, int nds, char ***paths, char ***labels,
                           int *npaths, char *err, size_t errlen);

#endif
