// bench/loader.c: data-loading throughput. Build: make bench/loader; run: bench/loader [N_IMAGES]
//
// Makes a temporary shard of N (default 96) photo-like 512x384 JPEGs at quality 95 (what
// `vlmae pack` stores for a COCO image: short side 384, re-encoded), then measures, on one core:
//   read (pread) + decode, the train transform (full VLMAE augmentation and ALBEF's subset),
//   the eval transform, and decode + train transform together, at 256 and 384;
// and end to end through the Loader (batches of 32, prefetch 3) with 1..ncpu worker threads.
// Per-core numbers are images per CPU-second of the measuring thread (or of the process, for the
// loader, whose wall-clock rate is printed too), so a busy machine does not distort them much.
// Nothing is asserted (benchmarks never fail).
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/augment.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "engine/rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// CPU time of this thread / of the whole process: per-core rates that stay meaningful on a
// shared, oversubscribed machine (wall-clock rates are printed too).
static double cpu_thread(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double cpu_process(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Photo-like content: smooth gradients, a few blobs, and pixel noise (JPEG size and decode cost
// close to natural images at this size: ~60-120 KB at q95).
static void make_photo(Image *im, int h, int w, Rng *r) {
    image_alloc(im, h, w, 3);
    double cx[6], cy[6], rad[6], col[6][3];
    for (int k = 0; k < 6; k++) {
        cx[k] = rng_uniform(r) * w;
        cy[k] = rng_uniform(r) * h;
        rad[k] = 20 + rng_uniform(r) * 120;
        for (int c = 0; c < 3; c++) col[k][c] = rng_uniform(r) * 255;
    }
    double g0 = rng_uniform(r) * 255, g1 = rng_uniform(r) * 255;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v[3] = {g0 * x / w, g1 * y / h, 0.5 * (g0 + g1) * (x + y) / (w + h)};
            for (int k = 0; k < 6; k++) {
                double d = hypot(x - cx[k], y - cy[k]);
                double a = exp(-d * d / (2 * rad[k] * rad[k]));
                for (int c = 0; c < 3; c++) v[c] = v[c] * (1 - a) + col[k][c] * a;
            }
            uint8_t *p = im->px + ((size_t)y * w + x) * 3;
            for (int c = 0; c < 3; c++) {
                double n = v[c] + 18 * (rng_uniform(r) - 0.5) + 10 * sin(0.3 * x + 0.2 * y + c);
                p[c] = (uint8_t)(n < 0 ? 0 : n > 255 ? 255 : n);
            }
        }
}

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 96;
    if (N < 8) N = 8;
    char dir[] = "/tmp/bench_loader.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/bench-00000.h5", dir);
    ShardWriter *w = shard_writer_open(path, "bench", 0, err, sizeof err);
    Rng r;
    rng_seed(&r, 1);
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        Image im;
        make_photo(&im, 384, 512, &r);
        uint8_t *b;
        size_t n;
        image_encode_jpeg(&im, 95, &b, &n);
        total += n;
        shard_writer_add_image(w, b, n, im.h, im.w, "x", err, sizeof err);
        shard_writer_add_text(w, (uint32_t)i, "a photo of something on a table", 31, NULL, err,
                              sizeof err);
        free(b);
        image_free(&im);
    }
    if (shard_writer_finish(w, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    Shard *s = shard_open(path, err, sizeof err);
    printf("bench/loader: %d images 512x384, JPEG q95, mean %.1f KB\n", N, total / 1024.0 / N);
    uint8_t *buf = malloc(shard_max_image_nbytes(s));
    AugmentWork ws;
    augment_work_init(&ws);
    AugmentOptions full, albef;
    augment_defaults(&full);
    augment_albef(&albef);
    const int reps = 3;

    // decode only
    double t0 = cpu_thread();
    for (int k = 0; k < reps; k++)
        for (int i = 0; i < N; i++) {
            int64_t n = shard_read_image(s, i, buf, shard_max_image_nbytes(s), err, sizeof err);
            Image im;
            image_decode(buf, (size_t)n, &im, err, sizeof err);
            image_free(&im);
        }
    double dec = reps * N / (cpu_thread() - t0);
    printf("  read+decode                       %7.1f images/s/core\n", dec);

    Image *ims = malloc(sizeof(Image) * (size_t)N);
    for (int i = 0; i < N; i++) {
        int64_t n = shard_read_image(s, i, buf, shard_max_image_nbytes(s), err, sizeof err);
        image_decode(buf, (size_t)n, &ims[i], err, sizeof err);
    }
    int sizes[2] = {256, 384};
    for (int si = 0; si < 2; si++) {
        int S = sizes[si];
        float *out = malloc(sizeof(float) * 3 * S * S);
        float box[4] = {0.1f, 0.1f, 0.5f, 0.5f}, bo[4];
        for (int v = 0; v < 3; v++) {
            t0 = cpu_thread();
            for (int k = 0; k < reps; k++)
                for (int i = 0; i < N; i++) {
                    rng_seed_stream(&r, 7, (uint64_t)k, (uint64_t)i);
                    if (v == 0) augment_train_ws(&ims[i], box, S, &full, &r, &ws, out, bo);
                    else if (v == 1) augment_train_ws(&ims[i], box, S, &albef, &r, &ws, out, bo);
                    else augment_eval_ws(&ims[i], S, &ws, out);
                }
            double rate = reps * N / (cpu_thread() - t0);
            const char *name[3] = {"train transform (VLMAE full)", "train transform (ALBEF subset)",
                                   "eval transform (resize)"};
            printf("  %-32s  %7.1f images/s/core at %d  (decode+this: %.1f)\n", name[v], rate, S,
                   1.0 / (1.0 / dec + 1.0 / rate));
        }
        free(out);
    }
    for (int i = 0; i < N; i++) image_free(&ims[i]);
    free(ims);
    augment_work_free(&ws);
    free(buf);
    shard_close(s);

    // End to end through the Loader (needs the vocab for tokenization).
    const char *vocabs[] = {"data/vocab.txt", "../data/vocab.txt", NULL};
    Tokenizer *tok = NULL;
    for (int k = 0; vocabs[k] && !tok; k++) tok = tokenizer_load(vocabs[k], err, sizeof err);
    if (!tok) {
        printf("  (loader end-to-end skipped: run from the source tree for data/vocab.txt)\n");
    } else {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        const char *shards[1] = {path};
        for (int si = 0; si < 2; si++) {
            for (int th = 1; th <= ncpu; th *= 2) {
                LoaderConfig c;
                loader_config_defaults(&c);
                c.shards = shards;
                c.num_shards = 1;
                c.batch_size = 32;
                c.image_size = sizes[si];
                c.tok = tok;
                c.threads = th;
                c.prefetch = 3;
                Loader *L = loader_open(&c, err, sizeof err);
                if (!L) {
                    fprintf(stderr, "%s\n", err);
                    return 1;
                }
                Batch *b;
                loader_next(L, &b);  // warm-up
                int nb = 2 * (int)((N + 31) / 32) + 2;
                t0 = now();
                double c0 = cpu_process();
                for (int k = 0; k < nb; k++) loader_next(L, &b);
                double rate = nb * 32 / (now() - t0);
                double per_cpu = nb * 32 / (cpu_process() - c0);
                printf("  loader end-to-end, %2d thread(s)   %7.1f images/s wall at %d, %.1f per "
                       "CPU-second\n", th, rate, sizes[si], per_cpu);
                loader_close(L);
            }
        }
        tokenizer_free(tok);
    }
    unlink(path);
    rmdir(dir);
    return 0;
}
