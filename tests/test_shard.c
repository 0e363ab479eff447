// test_shard.c: HDF5 shard v1 writer/reader round trip, and clear errors for broken shards
// (truncated file, wrong version, missing dataset, chunked jpeg, not HDF5, leftover .tmp).
#define _GNU_SOURCE
#include "data/shard.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char dir[256];

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void copy_file(const char *src, const char *dst, long truncate_to) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
    if (truncate_to >= 0) CHECK(truncate(dst, truncate_to) == 0);
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

// Fake "JPEG" payloads: the shard layer stores bytes, it does not decode them.
static void make_bytes(uint8_t *b, size_t n, int seed) {
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i * 31 + (size_t)seed * 7 + (i >> 8));
}

#define NIMG 7
static size_t img_len(int i) { return i == 3 ? 0 : (size_t)(1000 + 3777 * i); }

static void write_sample(const char *path) {
    char err[512];
    ShardWriter *w = shard_writer_open(path, "test", 0, err, sizeof err);
    CHECK(w != NULL);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    uint8_t *b = malloc(100000);
    for (int i = 0; i < NIMG; i++) {
        make_bytes(b, img_len(i), i);
        char key[64];
        snprintf(key, sizeof key, "images/%03d.jpg", i);
        CHECK(shard_writer_add_image(w, b, img_len(i), 100 + i, 200 + i, key, err, sizeof err) == i);
        // a .tmp exists while writing? (only the spill file; the HDF5 file is written at finish)
        for (int t = 0; t < i % 3 + 1; t++) {
            char cap[64];
            snprintf(cap, sizeof cap, "caption %d of image %d", t, i);
            float box[4] = {0.1f * t, 0.2f, 0.5f, 0.25f};
            CHECK(shard_writer_add_text(w, (uint32_t)i, cap, strlen(cap), t == 1 ? box : NULL, err,
                                        sizeof err) >= 0);
        }
    }
    // an empty caption and a UTF-8 caption
    CHECK(shard_writer_add_text(w, 0, "", 0, NULL, err, sizeof err) >= 0);
    CHECK(shard_writer_add_text(w, 1, "caf\xC3\xA9", 5, NULL, err, sizeof err) >= 0);
    // invalid adds are refused
    CHECK(shard_writer_add_text(w, NIMG, "x", 1, NULL, err, sizeof err) < 0);
    CHECK(shard_writer_add_image(w, b, 10, 0, 10, "bad", err, sizeof err) < 0);
    CHECK(!exists(path));
    CHECK(shard_writer_finish(w, err, sizeof err) == 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(exists(path) && !exists(tmp));
    snprintf(tmp, sizeof tmp, "%s.jpeg.tmp", path);
    CHECK(!exists(tmp));
    free(b);
}

static void test_round_trip(void) {
    char path[512], err[512];
    path_in(path, sizeof path, "rt.h5");
    write_sample(path);
    Shard *s = shard_open(path, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(shard_num_images(s) == NIMG);
    CHECK(strcmp(shard_dataset(s), "test") == 0);
    CHECK(shard_vocab_hash(s) == 0);
    uint8_t *want = malloc(100000), *got = malloc(100000);
    size_t maxn = 0;
    for (int i = 0; i < NIMG; i++) {
        make_bytes(want, img_len(i), i);
        CHECK(shard_image_nbytes(s, i) == img_len(i));
        memset(got, 0xAB, 100000);
        CHECK(shard_read_image(s, i, got, 100000, err, sizeof err) == (int64_t)img_len(i));
        CHECK(memcmp(want, got, img_len(i)) == 0);
        int h, w;
        shard_image_hw(s, i, &h, &w);
        CHECK(h == 100 + i && w == 200 + i);
        char key[64];
        snprintf(key, sizeof key, "images/%03d.jpg", i);
        CHECK(strcmp(shard_image_key(s, i), key) == 0);
        if (img_len(i) > maxn) maxn = img_len(i);
    }
    CHECK(shard_max_image_nbytes(s) == maxn);
    // small buffer and out of range are errors, not crashes
    CHECK(shard_read_image(s, 6, got, 10, err, sizeof err) < 0 && strstr(err, path));
    CHECK(shard_read_image(s, NIMG, got, 100000, err, sizeof err) < 0);
    int64_t t = 0;
    for (int i = 0; i < NIMG; i++) {
        for (int k = 0; k < i % 3 + 1; k++, t++) {
            char cap[64];
            snprintf(cap, sizeof cap, "caption %d of image %d", k, i);
            size_t len;
            const char *c = shard_text_caption(s, t, &len);
            CHECK(strcmp(c, cap) == 0 && len == strlen(cap));
            CHECK(shard_text_image(s, t) == (uint32_t)i);
            float box[4];
            shard_text_box(s, t, box);
            if (k == 1) CHECK(fabsf(box[0] - 0.1f) < 1e-7f && box[1] == 0.2f && box[2] == 0.5f && box[3] == 0.25f);
            else CHECK(isnan(box[0]) && isnan(box[3]));
        }
    }
    size_t len;
    CHECK(strcmp(shard_text_caption(s, t, &len), "") == 0 && len == 0 && shard_text_image(s, t) == 0);
    t++;
    CHECK(strcmp(shard_text_caption(s, t, &len), "caf\xC3\xA9") == 0 && len == 5);
    t++;
    CHECK(shard_num_texts(s) == t);
    shard_close(s);
    // without keys
    s = shard_open_flags(path, SHARD_OPEN_NO_KEYS, err, sizeof err);
    CHECK(s && strcmp(shard_image_key(s, 0), "") == 0 && shard_num_texts(s) == t);
    shard_close(s);
    free(want);
    free(got);

    // The layout promise: /images/jpeg is contiguous and its bytes sit at H5Dget_offset.
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/images/jpeg", H5P_DEFAULT);
    hid_t pl = H5Dget_create_plist(d);
    CHECK(H5Pget_layout(pl) == H5D_CONTIGUOUS);
    CHECK(H5Dget_offset(d) != HADDR_UNDEF);
    H5Pclose(pl);
    H5Dclose(d);
    H5Fclose(f);
}

static void test_empty(void) {
    char path[512], err[512];
    path_in(path, sizeof path, "empty.h5");
    ShardWriter *w = shard_writer_open(path, NULL, 0, err, sizeof err);
    CHECK(w && shard_writer_finish(w, err, sizeof err) == 0);
    Shard *s = shard_open(path, err, sizeof err);
    CHECK(s && shard_num_images(s) == 0 && shard_num_texts(s) == 0);
    if (!s) fprintf(stderr, "%s\n", err);
    shard_close(s);
    // abort leaves nothing
    path_in(path, sizeof path, "aborted.h5");
    w = shard_writer_open(path, NULL, 0, err, sizeof err);
    uint8_t b[10] = {0};
    shard_writer_add_image(w, b, 10, 1, 1, "k", err, sizeof err);
    shard_writer_abort(w);
    CHECK(!exists(path));
}

static void expect_open_error(const char *path, const char *what) {
    char err[1024];
    Shard *s = shard_open(path, err, sizeof err);
    CHECK(s == NULL);
    if (s) {
        shard_close(s);
        return;
    }
    if (!strstr(err, path) || (what && !strstr(err, what))) {
        fprintf(stderr, "error for %s lacks the path or '%s': %s\n", path, what ? what : "", err);
        failures++;
    } else {
        printf("  ok: %s\n", err);
    }
}

static void test_broken(void) {
    char good[512], bad[512];
    path_in(good, sizeof good, "rt.h5");
    long size = file_size(good);
    CHECK(size > 0);
    // truncated at several points: the header, the middle, a few bytes short
    long cuts[] = {100, size / 2, size - 7, 0};
    for (int i = 0; i < 4; i++) {
        path_in(bad, sizeof bad, "trunc.h5");
        copy_file(good, bad, cuts[i]);
        expect_open_error(bad, cuts[i] ? "truncated" : "HDF5");
    }
    // wrong version
    path_in(bad, sizeof bad, "v2.h5");
    copy_file(good, bad, -1);
    hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "vlmae_shard_version", H5P_DEFAULT);
    int v = 2;
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Fclose(f);
    expect_open_error(bad, "version 2");
    // no version attribute
    path_in(bad, sizeof bad, "nover.h5");
    copy_file(good, bad, -1);
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "vlmae_shard_version");
    H5Fclose(f);
    expect_open_error(bad, "not a vlmae shard");
    // missing dataset
    path_in(bad, sizeof bad, "nobox.h5");
    copy_file(good, bad, -1);
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/texts/box", H5P_DEFAULT);
    H5Fclose(f);
    expect_open_error(bad, "/texts/box is missing");
    // missing group
    path_in(bad, sizeof bad, "noimages.h5");
    copy_file(good, bad, -1);
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/images", H5P_DEFAULT);
    H5Fclose(f);
    expect_open_error(bad, "missing");
    // chunked /images/jpeg (e.g. after h5repack) is refused with a reason
    path_in(bad, sizeof bad, "chunked.h5");
    copy_file(good, bad, -1);
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/images/jpeg", H5P_DEFAULT);
    hsize_t dims[1] = {(hsize_t)(file_size(good) > 0 ? 1 : 1)}, chunk[1] = {1};
    {
        // same byte count as the original
        hid_t g = H5Fopen(good, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t d = H5Dopen2(g, "/images/jpeg", H5P_DEFAULT);
        hid_t sp = H5Dget_space(d);
        H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
        H5Dclose(d);
        H5Fclose(g);
    }
    chunk[0] = 4096;
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, chunk);
    hid_t d = H5Dcreate2(f, "/images/jpeg", H5T_STD_U8LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Dclose(d);
    H5Pclose(pl);
    H5Sclose(sp);
    H5Fclose(f);
    expect_open_error(bad, "contiguous");
    // not HDF5 at all
    path_in(bad, sizeof bad, "text.h5");
    FILE *t = fopen(bad, "w");
    fputs("hello\n", t);
    fclose(t);
    expect_open_error(bad, "HDF5");
    // missing file
    path_in(bad, sizeof bad, "nope.h5");
    expect_open_error(bad, "No such file");
    // an inconsistent offsets table (caption_offsets not spanning the bytes)
    path_in(bad, sizeof bad, "badoff.h5");
    copy_file(good, bad, -1);
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    d = H5Dopen2(f, "/images/offsets", H5P_DEFAULT);
    uint64_t offs[NIMG + 1];
    H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offs);
    uint64_t tmp = offs[2];
    offs[2] = offs[4];
    offs[4] = tmp;
    H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offs);
    H5Dclose(d);
    H5Fclose(f);
    expect_open_error(bad, "decreases");
}

int main(void) {
    if (make_temp_dir(dir, sizeof dir, "test_shard.XXXXXX") != 0) return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);  // the test's own HDF5 calls are expected to be quiet
    test_round_trip();
    test_empty();
    test_broken();
    if (getenv("KEEP_SHARD_TEST")) {
        printf("kept %s\n", dir);
        return failures ? 1 : 0;
    }
    if (failures) {
        fprintf(stderr, "test_shard: %d failures (files kept in %s)\n", failures, dir);
        return 1;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("test_shard: ok\n");
    return 0;
}
