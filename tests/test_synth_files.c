// test_synth_files.c: the synthetic dataset generator (src/data/synth.c): files and command line.
//
// - Determinism: the same seed writes byte-identical files (every JSON file and every JPEG);
//   another seed writes different ones; image k does not depend on --images.
// - Every image decodes to size x size RGB, as a 4:4:4 JPEG; every annotation file is a JSON list.
// - Command line: --help, and usage errors (exit 2) for bad or missing options.
// The semantic checks (every caption, region, answer, statement and expression true of its
// image) are in tests/test_synth.sh, which uses this program as a generator:
//   test_synth_files --generate ARGS...   runs synth_main(ARGS) (when vlmae lacks `synth`).
#define _POSIX_C_SOURCE 200809L // mkdtemp
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/synth.h"
#include "data/image.h"
#include "engine/common.h"

#include "check.h"

static const char *JSON_FILES[] = {
    "pretrain.json", "pretrain_heldout.json", "vg.json", "vg_heldout.json", "scenes.json",
    "retrieval_train.json", "retrieval_val.json", "retrieval_test.json",
    "vqa_train.json", "vqa_val.json", "vqa_test.json", "answer_list.json",
    "ve_train.json", "ve_val.json", "ve_test.json",
    "nlvr_train.json", "nlvr_val.json", "nlvr_test.json",
    "grounding_train.json", "grounding_val.json", "grounding_testA.json", "grounding_testB.json"};
#define NJSON (sizeof(JSON_FILES) / sizeof(*JSON_FILES))

static int run(int n, ...) {
    char *argv[32];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[n] = NULL;
    return synth_main(n, argv);
}

// Whole file into memory; NULL if missing.
static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = mallocCheck((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    b[*n] = 0;
    return b;
}

// 1 when the JPEG's frame header (SOF0/1/2) gives every component 1x1 sampling (4:4:4), 0 when
// not, -1 when there is none.
static int jpeg_is_444(const uint8_t *b, size_t n) {
    size_t p = 2;
    while (p + 4 <= n && b[p] == 0xFF) {
        int m = b[p + 1];
        size_t len = (size_t)b[p + 2] << 8 | b[p + 3];
        if (m >= 0xC0 && m <= 0xC2) {
            if (p + 10 > n) return -1;
            int nc = b[p + 9];
            for (int k = 0; k < nc; k++)
                if (p + 11 + 3 * (size_t)k >= n || b[p + 11 + 3 * k] != 0x11) return 0;
            return 1;
        }
        p += 2 + len;
    }
    return -1;
}

// 1 same, 0 different, -1 a file missing.
static int same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[1024], pb[1024];
    snprintf(pa, sizeof(pa), "%s/%s", dir_a, name);
    snprintf(pb, sizeof(pb), "%s/%s", dir_b, name);
    size_t na, nb;
    uint8_t *a = slurp(pa, &na), *b = slurp(pb, &nb);
    int r = (!a || !b) ? -1 : (na == nb && !memcmp(a, b, na));
    free(a);
    free(b);
    return r;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--generate")) return synth_main(argc - 1, argv + 1);

    char root[512];
    if (make_temp_dir(root, sizeof(root), "vlmae_test_synth_XXXXXX") != 0) return 1;
    char a[600], b[600], c[600], d[600];
    snprintf(a, sizeof(a), "%s/a", root);
    snprintf(b, sizeof(b), "%s/b/nested", root); // --out creates missing parents
    snprintf(c, sizeof(c), "%s/c", root);
    snprintf(d, sizeof(d), "%s/d", root);

    // Command line.
    CHECKF(run(2, "synth", "--help") == 0, "--help exits 0");
    CHECKF(run(3, "synth", "--images", "50") == 2, "missing --out is a usage error");
    CHECKF(run(5, "synth", "--out", a, "--images", "2") == 2, "--images 2 refused");
    CHECKF(run(5, "synth", "--out", a, "--size", "abc") == 2, "--size abc refused");
    CHECKF(run(5, "synth", "--out", a, "--bogus", "1") == 2, "unknown option refused");
    CHECKF(run(4, "synth", "--out", a, "--seed") == 2, "missing value refused");
    CHECKF(access(a, F_OK) != 0, "usage errors create nothing");

    // Determinism.
    CHECKF(run(10, "synth", "--out", a, "--seed", "7", "--images", "60", "--size", "64", "--quiet") == 0, "generate a");
    CHECKF(run(10, "synth", "--out", b, "--seed", "7", "--images", "60", "--size", "64", "--quiet") == 0, "generate b");
    CHECKF(run(10, "synth", "--out", c, "--seed", "8", "--images", "60", "--size", "64", "--quiet") == 0, "generate c");
    CHECKF(run(10, "synth", "--out", d, "--seed", "7", "--images", "20", "--size", "64", "--quiet") == 0, "generate d");
    for (size_t k = 0; k < NJSON; k++) {
        CHECKF(same_file(a, b, JSON_FILES[k]) == 1, "same seed, same %s", JSON_FILES[k]);
    }
    int images_same = 1;
    for (int i = 1; i <= 60; i++) {
        char name[64];
        snprintf(name, sizeof(name), "images/%06d.jpg", i);
        images_same &= same_file(a, b, name) == 1;
    }
    CHECKF(images_same, "same seed, same 60 JPEGs");
    CHECKF(same_file(a, c, "pretrain.json") == 0 && same_file(a, c, "images/000001.jpg") == 0 &&
              same_file(a, c, "scenes.json") == 0,
           "another seed, other data");
    CHECKF(same_file(a, d, "images/000005.jpg") == 1, "image 5 does not depend on --images");

    // Images decode; JSON files are lists (the full parse is in test_synth.sh).
    int decoded = 1;
    for (int i = 1; i <= 60; i++) {
        char path[1024], err[256];
        snprintf(path, sizeof(path), "%s/images/%06d.jpg", a, i);
        Image im;
        if (image_read_file(path, &im, err, sizeof(err)) != 0 || im.w != 64 || im.h != 64 || im.c != 3) {
            fail("image %s: %s", path, err);
            decoded = 0;
        }
        image_free(&im);
    }
    CHECKF(decoded, "every image decodes to 64x64 RGB");
    // 4:4:4 chroma: the captions are about colours (4:2:0 smears them at the shape edges).
    int full_chroma = 1;
    for (int i = 1; i <= 60; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/images/%06d.jpg", a, i);
        size_t nb;
        uint8_t *jb = slurp(path, &nb);
        full_chroma &= jb && jpeg_is_444(jb, nb) == 1;
        free(jb);
    }
    CHECKF(full_chroma, "every image is a 4:4:4 JPEG");
    for (size_t k = 0; k < NJSON; k++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", a, JSON_FILES[k]);
        size_t n;
        char *s = (char *)slurp(path, &n);
        CHECKF(s && n >= 4 && s[0] == '[' && s[n - 2] == ']' && s[n - 1] == '\n', "%s is a JSON list", JSON_FILES[k]);
        free(s);
    }
    // 60 images: 48 train, 6 val, 6 test; 3 pre-training captions per train image.
    size_t n;
    char path[1024];
    snprintf(path, sizeof(path), "%s/pretrain.json", a);
    char *s = (char *)slurp(path, &n);
    int entries = 0;
    for (char *p = s; p && (p = strstr(p, "\"caption\"")); p++) entries++;
    CHECKF(entries == 48 * 3, "pretrain.json: %d entries, want 144", entries);
    free(s);

    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", root);
    printf("test_synth_files: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
