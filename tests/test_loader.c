// test_loader.c: the sharded loader. W ranks (W = 1, 2, 3, in-process) together see every sample
// exactly once per epoch, disjointly; batches are identical whatever the thread count and
// prefetch depth; seek/resume reproduces the batches exactly; eval mode covers every sample once
// in order; corrupt images are reported, counted and replaced (or skipped) deterministically; a
// dataset whose shards hold no text is an error naming it.
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/augment.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"

#include "check.h"

static char dir[256];
static Tokenizer *tok;
static char shard_paths[4][512];
static const char *shards[4];
static int total_texts = 0;
#define SIZE 32

static const char *words[] = {"dog", "cat", "a red car", "two people walking", "the sky",
                              "a bowl of fruit", "green", "tall building"};

// Shard k: images of varied sizes, 1..3 captions each; `corrupt_row` >= 0 stores garbage there.
static void make_shard(int k, int nimg, int corrupt_row) {
    snprintf(shard_paths[k], sizeof shard_paths[k], "%s/s%d.h5", dir, k);
    shards[k] = shard_paths[k];
    char err[512];
    ShardWriter *w = shard_writer_open(shard_paths[k], "test", 0, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    for (int i = 0; i < nimg; i++) {
        Image im;
        int h = 20 + (i * 7 + k * 3) % 30, wd = 24 + (i * 11) % 40;
        image_alloc(&im, h, wd, 3);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < wd; x++) {
                uint8_t *p = im.px + ((size_t)y * wd + x) * 3;
                p[0] = (uint8_t)(x * 6 + i * 17);
                p[1] = (uint8_t)(y * 5 + k * 50);
                p[2] = (uint8_t)((x ^ y) * 3);
            }
        uint8_t *b;
        size_t n;
        if (image_encode_jpeg(&im, 85, &b, &n) != 0) exit(1);
        if (i == corrupt_row) memset(b + 2, 0x55, n - 2);  // keeps the SOI marker, rest garbage
        char key[32];
        snprintf(key, sizeof key, "k%d/%d", k, i);
        int64_t row = shard_writer_add_image(w, b, n, h, wd, key, err, sizeof err);
        free(b);
        image_free(&im);
        int nt = 1 + (i + k) % 3;
        for (int t = 0; t < nt; t++) {
            char cap[128];
            snprintf(cap, sizeof cap, "%s number %d of %d", words[(i + t + k) % 8], i, k);
            float box[4] = {0.25f, 0.25f, 0.5f, 0.5f};
            shard_writer_add_text(w, (uint32_t)row, cap, strlen(cap), t == 0 && i % 2 ? box : NULL,
                                  err, sizeof err);
            total_texts++;
        }
    }
    if (shard_writer_finish(w, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

static void base_config(LoaderConfig *c, int nshards) {
    loader_config_defaults(c);
    c->shards = shards;
    c->num_shards = nshards;
    c->batch_size = 4;
    c->seed = 1234;
    c->image_size = SIZE;
    c->max_len = 12;
    c->tok = tok;
    c->threads = 2;
    c->prefetch = 2;
    c->quiet = 1;
}

static Loader *open_or_die(const LoaderConfig *c) {
    char err[1024];
    Loader *L = loader_open(c, err, sizeof err);
    if (!L) {
        fprintf(stderr, "loader_open: %s\n", err);
        exit(1);
    }
    return L;
}

// Copy of a batch, to compare later.
typedef struct {
    int B;
    float *image;
    int32_t *ids, *mask;
    float *box;
    int64_t *image_id, *texts;
    int64_t epoch, step;
} Snap;

static Snap snap(const Batch *b) {
    Snap s;
    s.B = b->B;
    size_t npx = (size_t)3 * b->H * b->W;
    s.image = malloc(sizeof(float) * npx * (size_t)(b->B ? b->B : 1));
    memcpy(s.image, b->image, sizeof(float) * npx * (size_t)b->B);
    s.ids = malloc(sizeof(int32_t) * (size_t)(b->B * b->T + 1));
    memcpy(s.ids, b->text_ids, sizeof(int32_t) * (size_t)(b->B * b->T));
    s.mask = malloc(sizeof(int32_t) * (size_t)(b->B * b->T + 1));
    memcpy(s.mask, b->text_mask, sizeof(int32_t) * (size_t)(b->B * b->T));
    s.box = malloc(sizeof(float) * (size_t)(4 * b->B + 1));
    memcpy(s.box, b->box, sizeof(float) * (size_t)(4 * b->B));
    s.image_id = malloc(sizeof(int64_t) * (size_t)(b->B + 1));
    memcpy(s.image_id, b->image_id, sizeof(int64_t) * (size_t)b->B);
    s.texts = malloc(sizeof(int64_t) * (size_t)(b->B + 1));
    memcpy(s.texts, loader_batch_texts(b), sizeof(int64_t) * (size_t)b->B);
    loader_batch_position(b, &s.epoch, &s.step);
    return s;
}

static void snap_free(Snap *s) {
    free(s->image);
    free(s->ids);
    free(s->mask);
    free(s->box);
    free(s->image_id);
    free(s->texts);
}

// Bitwise equality (NaN boxes compare equal as bits).
static int snap_eq(const Snap *a, const Batch *b) {
    if (a->B != b->B) return 0;
    size_t npx = (size_t)3 * b->H * b->W;
    int64_t e, s;
    loader_batch_position(b, &e, &s);
    return a->epoch == e && a->step == s &&
           !memcmp(a->image, b->image, sizeof(float) * npx * (size_t)b->B) &&
           !memcmp(a->ids, b->text_ids, sizeof(int32_t) * (size_t)(b->B * b->T)) &&
           !memcmp(a->mask, b->text_mask, sizeof(int32_t) * (size_t)(b->B * b->T)) &&
           !memcmp(a->box, b->box, sizeof(float) * (size_t)(4 * b->B)) &&
           !memcmp(a->image_id, b->image_id, sizeof(int64_t) * (size_t)b->B) &&
           !memcmp(a->texts, loader_batch_texts(b), sizeof(int64_t) * (size_t)b->B);
}

// Every rank of W, one epoch: union = each text exactly once (drop_last 0), or disjoint with
// steps*B*W samples (drop_last 1).
static void test_sharding(int W, int drop_last) {
    LoaderConfig c;
    base_config(&c, 3);
    c.world = W;
    c.drop_last = drop_last;
    Loader *L[3];
    for (int r = 0; r < W; r++) {
        c.rank = r;
        L[r] = open_or_die(&c);
    }
    int64_t M = loader_num_texts(L[0]);
    CHECK(M == total_texts);
    int64_t steps = loader_steps_per_epoch(L[0]);
    int64_t gb = (int64_t)c.batch_size * W;
    CHECK(steps == (drop_last ? M / gb : (M + gb - 1) / gb));
    for (int epoch = 0; epoch < 2; epoch++) {
        int *seen = calloc((size_t)M, sizeof(int));
        int64_t got = 0;
        for (int64_t s = 0; s < steps; s++) {
            for (int r = 0; r < W; r++) {
                Batch *b;
                CHECK(loader_next(L[r], &b) == 1);
                int64_t e, st;
                loader_batch_position(b, &e, &st);
                CHECK(e == epoch && st == s);
                if (s < steps - 1 || drop_last) CHECK(b->B == c.batch_size);
                const int64_t *t = loader_batch_texts(b);
                for (int i = 0; i < b->B; i++) {
                    CHECK(t[i] >= 0 && t[i] < M);
                    if (t[i] >= 0 && t[i] < M) seen[t[i]]++;
                    CHECK(b->image_id[i] == loader_text_image(L[r], t[i]));
                }
                got += b->B;
            }
        }
        int dup = 0, missing = 0;
        for (int64_t t = 0; t < M; t++) {
            if (seen[t] > 1) dup++;
            if (seen[t] == 0) missing++;
        }
        CHECK(dup == 0);
        if (drop_last) CHECK(got == steps * gb && missing == M - steps * gb);
        else CHECK(got == M && missing == 0);
        free(seen);
        int64_t e, s;
        loader_position(L[0], &e, &s);
        CHECK(e == epoch + 1 && s == 0);
    }
    for (int r = 0; r < W; r++) loader_close(L[r]);
}

// The same batches whatever threads/prefetch; consecutive epochs differ.
static void test_determinism(void) {
    LoaderConfig c;
    base_config(&c, 3);
    c.threads = 1;
    c.prefetch = 1;
    Loader *A = open_or_die(&c);
    c.threads = 5;
    c.prefetch = 4;
    Loader *B = open_or_die(&c);
    int64_t steps = loader_steps_per_epoch(A);
    int n = (int)(2 * steps + 3);
    Snap first = {0};
    for (int k = 0; k < n; k++) {
        Batch *a, *b;
        CHECK(loader_next(A, &a) == 1 && loader_next(B, &b) == 1);
        Snap s = snap(a);
        CHECK(snap_eq(&s, b));
        if (k == 0) first = s;
        else if (k == steps) {
            // epoch 1 step 0 differs from epoch 0 step 0 (order and augmentation)
            CHECK(memcmp(first.texts, s.texts, sizeof(int64_t) * (size_t)s.B) ||
                  memcmp(first.image, s.image, sizeof(float) * 3 * SIZE * SIZE * (size_t)s.B));
            snap_free(&s);
        } else {
            snap_free(&s);
        }
    }
    snap_free(&first);
    // sanity on content: normalised pixel range, tokens, mask, boxes
    Batch *b;
    CHECK(loader_next(A, &b) == 1);
    CHECK(b->H == SIZE && b->W == SIZE && b->T == 12 && b->B == 4);
    for (size_t i = 0; i < (size_t)b->B * 3 * SIZE * SIZE; i++) {
        if (!(b->image[i] > -2.0f && b->image[i] < 2.3f)) {
            CHECK(!"pixel out of the normalised range");
            break;
        }
    }
    int32_t ids[12], mask[12];
    for (int i = 0; i < b->B; i++) {
        const char *cap = loader_text_caption(A, loader_batch_texts(b)[i]);
        int n2 = tokenizer_encode_padded(tok, cap, ids, mask, 12);
        CHECK(n2 > 1 && !memcmp(ids, b->text_ids + i * 12, sizeof ids) &&
              !memcmp(mask, b->text_mask + i * 12, sizeof mask));
        CHECK(b->text_ids[i * 12] == tokenizer_cls_id(tok));
        const float *bx = b->box + 4 * i;
        if (!isnan(bx[0])) CHECK(bx[0] >= 0 && bx[1] >= 0 && bx[0] + bx[2] <= 1.0001f && bx[1] + bx[3] <= 1.0001f);
    }
    loader_close(A);
    loader_close(B);
}

// Run K steps, note the position, continue: a fresh loader seeking there gives the same batches;
// seeking the first loader back reproduces them too. Crosses an epoch boundary.
static void test_resume(void) {
    LoaderConfig c;
    base_config(&c, 3);
    c.world = 2;
    c.rank = 1;
    Loader *A = open_or_die(&c);
    int64_t steps = loader_steps_per_epoch(A);
    int K = (int)steps - 2, n = 6;
    Batch *b;
    for (int k = 0; k < K; k++) CHECK(loader_next(A, &b) == 1);
    int64_t e, s;
    loader_position(A, &e, &s);
    CHECK(e == 0 && s == K);
    Snap after[6];
    for (int k = 0; k < n; k++) {
        CHECK(loader_next(A, &b) == 1);
        after[k] = snap(b);
    }
    CHECK(after[2].epoch == 1 && after[2].step == 0);
    c.threads = 3;
    Loader *R = open_or_die(&c);
    CHECK(loader_seek(R, e, s) == 0);
    for (int k = 0; k < n; k++) {
        CHECK(loader_next(R, &b) == 1);
        CHECK(snap_eq(&after[k], b));
    }
    // seek back on the first loader, mid-flight
    CHECK(loader_seek(A, e, s) == 0);
    for (int k = 0; k < n; k++) {
        CHECK(loader_next(A, &b) == 1);
        CHECK(snap_eq(&after[k], b));
    }
    // (epoch, steps) is (epoch+1, 0)
    CHECK(loader_seek(R, 0, steps) == 0);
    CHECK(loader_next(R, &b) == 1 && snap_eq(&after[2], b));
    CHECK(loader_seek(R, 0, steps + 1) == -1);
    for (int k = 0; k < n; k++) snap_free(&after[k]);
    loader_close(A);
    loader_close(R);
}

// Eval: identity order, no augmentation, all samples; W = 2, last batches short.
static void test_eval(void) {
    LoaderConfig c;
    base_config(&c, 3);
    c.eval = 1;
    c.world = 2;
    c.batch_size = 5;
    Loader *L[2];
    for (int r = 0; r < 2; r++) {
        c.rank = r;
        L[r] = open_or_die(&c);
    }
    int64_t M = loader_num_texts(L[0]);
    int64_t steps = loader_steps_per_epoch(L[0]);
    CHECK(steps == (M + 9) / 10);
    int64_t expect = 0;
    Snap first = {0};
    for (int64_t s = 0; s < steps; s++) {
        for (int r = 0; r < 2; r++) {
            Batch *b;
            CHECK(loader_next(L[r], &b) == 1);
            int64_t n = M - (s * 10 + r * 5);
            n = n > 5 ? 5 : n < 0 ? 0 : n;
            CHECK(b->B == n);
            for (int i = 0; i < b->B; i++) CHECK(loader_batch_texts(b)[i] == expect++);
            if (s == 0 && r == 0) first = snap(b);
        }
    }
    CHECK(expect == M);
    Batch *b;
    CHECK(loader_next(L[0], &b) == 0);
    CHECK(loader_next(L[0], &b) == 0);
    // a second pass is identical
    CHECK(loader_seek(L[0], 0, 0) == 0);
    CHECK(loader_next(L[0], &b) == 1 && snap_eq(&first, b));
    // and the pixels are the plain eval transform of the stored image
    {
        char err[256];
        Shard *s = shard_open(shards[0], err, sizeof err);
        size_t nb = shard_image_nbytes(s, 0);
        uint8_t *bytes = malloc(nb);
        shard_read_image(s, 0, bytes, nb, err, sizeof err);
        Image im;
        CHECK(image_decode(bytes, nb, &im, err, sizeof err) == 0);
        float *ref = malloc(sizeof(float) * 3 * SIZE * SIZE);
        augment_eval(&im, SIZE, ref);
        CHECK(!memcmp(ref, b->image, sizeof(float) * 3 * SIZE * SIZE));
        free(ref);
        image_free(&im);
        free(bytes);
        shard_close(s);
    }
    snap_free(&first);
    loader_close(L[0]);
    loader_close(L[1]);
}

// Shard 3 has a corrupt image (row 2). Replace mode: never served, batches full, counted.
static void test_corrupt(void) {
    LoaderConfig c;
    base_config(&c, 4);
    Loader *L = open_or_die(&c);
    int64_t M = loader_num_texts(L);
    // texts of the corrupt image
    int64_t bad_img = -1;
    for (int64_t t = 0; t < M; t++) {
        const char *cap = loader_text_caption(L, t);
        if (strstr(cap, "number 2 of 3")) bad_img = loader_text_image(L, t);
    }
    CHECK(bad_img >= 0);
    int64_t bad_texts = 0;
    for (int64_t t = 0; t < M; t++) bad_texts += loader_text_image(L, t) == bad_img;
    int64_t steps = loader_steps_per_epoch(L);
    Snap keep[64];
    int nkeep = 0;
    int64_t served_bad = 0;
    for (int64_t s = 0; s < steps; s++) {
        Batch *b;
        CHECK(loader_next(L, &b) == 1);
        CHECK(b->B == c.batch_size);
        for (int i = 0; i < b->B; i++) served_bad += b->image_id[i] == bad_img;
        if (nkeep < 64) keep[nkeep++] = snap(b);
    }
    CHECK(served_bad == 0);
    LoaderStats st;
    loader_stats(L, &st);
    CHECK(st.corrupt_images == 1);
    CHECK(st.replaced >= 1 && st.replaced <= bad_texts);
    CHECK(st.skipped == 0);
    // deterministic: a different thread count gives the same replacements
    c.threads = 4;
    Loader *L2 = open_or_die(&c);
    for (int k = 0; k < nkeep; k++) {
        Batch *b;
        CHECK(loader_next(L2, &b) == 1 && snap_eq(&keep[k], b));
    }
    for (int k = 0; k < nkeep; k++) snap_free(&keep[k]);
    loader_close(L);
    loader_close(L2);
    // skip mode: shorter batches, counted
    c.skip_corrupt = 1;
    c.drop_last = 0;
    L = open_or_die(&c);
    steps = loader_steps_per_epoch(L);
    int64_t got = 0;
    for (int64_t s = 0; s < steps; s++) {
        Batch *b;
        CHECK(loader_next(L, &b) == 1);
        for (int i = 0; i < b->B; i++) CHECK(b->image_id[i] != bad_img);
        got += b->B;
    }
    loader_stats(L, &st);
    if (!(got == M - bad_texts && st.skipped == bad_texts && st.corrupt_images == 1))
        fprintf(stderr, "got %lld M %lld bad_texts %lld skipped %lld corrupt %lld\n", (long long)got, (long long)M, (long long)bad_texts, (long long)st.skipped, (long long)st.corrupt_images);
    CHECK(got == M - bad_texts && st.skipped == bad_texts && st.corrupt_images == 1);
    loader_close(L);
}

// Eval by image (each image once, with its first caption) and a text-only pass.
static void test_by_image(void) {
    LoaderConfig c;
    base_config(&c, 3);
    c.eval = 1;
    c.by_image = 1;
    c.batch_size = 4;
    Loader *L = open_or_die(&c);
    int64_t NI = loader_num_images(L);
    CHECK(loader_num_samples(L) == NI && NI == 9 + 1 + 6);
    int64_t next = 0;
    Batch *b;
    while (loader_next(L, &b) == 1) {
        for (int i = 0; i < b->B; i++) {
            CHECK(b->image_id[i] == next);
            int64_t t = loader_batch_texts(b)[i];
            CHECK(t >= 0 && loader_text_image(L, t) == next);
            CHECK(t == 0 || loader_text_image(L, t - 1) != next);  // the first caption
            next++;
        }
    }
    CHECK(next == NI);
    loader_close(L);
    // text-only: zero images, same tokens as the normal eval pass
    base_config(&c, 3);
    c.eval = 1;
    Loader *A = open_or_die(&c);
    c.no_images = 1;
    Loader *T = open_or_die(&c);
    Batch *a, *t;
    int n = 0;
    while (loader_next(A, &a) == 1) {
        CHECK(loader_next(T, &t) == 1);
        CHECK(a->B == t->B && !memcmp(a->text_ids, t->text_ids, sizeof(int32_t) * (size_t)(a->B * a->T)));
        CHECK(!memcmp(a->image_id, t->image_id, sizeof(int64_t) * (size_t)a->B));
        for (size_t k = 0; k < (size_t)t->B * 3 * SIZE * SIZE; k++)
            if (t->image[k] != 0) {
                CHECK(!"text-only batch has pixels");
                break;
            }
        n += a->B;
    }
    CHECK(n == total_texts && loader_next(T, &t) == 0);
    loader_close(A);
    loader_close(T);
}

// two_views (objective tcl): the first view and everything else are unchanged; image2 is a second,
// different augmentation, reproducible whatever the threads; eval mode copies the image; without
// the option image2 is NULL.
static void test_two_views(void) {
    LoaderConfig c;
    base_config(&c, 3);
    Loader *P = open_or_die(&c);
    c.two_views = 1;
    Loader *A = open_or_die(&c);
    c.threads = 4;
    Loader *B = open_or_die(&c);
    size_t npx = (size_t)3 * SIZE * SIZE;
    for (int k = 0; k < 3; k++) {
        Batch *p, *a, *b;
        CHECK(loader_next(P, &p) == 1 && loader_next(A, &a) == 1 && loader_next(B, &b) == 1);
        CHECK(p->image2 == NULL && a->image2 != NULL && b->image2 != NULL);
        Snap s = snap(p);
        CHECK(snap_eq(&s, a));
        snap_free(&s);
        CHECK(!memcmp(a->image2, b->image2, sizeof(float) * npx * (size_t)a->B));
        for (int i = 0; i < a->B; i++)
            CHECK(memcmp(a->image + i * npx, a->image2 + i * npx, sizeof(float) * npx) != 0);
    }
    loader_close(P);
    loader_close(A);
    loader_close(B);
    base_config(&c, 3);
    c.eval = 1;
    c.two_views = 1;
    Loader *E = open_or_die(&c);
    Batch *e;
    CHECK(loader_next(E, &e) == 1 && e->image2 && !memcmp(e->image, e->image2, sizeof(float) * npx * (size_t)e->B));
    loader_close(E);
}

// An empty shard (a slice whose images were all broken) in the middle of the list is harmless.
static void test_empty_shard(void) {
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/empty.h5", dir);
    ShardWriter *w = shard_writer_open(path, "test", 0, err, sizeof err);
    CHECK(w && shard_writer_finish(w, err, sizeof err) == 0);
    const char *list[4] = {path, shards[1], path, shards[2]};
    for (int by_image = 0; by_image < 2; by_image++) {
        LoaderConfig c;
        base_config(&c, 4);
        c.shards = list;
        c.eval = 1;
        c.by_image = by_image;
        Loader *L = open_or_die(&c);
        Loader *R = NULL;
        {
            const char *ref[2] = {shards[1], shards[2]};
            c.shards = ref;
            c.num_shards = 2;
            R = open_or_die(&c);
        }
        CHECK(loader_num_samples(L) == loader_num_samples(R));
        Batch *a, *b;
        while (loader_next(R, &b) == 1) {
            CHECK(loader_next(L, &a) == 1);
            CHECK(a->B == b->B && !memcmp(a->image, b->image, sizeof(float) * 3 * SIZE * SIZE * (size_t)a->B));
            CHECK(!memcmp(a->image_id, b->image_id, sizeof(int64_t) * (size_t)a->B));
        }
        CHECK(loader_next(L, &a) == 0);
        loader_close(L);
        loader_close(R);
    }
}

// A dataset whose shards hold no text is an error naming it and its pattern; it used to drop out
// of the sample space without a word (data.datasets=[{name: coco, shards: [empty]}, {name: albef,
// ...}] trained on albef alone). Empty shards inside a dataset stay harmless (above).
static void test_empty_dataset(void) {
    char path[600], pat[600], err[1024];
    snprintf(path, sizeof path, "%s/coco-00000.h5", dir);
    snprintf(pat, sizeof pat, "%s/coco-*.h5", dir);
    ShardWriter *w = shard_writer_open(path, "coco", 0, err, sizeof err);
    CHECK(w && shard_writer_finish(w, err, sizeof err) == 0);
    const char *coco[1] = {pat}, *albef[2] = {shards[1], shards[2]};
    LoaderDataset ds[2] = {{"coco", coco, 1}, {"albef", albef, 2}};
    char **paths = NULL, **labels = NULL;
    int np = 0;
    CHECKF(loader_expand_datasets(ds, 2, &paths, &labels, &np, err, sizeof err) == 0 && np == 3, "%s", err);
    if (np != 3) return;
    CHECK(!strcmp(paths[0], path) && !strcmp(paths[2], shards[2]));
    CHECKF(strstr(labels[0], "coco") && strstr(labels[0], pat) && strstr(labels[1], "albef"), "%s", labels[0]);
    LoaderConfig c;
    base_config(&c, np);
    c.shards = (const char *const *)paths;
    c.shard_dataset = (const char *const *)labels;
    Loader *L = loader_open(&c, err, sizeof err);
    CHECKF(L == NULL && strstr(err, "dataset coco (") && strstr(err, pat) && strstr(err, "holds no texts"),
           "an empty dataset next to a good one: %s", L ? "opened" : err);
    loader_close(L);
    // The good dataset alone opens; so do both when the empty shard sits inside albef.
    c.shards = (const char *const *)paths + 1;
    c.shard_dataset = (const char *const *)labels + 1;
    c.num_shards = 2;
    L = loader_open(&c, err, sizeof err);
    CHECKF(L != NULL, "%s", err);
    loader_close(L);
    const char *mixed[3] = {path, shards[1], shards[2]}, *same[3] = {"albef", "albef", "albef"};
    c.shards = mixed;
    c.shard_dataset = same;
    c.num_shards = 3;
    L = loader_open(&c, err, sizeof err);
    CHECKF(L != NULL, "%s", err);
    loader_close(L);
    loader_free_paths(paths, np);
    loader_free_paths(labels, np);
    // A pattern that matches nothing names its dataset.
    const char *none[1] = {"/nonexistent/x-*.h5"};
    LoaderDataset bad = {"sbu", none, 1};
    CHECKF(loader_expand_datasets(&bad, 1, &paths, &labels, &np, err, sizeof err) == -1 &&
           strstr(err, "dataset sbu") && strstr(err, "/nonexistent/x-*.h5"), "%s", err);
}

static void test_errors(void) {
    LoaderConfig c;
    base_config(&c, 3);
    char err[1024];
    const char *bad[2] = {shards[0], "/nonexistent/shard-00000.h5"};
    c.shards = bad;
    c.num_shards = 2;
    CHECK(loader_open(&c, err, sizeof err) == NULL && strstr(err, "/nonexistent/shard-00000.h5"));
    base_config(&c, 1);
    c.batch_size = 1000;
    CHECK(loader_open(&c, err, sizeof err) == NULL && strstr(err, "fewer than one global batch"));
    c.tok = NULL;
    CHECK(loader_open(&c, err, sizeof err) == NULL);
    // glob expansion
    char pat[600];
    snprintf(pat, sizeof pat, "%s/s*.h5", dir);
    const char *pats[1] = {pat};
    char **paths;
    int np;
    CHECK(loader_expand_shards(pats, 1, &paths, &np, err, sizeof err) == 0 && np == 4 &&
          !strcmp(paths[0], shards[0]) && !strcmp(paths[3], shards[3]));
    loader_free_paths(paths, np);
    snprintf(pat, sizeof pat, "%s/nothing*.h5", dir);
    CHECK(loader_expand_shards(pats, 1, &paths, &np, err, sizeof err) == -1 && strstr(err, "nothing"));
}

int main(void) {
    if (make_temp_dir(dir, sizeof dir, "test_loader.XXXXXX") != 0) return 1;
    const char *src = getenv("top_srcdir");
    char vocab[1024], err[512];
    snprintf(vocab, sizeof vocab, "%s/data/vocab.txt", src && *src ? src : ".");
    tok = tokenizer_load(vocab, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "test_loader: %s\n", err);
        return 1;
    }
    make_shard(0, 9, -1);
    make_shard(1, 1, -1);
    make_shard(2, 6, -1);
    int clean_texts = total_texts;
    make_shard(3, 5, 2);
    total_texts = clean_texts;  // tests on shards 0..2 count these
    for (int W = 1; W <= 3; W++) {
        test_sharding(W, 0);
        test_sharding(W, 1);
    }
    test_determinism();
    test_resume();
    test_eval();
    test_corrupt();
    test_by_image();
    test_two_views();
    test_empty_shard();
    test_empty_dataset();
    test_errors();
    tokenizer_free(tok);
    if (failures) {
        fprintf(stderr, "test_loader: %d failures (files kept in %s)\n", failures, dir);
        return 1;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("test_loader: ok\n");
    return 0;
}
