// loader.c: sharded, seeded, resumable data loader with a prefetch ring (see loader.h).
//
// Concurrency: one mutex guards the scheduling state. Batches are numbered q = 0, 1, 2, ... from
// the last seek; batch q lives in ring slot q % P. Workers take jobs (one sample of the batch
// being handed out); batch q may be set up only while q < released + P, i.e. its slot is neither
// being consumed nor still holding an unconsumed batch. Samples are written straight into the
// slot's buffers; the last finished sample marks the slot ready. Epoch permutations live in two
// buffers (epoch parity); a batch of epoch e is set up only when the oldest unreleased batch is of
// epoch >= e-1, so a buffer is never rewritten while a worker may still read it.
#define _GNU_SOURCE
#include "data/loader.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/shard.h"
#include "engine/rng.h"

// Consecutive corrupt samples after which the loader gives up (the data is mostly broken).
#define MAX_REPLACE_TRIES 1000

typedef struct {
    Batch b;                 // first member: loader_batch_* cast Batch* back to the slot
    int64_t *texts;          // global text index per sample
    unsigned char *valid;    // 0 = dropped (skip_corrupt)
    int64_t pos0;            // permutation position of sample 0
    int64_t epoch, step;
    int n;                   // samples scheduled
    int pending;             // samples not finished yet
    int ready;
    int replaced;            // samples replaced in this batch (atomic; added to the stats when
                             // the batch is consumed, so stats do not count prefetched work)
} Slot;

typedef struct {
    struct Loader *L;
    pthread_t th;
    Rng rng;
    AugmentWork work;
    uint8_t *jpeg;           // compressed-bytes buffer (largest image of all shards)
    size_t jpeg_cap;
} Worker;

struct Loader {
    LoaderConfig cfg;
    Shard **shards;
    int nshards;
    int64_t *text_base;      // nshards+1 cumulative texts
    int64_t *image_base;     // nshards+1 cumulative images
    int64_t M, NI;
    int64_t NS;              // samples: M (texts) or NI (images, cfg.by_image)
    int64_t *first_text;     // by_image: first text of each global image (-1 = none)
    int64_t steps;           // per epoch (train) / per pass (eval)
    int B, W, T, S;          // batch, world, text len, image size
    unsigned char *bad;      // per global image: 1 = known corrupt (atomic access)
    // permutations for two epochs (train)
    int32_t *perm[2];
    int64_t perm_epoch[2];
    // ring
    Slot *slots;
    int P;
    // scheduling state (mu)
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_ready, cv_idle;
    int64_t e0, s0;          // position of batch q = 0
    int64_t q_setup;         // batches set up so far
    int cur_i;               // next sample to hand out of batch q_setup-1
    int64_t q_released;      // batches released by the consumer
    int holding;             // consumer holds batch q_released
    int active;              // jobs in progress
    int seeking, shutdown;
    int failed;
    char errmsg[512];
    // stats (atomics)
    int64_t n_corrupt, n_replaced, n_skipped;
    Worker *workers;
    int nworkers;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void loader_config_defaults(LoaderConfig *c) {
    memset(c, 0, sizeof *c);
    c->rank = 0;
    c->world = 1;
    c->batch_size = 32;
    c->seed = 0;
    c->image_size = 256;
    c->max_len = 25;
    augment_defaults(&c->aug);
    c->threads = 4;
    c->prefetch = 3;
    c->drop_last = 1;
    c->eval = 0;
    c->skip_corrupt = 0;
}

// ---------------------------------------------------------------------------------------------
// Positions

// Position of batch q (counted from the last seek).
static void pos_of(const Loader *L, int64_t q, int64_t *epoch, int64_t *step) {
    int64_t s = L->s0 + q;
    if (L->cfg.eval) {
        *epoch = L->e0;
        *step = s;
    } else {
        *epoch = L->e0 + s / L->steps;
        *step = s % L->steps;
    }
}

static int past_end(const Loader *L, int64_t q) {
    return L->cfg.eval && L->s0 + q >= L->steps;
}

static void make_perm(Loader *L, int64_t epoch) {
    int k = (int)(epoch & 1);
    if (L->perm_epoch[k] == epoch) return;
    Rng r;
    rng_seed_stream(&r, L->cfg.seed, (uint64_t)epoch, ~(uint64_t)0);
    rng_permutation_i32(&r, L->perm[k], (size_t)L->NS);
    L->perm_epoch[k] = epoch;
}

// Sample (text, or image with by_image) at position p of epoch e's order.
static int64_t sample_at(const Loader *L, int64_t epoch, int64_t p) {
    if (L->cfg.eval) return p;
    return L->perm[epoch & 1][p];
}

// shard containing global text t (binary search over text_base)
static int shard_of_text(const Loader *L, int64_t t) {
    int lo = 0, hi = L->nshards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (L->text_base[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static int shard_of_image(const Loader *L, int64_t gi) {
    int lo = 0, hi = L->nshards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (L->image_base[mid] <= gi) lo = mid;
        else hi = mid - 1;
    }
    return lo;  // (an empty shard never wins: the next one has the same base and a larger index)
}

// ---------------------------------------------------------------------------------------------
// Scheduling (called with mu held)

// Set up batch q in its slot. Returns 0, or -1 if it may not be set up yet.
static int setup_batch(Loader *L, int64_t q) {
    if (q >= L->q_released + L->P) return -1;
    if (past_end(L, q)) return -1;
    int64_t e, s;
    pos_of(L, q, &e, &s);
    if (!L->cfg.eval) {
        int64_t eo, so;
        pos_of(L, L->q_released, &eo, &so);
        if (e > eo + 1) return -1;  // its permutation buffer is still in use
        make_perm(L, e);
    }
    Slot *sl = &L->slots[q % L->P];
    int64_t p0 = s * (int64_t)L->B * L->W + (int64_t)L->cfg.rank * L->B;
    int64_t n = L->NS - p0;
    if (n > L->B) n = L->B;
    if (n < 0) n = 0;
    sl->pos0 = p0;
    sl->epoch = e;
    sl->step = s;
    sl->n = (int)n;
    sl->pending = (int)n;
    sl->ready = n == 0;
    sl->replaced = 0;
    for (int i = 0; i < n; i++) sl->valid[i] = 1;
    L->q_setup = q + 1;
    L->cur_i = 0;
    if (n == 0) pthread_cond_broadcast(&L->cv_ready);
    return 0;
}

// Take the next job. Returns 1 with (*slot, *i), or 0 if none is available now.
static int take_job(Loader *L, Slot **slot, int *i) {
    if (L->seeking || L->shutdown || L->failed) return 0;
    for (;;) {
        if (L->q_setup > 0) {
            Slot *sl = &L->slots[(L->q_setup - 1) % L->P];
            if (L->cur_i < sl->n) {
                *slot = sl;
                *i = L->cur_i++;
                return 1;
            }
        }
        if (setup_batch(L, L->q_setup) != 0) return 0;
    }
}

// ---------------------------------------------------------------------------------------------
// One sample

static void report_corrupt(Loader *L, int sh, int64_t local_img, const char *why) {
    __atomic_add_fetch(&L->n_corrupt, 1, __ATOMIC_RELAXED);
    if (!L->cfg.quiet)
        fprintf(stderr, "loader: corrupt sample: %s image %lld: %s; %s\n",
                shard_path(L->shards[sh]), (long long)local_img, why,
                L->cfg.skip_corrupt ? "skipped" : "replaced by the next valid sample");
}

// Where sample s lives: its text (-1 if none), shard, image row in the shard, global image.
static void locate(const Loader *L, int64_t smp, int64_t *t, int *sh, int64_t *li, int64_t *gi) {
    if (L->cfg.by_image) {
        *gi = smp;
        *t = L->first_text[smp];
        *sh = shard_of_image(L, smp);
        *li = smp - L->image_base[*sh];
    } else {
        *t = smp;
        *sh = shard_of_text(L, smp);
        *li = shard_text_image(L->shards[*sh], smp - L->text_base[*sh]);
        *gi = L->image_base[*sh] + *li;
    }
}

// Load and decode image li of shard sh (global gi) into *img. Returns 0, or -1 if corrupt.
static int load_image(Worker *w, int sh, int64_t li, int64_t gi, Image *img) {
    Loader *L = w->L;
    const Shard *s = L->shards[sh];
    if (__atomic_load_n(&L->bad[gi], __ATOMIC_RELAXED)) return -1;
    char err[512];
    int64_t n = shard_read_image(s, li, w->jpeg, w->jpeg_cap, err, sizeof err);
    int rc = n < 0 ? -1 : image_decode(w->jpeg, (size_t)n, img, err, sizeof err);
    if (rc != 0) {
        if (!__atomic_exchange_n(&L->bad[gi], 1, __ATOMIC_RELAXED)) report_corrupt(L, sh, li, err);
        return -1;
    }
    return 0;
}

static void do_sample(Worker *w, Slot *sl, int i) {
    Loader *L = w->L;
    const int64_t p = sl->pos0 + i;
    const size_t npx = (size_t)3 * L->S * L->S;
    float *out = sl->b.image + (size_t)i * npx;
    Image img = {0};
    int sh = 0;
    int64_t gi = 0, t = 0, li = 0;
    int ok = 0;
    if (L->cfg.no_images) {
        locate(L, sample_at(L, sl->epoch, p), &t, &sh, &li, &gi);
        memset(out, 0, npx * sizeof(float));
        ok = 1;
    }
    for (int k = 0; !ok && k < MAX_REPLACE_TRIES && k < L->NS; k++) {
        locate(L, sample_at(L, sl->epoch, (p + k) % L->NS), &t, &sh, &li, &gi);
        if (load_image(w, sh, li, gi, &img) == 0) {
            ok = 1;
            if (k > 0) __atomic_add_fetch(&sl->replaced, 1, __ATOMIC_RELAXED);
            break;
        }
        if (L->cfg.skip_corrupt) break;
    }
    if (!ok) {
        if (L->cfg.skip_corrupt) {
            sl->valid[i] = 0;
            return;
        }
        pthread_mutex_lock(&L->mu);
        if (!L->failed) {
            L->failed = 1;
            snprintf(L->errmsg, sizeof L->errmsg,
                     "loader: no valid sample among %d consecutive samples from position %lld of "
                     "epoch %lld (last tried: %s); the data is broken",
                     MAX_REPLACE_TRIES, (long long)p, (long long)sl->epoch,
                     shard_path(L->shards[sh]));
            pthread_cond_broadcast(&L->cv_ready);
        }
        pthread_mutex_unlock(&L->mu);
        return;
    }
    // the text: with by_image, an image's first caption (none: empty caption, no box)
    int tsh = t >= 0 ? shard_of_text(L, t) : 0;
    int64_t lt = t >= 0 ? t - L->text_base[tsh] : 0;
    float box_in[4] = {NAN, NAN, NAN, NAN};
    if (t >= 0) shard_text_box(L->shards[tsh], lt, box_in);
    float *box_out = sl->b.box + 4 * i;
    float *out2 = sl->b.image2 ? sl->b.image2 + (size_t)i * npx : NULL;  // two_views
    if (L->cfg.no_images) {
        memcpy(box_out, box_in, sizeof box_in);
        if (out2) memset(out2, 0, npx * sizeof(float));
    } else if (L->cfg.eval) {
        augment_eval_ws(&img, L->S, &w->work, out);
        memcpy(box_out, box_in, sizeof box_in);  // a plain resize keeps normalised boxes
        if (out2) memcpy(out2, out, npx * sizeof(float));
    } else {
        rng_seed_stream(&w->rng, L->cfg.seed, (uint64_t)sl->epoch, (uint64_t)p);
        augment_train_ws(&img, isnan(box_in[0]) ? NULL : box_in, L->S, &L->cfg.aug, &w->rng,
                         &w->work, out, box_out);
        if (isnan(box_in[0])) box_out[0] = box_out[1] = box_out[2] = box_out[3] = NAN;
        if (out2) {  // the second view: the same image, its own augmentation stream (box unused)
            float box2[4];
            rng_seed_stream(&w->rng, L->cfg.seed ^ LOADER_VIEW2_SALT, (uint64_t)sl->epoch, (uint64_t)p);
            augment_train_ws(&img, NULL, L->S, &L->cfg.aug, &w->rng, &w->work, out2, box2);
        }
    }
    image_free(&img);
    const char *cap = t >= 0 ? shard_text_caption(L->shards[tsh], lt, NULL) : "";
    tokenizer_encode_padded(L->cfg.tok, cap, sl->b.text_ids + (size_t)i * L->T,
                            sl->b.text_mask + (size_t)i * L->T, L->T);
    sl->b.image_id[i] = gi;
    sl->texts[i] = t;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    Loader *L = w->L;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        if (L->shutdown) break;
        Slot *sl;
        int i;
        if (!take_job(L, &sl, &i)) {
            pthread_cond_wait(&L->cv_work, &L->mu);
            continue;
        }
        L->active++;
        pthread_mutex_unlock(&L->mu);
        do_sample(w, sl, i);
        pthread_mutex_lock(&L->mu);
        L->active--;
        if (--sl->pending == 0) {
            sl->ready = 1;
            pthread_cond_broadcast(&L->cv_ready);
        }
        if (L->active == 0) pthread_cond_broadcast(&L->cv_idle);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// Public API

static void free_loader(Loader *L) {
    if (!L) return;
    for (int i = 0; i < L->nshards; i++) shard_close(L->shards[i]);
    free(L->shards);
    free(L->text_base);
    free(L->image_base);
    free(L->bad);
    free(L->first_text);
    free(L->perm[0]);
    free(L->perm[1]);
    if (L->slots) {
        for (int k = 0; k < L->P; k++) {
            Slot *s = &L->slots[k];
            free(s->b.image);
            free(s->b.image2);
            free(s->b.text_ids);
            free(s->b.text_mask);
            free(s->b.box);
            free(s->b.image_id);
            free(s->texts);
            free(s->valid);
        }
        free(L->slots);
    }
    if (L->workers) {
        for (int i = 0; i < L->nworkers; i++) {
            augment_work_free(&L->workers[i].work);
            free(L->workers[i].jpeg);
        }
        free(L->workers);
    }
    free(L);
}

Loader *loader_open(const LoaderConfig *cfg, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!cfg->tok) {
        set_err(err, errlen, "loader: a tokenizer is required");
        return NULL;
    }
    if (cfg->num_shards < 1) {
        set_err(err, errlen, "loader: no shard files given");
        return NULL;
    }
    if (cfg->world < 1 || cfg->rank < 0 || cfg->rank >= cfg->world || cfg->batch_size < 1 ||
        cfg->image_size < 1 || cfg->max_len < 1) {
        set_err(err, errlen, "loader: invalid config (rank %d of world %d, batch %d, image %d, "
                "max_len %d)", cfg->rank, cfg->world, cfg->batch_size, cfg->image_size, cfg->max_len);
        return NULL;
    }
    Loader *L = calloc(1, sizeof *L);
    if (!L) {
        set_err(err, errlen, "loader: out of memory");
        return NULL;
    }
    L->cfg = *cfg;
    L->cfg.shards = NULL;  // not kept (the caller's array may go away)
    L->B = cfg->batch_size;
    L->W = cfg->world;
    L->T = cfg->max_len;
    L->S = cfg->image_size;
    L->P = cfg->prefetch >= 1 ? cfg->prefetch : 1;
    L->shards = calloc((size_t)cfg->num_shards, sizeof(Shard *));
    L->text_base = calloc((size_t)cfg->num_shards + 1, sizeof(int64_t));
    L->image_base = calloc((size_t)cfg->num_shards + 1, sizeof(int64_t));
    if (!L->shards || !L->text_base || !L->image_base) goto oom;
    size_t max_jpeg = 1;
    uint64_t vh = tokenizer_vocab_hash(cfg->tok);
    for (int i = 0; i < cfg->num_shards; i++) {
        Shard *s = shard_open_flags(cfg->shards[i], SHARD_OPEN_NO_KEYS, err, errlen);
        if (!s) goto fail;
        L->shards[L->nshards++] = s;
        if (shard_vocab_hash(s) != 0 && shard_vocab_hash(s) != vh) {
            set_err(err, errlen, "%s: captions were tokenized with another vocabulary (hash "
                    "%016llx, loaded vocab %016llx)", cfg->shards[i],
                    (unsigned long long)shard_vocab_hash(s), (unsigned long long)vh);
            goto fail;
        }
        L->text_base[i + 1] = L->text_base[i] + shard_num_texts(s);
        L->image_base[i + 1] = L->image_base[i] + shard_num_images(s);
        if (shard_max_image_nbytes(s) > max_jpeg) max_jpeg = shard_max_image_nbytes(s);
    }
    L->M = L->text_base[L->nshards];
    L->NI = L->image_base[L->nshards];
    for (int i = 0; cfg->shard_dataset && i < L->nshards; i++) {
        // Each dataset once (at its first shard): its texts over all its shards.
        const char *ds = cfg->shard_dataset[i];
        int first = 1, files = 0;
        for (int j = 0; j < i && first; j++) first = strcmp(cfg->shard_dataset[j], ds) != 0;
        int64_t texts = 0;
        for (int j = i; first && j < L->nshards; j++)
            if (!strcmp(cfg->shard_dataset[j], ds)) texts += shard_num_texts(L->shards[j]), files++;
        if (first && texts == 0) {
            set_err(err, errlen, "loader: dataset %s holds no texts: its %d shard file(s) are empty "
                    "(packed when no image was found? repack it, or leave it out)", ds, files);
            goto fail;
        }
    }
    if (L->M == 0) {
        set_err(err, errlen, "loader: the %d shard(s) hold no texts", L->nshards);
        goto fail;
    }
    if (L->M > INT32_MAX || L->NI > INT32_MAX) {
        set_err(err, errlen, "loader: %lld texts / %lld images exceed the 2^31 limit",
                (long long)L->M, (long long)L->NI);
        goto fail;
    }
    L->NS = cfg->by_image ? L->NI : L->M;
    if (cfg->by_image) {
        L->first_text = malloc((size_t)(L->NI ? L->NI : 1) * sizeof(int64_t));
        if (!L->first_text) goto oom;
        for (int64_t g = 0; g < L->NI; g++) L->first_text[g] = -1;
        for (int i = 0; i < L->nshards; i++) {
            for (int64_t lt = shard_num_texts(L->shards[i]) - 1; lt >= 0; lt--) {
                int64_t g = L->image_base[i] + shard_text_image(L->shards[i], lt);
                L->first_text[g] = L->text_base[i] + lt;
            }
        }
    }
    {
        int64_t gb = (int64_t)L->B * L->W;
        if (cfg->eval || !cfg->drop_last) L->steps = (L->NS + gb - 1) / gb;
        else L->steps = L->NS / gb;
        if (L->steps == 0) {
            set_err(err, errlen, "loader: %lld samples are fewer than one global batch (%d x %d "
                    "ranks) and drop_last is set", (long long)L->NS, L->B, L->W);
            goto fail;
        }
    }
    L->bad = calloc((size_t)L->NI + 1, 1);
    if (!L->bad) goto oom;
    if (!cfg->eval) {
        L->perm[0] = malloc((size_t)L->NS * sizeof(int32_t));
        L->perm[1] = malloc((size_t)L->NS * sizeof(int32_t));
        if (!L->perm[0] || !L->perm[1]) goto oom;
    }
    L->perm_epoch[0] = L->perm_epoch[1] = -1;
    L->slots = calloc((size_t)L->P, sizeof(Slot));
    if (!L->slots) goto oom;
    for (int k = 0; k < L->P; k++) {
        Slot *s = &L->slots[k];
        s->b.H = s->b.W = L->S;
        s->b.T = L->T;
        s->b.image = malloc((size_t)L->B * 3 * L->S * L->S * sizeof(float));
        if (cfg->two_views) {
            s->b.image2 = malloc((size_t)L->B * 3 * L->S * L->S * sizeof(float));
            if (!s->b.image2) goto oom;
        }
        s->b.text_ids = malloc((size_t)L->B * L->T * sizeof(int32_t));
        s->b.text_mask = malloc((size_t)L->B * L->T * sizeof(int32_t));
        s->b.box = malloc((size_t)L->B * 4 * sizeof(float));
        s->b.image_id = malloc((size_t)L->B * sizeof(int64_t));
        s->texts = malloc((size_t)L->B * sizeof(int64_t));
        s->valid = malloc((size_t)L->B);
        if (!s->b.image || !s->b.text_ids || !s->b.text_mask || !s->b.box || !s->b.image_id ||
            !s->texts || !s->valid)
            goto oom;
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    pthread_cond_init(&L->cv_ready, NULL);
    pthread_cond_init(&L->cv_idle, NULL);
    L->nworkers = cfg->threads >= 1 ? cfg->threads : 1;
    L->workers = calloc((size_t)L->nworkers, sizeof(Worker));
    if (!L->workers) goto oom;
    for (int i = 0; i < L->nworkers; i++) {
        Worker *w = &L->workers[i];
        w->L = L;
        augment_work_init(&w->work);
        w->jpeg_cap = max_jpeg;
        w->jpeg = malloc(max_jpeg);
        if (!w->jpeg) goto oom;
    }
    for (int i = 0; i < L->nworkers; i++) {
        if (pthread_create(&L->workers[i].th, NULL, worker_main, &L->workers[i]) != 0) {
            set_err(err, errlen, "loader: cannot start worker threads");
            pthread_mutex_lock(&L->mu);
            L->shutdown = 1;
            pthread_cond_broadcast(&L->cv_work);
            pthread_mutex_unlock(&L->mu);
            for (int k = 0; k < i; k++) pthread_join(L->workers[k].th, NULL);
            goto fail;
        }
    }
    return L;
oom:
    set_err(err, errlen, "loader: out of memory (batch %d x %dx%d, %lld texts)", L->B, L->S, L->S,
            (long long)L->M);
fail:
    free_loader(L);
    return NULL;
}

void loader_close(Loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->shutdown = 1;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->nworkers; i++) pthread_join(L->workers[i].th, NULL);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_ready);
    pthread_cond_destroy(&L->cv_idle);
    free_loader(L);
}

const char *loader_error(const Loader *L) { return L->errmsg; }

int loader_next(Loader *L, Batch **out) {
    *out = NULL;
    pthread_mutex_lock(&L->mu);
    if (L->holding) {
        L->holding = 0;
        L->q_released++;
        pthread_cond_broadcast(&L->cv_work);
    }
    int64_t q = L->q_released;
    if (past_end(L, q)) {
        pthread_mutex_unlock(&L->mu);
        return 0;
    }
    // Batch q may not be set up yet if no worker got to it; workers are woken above.
    Slot *sl = &L->slots[q % L->P];
    while (!L->failed && !(L->q_setup > q && sl->ready)) {
        pthread_cond_broadcast(&L->cv_work);
        pthread_cond_wait(&L->cv_ready, &L->mu);
    }
    if (L->failed) {
        pthread_mutex_unlock(&L->mu);
        return -1;
    }
    L->holding = 1;
    pthread_mutex_unlock(&L->mu);
    // Compact away dropped samples (skip_corrupt).
    int n = 0;
    const size_t npx = (size_t)3 * L->S * L->S;
    for (int i = 0; i < sl->n; i++) {
        if (!sl->valid[i]) continue;
        if (n != i) {
            memmove(sl->b.image + (size_t)n * npx, sl->b.image + (size_t)i * npx, npx * sizeof(float));
            if (sl->b.image2)
                memmove(sl->b.image2 + (size_t)n * npx, sl->b.image2 + (size_t)i * npx, npx * sizeof(float));
            memmove(sl->b.text_ids + (size_t)n * L->T, sl->b.text_ids + (size_t)i * L->T,
                    (size_t)L->T * sizeof(int32_t));
            memmove(sl->b.text_mask + (size_t)n * L->T, sl->b.text_mask + (size_t)i * L->T,
                    (size_t)L->T * sizeof(int32_t));
            memmove(sl->b.box + 4 * n, sl->b.box + 4 * i, 4 * sizeof(float));
            sl->b.image_id[n] = sl->b.image_id[i];
            sl->texts[n] = sl->texts[i];
        }
        n++;
    }
    sl->b.B = n;
    __atomic_add_fetch(&L->n_skipped, sl->n - n, __ATOMIC_RELAXED);
    __atomic_add_fetch(&L->n_replaced, sl->replaced, __ATOMIC_RELAXED);
    *out = &sl->b;
    return 1;
}

void loader_position(const Loader *L, int64_t *epoch, int64_t *step) {
    pthread_mutex_lock((pthread_mutex_t *)&L->mu);
    int64_t q = L->q_released + (L->holding ? 1 : 0);
    pos_of(L, q, epoch, step);
    pthread_mutex_unlock((pthread_mutex_t *)&L->mu);
}

int loader_seek(Loader *L, int64_t epoch, int64_t step) {
    if (epoch < 0 || step < 0 || step > L->steps || (L->cfg.eval && epoch != 0)) return -1;
    if (step == L->steps && !L->cfg.eval) {
        epoch++;
        step = 0;
    }
    pthread_mutex_lock(&L->mu);
    L->seeking = 1;
    while (L->active > 0) pthread_cond_wait(&L->cv_idle, &L->mu);
    for (int k = 0; k < L->P; k++) {
        L->slots[k].ready = 0;
        L->slots[k].n = 0;
        L->slots[k].pending = 0;
    }
    L->e0 = epoch;
    L->s0 = step;
    L->q_setup = 0;
    L->cur_i = 0;
    L->q_released = 0;
    L->holding = 0;
    L->seeking = 0;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

int64_t loader_steps_per_epoch(const Loader *L) { return L->steps; }
int64_t loader_num_texts(const Loader *L) { return L->M; }
int64_t loader_num_samples(const Loader *L) { return L->NS; }
int64_t loader_num_images(const Loader *L) { return L->NI; }

const int64_t *loader_batch_texts(const Batch *b) { return ((const Slot *)b)->texts; }

void loader_batch_position(const Batch *b, int64_t *epoch, int64_t *step) {
    const Slot *s = (const Slot *)b;
    *epoch = s->epoch;
    *step = s->step;
}

const char *loader_text_caption(const Loader *L, int64_t t) {
    if (t < 0 || t >= L->M) return NULL;
    int sh = shard_of_text(L, t);
    return shard_text_caption(L->shards[sh], t - L->text_base[sh], NULL);
}

int64_t loader_text_image(const Loader *L, int64_t t) {
    if (t < 0 || t >= L->M) return -1;
    int sh = shard_of_text(L, t);
    return L->image_base[sh] + shard_text_image(L->shards[sh], t - L->text_base[sh]);
}

void loader_stats(const Loader *L, LoaderStats *s) {
    s->corrupt_images = __atomic_load_n(&L->n_corrupt, __ATOMIC_RELAXED);
    s->replaced = __atomic_load_n(&L->n_replaced, __ATOMIC_RELAXED);
    s->skipped = __atomic_load_n(&L->n_skipped, __ATOMIC_RELAXED);
}

int loader_expand_shards(const char *const *patterns, int n, char ***paths, int *npaths, char *err,
                         size_t errlen) {
    char **out = NULL;
    int cnt = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        glob_t g;
        memset(&g, 0, sizeof g);
        int rc = glob(patterns[i], GLOB_ERR, NULL, &g);
        if (rc != 0 || g.gl_pathc == 0) {
            set_err(err, errlen, "no shard file matches %s", patterns[i]);
            globfree(&g);
            loader_free_paths(out, cnt);
            return -1;
        }
        for (size_t k = 0; k < g.gl_pathc; k++) {
            if (cnt == cap) {
                cap = cap ? 2 * cap : 64;
                char **no = realloc(out, (size_t)cap * sizeof(char *));
                if (!no) {
                    globfree(&g);
                    loader_free_paths(out, cnt);
                    set_err(err, errlen, "out of memory");
                    return -1;
                }
                out = no;
            }
            out[cnt] = strdup(g.gl_pathv[k]);
            if (!out[cnt]) {
                globfree(&g);
                loader_free_paths(out, cnt);
                set_err(err, errlen, "out of memory");
                return -1;
            }
            cnt++;
        }
        globfree(&g);
    }
    *paths = out;
    *npaths = cnt;
    return 0;
}

void loader_free_paths(char **paths, int n) {
    if (!paths) return;
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

int loader_expand_datasets(const LoaderDataset *ds, int nds, char ***paths, char ***labels,
                           int *npaths, char *err, size_t errlen) {
    char **out = NULL, **lab = NULL;
    int cnt = 0;
    for (int d = 0; d < nds; d++) {
        char **p = NULL;
        int np = 0;
        if (loader_expand_shards(ds[d].patterns, ds[d].n, &p, &np, err, errlen) != 0) {
            char why[512];
            snprintf(why, sizeof why, "%s", err ? err : "");
            set_err(err, errlen, "dataset %s: %s", ds[d].name, why);
            goto fail;
        }
        size_t len = strlen(ds[d].name) + 4;
        for (int k = 0; k < ds[d].n; k++) len += strlen(ds[d].patterns[k]) + 2;
        char *label = malloc(len);
        char **no = realloc(out, (size_t)(cnt + np + 1) * sizeof(char *));
        if (no) out = no;
        char **nl = realloc(lab, (size_t)(cnt + np + 1) * sizeof(char *));
        if (nl) lab = nl;
        int oom = !label || !no || !nl;
        if (!oom) {
            size_t at = (size_t)snprintf(label, len, "%s (", ds[d].name);
            for (int k = 0; k < ds[d].n; k++)
                at += (size_t)snprintf(label + at, len - at, "%s%s", k ? ", " : "", ds[d].patterns[k]);
            snprintf(label + at, len - at, ")");
        }
        for (int k = 0; k < np; k++) {
            if (oom) {
                free(p[k]);
                continue;
            }
            out[cnt] = p[k];
            lab[cnt++] = strdup(label);  // (NULL when out of memory: caught below)
            oom = !lab[cnt - 1];
        }
        free(label);
        free(p);
        if (oom) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    *paths = out;
    *labels = lab;
    *npaths = cnt;
    return 0;
fail:
    loader_free_paths(out, cnt);
    loader_free_paths(lab, cnt);
    return -1;
}
