// shard_write.c: the shard writer (shard.h): images, texts and task tables are gathered in memory
// (the JPEG bytes spilled to PATH.jpeg.tmp), then shard_writer_finish writes the HDF5 file as
// PATH.tmp and renames it to PATH when complete.
#define _GNU_SOURCE
#include "data/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/shard_internal.h"

struct ShardWriter {
    char *path, *tmp, *spill;
    char *dataset;
    uint64_t vocab_hash;
    FILE *spill_f;
    uint64_t jpeg_bytes;
    Buf img_off;   // uint64, N+1 (starts with 0)
    Buf hw;        // uint16 pairs
    Buf keys;      // NUL-terminated keys back to back
    Buf text_img;  // uint32
    Buf caps;      // caption bytes
    Buf cap_off;   // uint64, M+1
    Buf box;       // float x4
    // task tables (shard.h): one entry per text (defaults until shard_writer_set_extra), written
    // only when used
    Buf t_label;                   // int32
    Buf t_image2;                  // uint32
    Buf t_ans, t_ans_off;          // bytes, uint64 M+1
    Buf t_prop, t_prop_off;        // float x4, uint64 M+1 (in boxes)
    Buf t_key, t_key_off;          // bytes, uint64 M+1
    int used_label, used_image2, used_ans, used_prop, used_key;
    int64_t nimg, ntext;
};

static char *strdup_cat(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void writer_free(ShardWriter *w) {
    if (!w) return;
    if (w->spill_f) fclose(w->spill_f);
    free(w->path);
    free(w->tmp);
    free(w->spill);
    free(w->dataset);
    free(w->img_off.p);
    free(w->hw.p);
    free(w->keys.p);
    free(w->text_img.p);
    free(w->caps.p);
    free(w->cap_off.p);
    free(w->box.p);
    free(w->t_label.p);
    free(w->t_image2.p);
    free(w->t_ans.p);
    free(w->t_ans_off.p);
    free(w->t_prop.p);
    free(w->t_prop_off.p);
    free(w->t_key.p);
    free(w->t_key_off.p);
    free(w);
}

ShardWriter *shard_writer_open(const char *path, const char *dataset, uint64_t vocab_hash,
                               char *err, size_t errlen) {
    ShardWriter *w = calloc(1, sizeof *w);
    if (!w) {
        shard_set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    w->path = strdup_cat(path, "");
    w->tmp = strdup_cat(path, ".tmp");
    w->spill = strdup_cat(path, ".jpeg.tmp");
    w->dataset = strdup_cat(dataset ? dataset : "", "");
    w->vocab_hash = vocab_hash;
    uint64_t zero = 0;
    if (!w->path || !w->tmp || !w->spill || !w->dataset || !shard_buf_put(&w->img_off, &zero, 8) ||
        !shard_buf_put(&w->cap_off, &zero, 8) || !shard_buf_put(&w->t_ans_off, &zero, 8) ||
        !shard_buf_put(&w->t_prop_off, &zero, 8) || !shard_buf_put(&w->t_key_off, &zero, 8)) {
        shard_set_err(err, errlen, "%s: out of memory", path);
        writer_free(w);
        return NULL;
    }
    w->spill_f = fopen(w->spill, "w+b");
    if (!w->spill_f) {
        shard_set_err(err, errlen, "%s: cannot create %s: %s", path, w->spill, strerror(errno));
        writer_free(w);
        return NULL;
    }
    return w;
}

int64_t shard_writer_add_image(ShardWriter *w, const uint8_t *jpeg, size_t n, int h, int w_,
                               const char *key, char *err, size_t errlen) {
    if (h < 1 || h > 65535 || w_ < 1 || w_ > 65535) {
        shard_set_err(err, errlen, "%s: image %s has invalid size %dx%d", w->path, key ? key : "", h, w_);
        return -1;
    }
    if (w->nimg >= (int64_t)UINT32_MAX) {
        shard_set_err(err, errlen, "%s: too many images for one shard", w->path);
        return -1;
    }
    if (n && fwrite(jpeg, 1, n, w->spill_f) != n) {
        shard_set_err(err, errlen, "%s: writing %s: %s", w->path, w->spill, strerror(errno));
        return -1;
    }
    w->jpeg_bytes += n;
    uint16_t hw[2] = {(uint16_t)h, (uint16_t)w_};
    const char *k = key ? key : "";
    if (!shard_buf_put(&w->img_off, &w->jpeg_bytes, 8) || !shard_buf_put(&w->hw, hw, sizeof hw) ||
        !shard_buf_put(&w->keys, k, strlen(k) + 1)) {
        shard_set_err(err, errlen, "%s: out of memory", w->path);
        return -1;
    }
    return w->nimg++;
}

int64_t shard_writer_add_text(ShardWriter *w, uint32_t image, const char *caption, size_t len,
                              const float box[4], char *err, size_t errlen) {
    if ((int64_t)image >= w->nimg) {
        shard_set_err(err, errlen, "%s: text refers to image %u but the shard has %lld images", w->path,
                      image, (long long)w->nimg);
        return -1;
    }
    float b[4] = {NAN, NAN, NAN, NAN};
    if (box) memcpy(b, box, sizeof b);
    if (!shard_buf_put(&w->text_img, &image, 4) || !shard_buf_put(&w->caps, caption, len) ||
        !shard_buf_put(&w->box, b, sizeof b)) {
        shard_set_err(err, errlen, "%s: out of memory", w->path);
        return -1;
    }
    uint64_t end = w->caps.n;
    // task tables: "none" until shard_writer_set_extra
    int32_t no_label = -1;
    uint32_t no_image = UINT32_MAX;
    uint64_t ae = w->t_ans.n, pe = w->t_prop.n / 16, ke = w->t_key.n;
    if (!shard_buf_put(&w->cap_off, &end, 8) || !shard_buf_put(&w->t_label, &no_label, 4) ||
        !shard_buf_put(&w->t_image2, &no_image, 4) || !shard_buf_put(&w->t_ans_off, &ae, 8) ||
        !shard_buf_put(&w->t_prop_off, &pe, 8) || !shard_buf_put(&w->t_key_off, &ke, 8)) {
        shard_set_err(err, errlen, "%s: out of memory", w->path);
        return -1;
    }
    return w->ntext++;
}

int shard_writer_set_extra(ShardWriter *w, int64_t text, const ShardTextExtra *e, char *err,
                           size_t errlen) {
    if (text != w->ntext - 1 || text < 0) {
        shard_set_err(err, errlen, "%s: task fields can only be set on the text added last (%lld), not %lld",
                      w->path, (long long)w->ntext - 1, (long long)text);
        return -1;
    }
    if (e->has_image2 && ((int64_t)e->image2 >= w->nimg || e->image2 == UINT32_MAX)) {
        shard_set_err(err, errlen, "%s: text %lld: second image %u but the shard has %lld images", w->path,
                      (long long)text, e->image2, (long long)w->nimg);
        return -1;
    }
    if (e->n_proposals < 0 || (e->n_proposals > 0 && !e->proposals)) {
        shard_set_err(err, errlen, "%s: text %lld: invalid proposal list", w->path, (long long)text);
        return -1;
    }
    if (e->has_label) {
        memcpy(w->t_label.p + 4 * (size_t)text, &e->label, 4);
        w->used_label = 1;
    }
    if (e->has_image2) {
        memcpy(w->t_image2.p + 4 * (size_t)text, &e->image2, 4);
        w->used_image2 = 1;
    }
    int ok = 1;
    if (e->answers) {
        ok = ok && shard_buf_put(&w->t_ans, e->answers, e->answers_len);
        w->used_ans = 1;
    }
    if (e->n_proposals > 0) {
        ok = ok && shard_buf_put(&w->t_prop, e->proposals, (size_t)e->n_proposals * 16);
        w->used_prop = 1;
    }
    if (e->key) {
        ok = ok && shard_buf_put(&w->t_key, e->key, strlen(e->key));
        w->used_key = 1;
    }
    if (!ok) {
        shard_set_err(err, errlen, "%s: out of memory", w->path);
        return -1;
    }
    // the end offsets of this (last) text
    uint64_t ae = w->t_ans.n, pe = w->t_prop.n / 16, ke = w->t_key.n;
    memcpy(w->t_ans_off.p + 8 * (size_t)(text + 1), &ae, 8);
    memcpy(w->t_prop_off.p + 8 * (size_t)(text + 1), &pe, 8);
    memcpy(w->t_key_off.p + 8 * (size_t)(text + 1), &ke, 8);
    return 0;
}

int64_t shard_writer_num_images(const ShardWriter *w) { return w->nimg; }
int64_t shard_writer_num_texts(const ShardWriter *w) { return w->ntext; }

void shard_writer_abort(ShardWriter *w) {
    if (!w) return;
    if (w->spill_f) {
        fclose(w->spill_f);
        w->spill_f = NULL;
    }
    unlink(w->spill);
    unlink(w->tmp);
    writer_free(w);
}

// Create a dataset of `dims` with file type ftype and write `data` (memory type mtype).
static int write_ds(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                    const hsize_t *dims, const void *data, int contiguous_early) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    if (sp < 0) return -1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0) {
        H5Sclose(sp);
        return -1;
    }
    H5Pset_layout(dcpl, H5D_CONTIGUOUS);
    H5Pset_obj_track_times(dcpl, 0);  // no timestamps: same input => byte-identical shard
    if (contiguous_early) {
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    }
    hid_t d = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    int rc = d < 0 ? -1 : 0;
    hsize_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    if (rc == 0 && data && total > 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = -1;
    if (d >= 0 && H5Dclose(d) < 0) rc = -1;
    H5Sclose(sp);
    return rc;
}

static int write_attr_u64(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, mtype, v) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

static int write_attr_str(hid_t loc, const char *name, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(s) ? strlen(s) : 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    char one[1] = {0};
    int rc = (a >= 0 && H5Awrite(a, t, strlen(s) ? s : one) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

static int write_hdf5(ShardWriter *w, char *err, size_t errlen) {
    char h5msg[256];
    const uint64_t N = (uint64_t)w->nimg, M = (uint64_t)w->ntext;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, 0);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    // The .tmp file is private to this writer; skip HDF5's flock (fails on some Lustre/NFS mounts).
    H5Pset_file_locking(fapl, 0, 1);
#endif
    hid_t f = H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (f < 0)  // (read the error stack before the next HDF5 call clears it)
        shard_set_err(err, errlen, "%s: cannot create %s: %s", w->path, w->tmp, shard_h5_last_error(h5msg));
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (f < 0) return -1;
    int rc = 0;
    const char *what = "";
    hid_t gi = -1, gt = -1;
    int32_t version = SHARD_VERSION;
#define TRY(expr, desc)             \
    do {                            \
        if (rc == 0 && (expr) < 0) { \
            rc = -1;                \
            what = desc;            \
        }                           \
    } while (0)
    TRY(write_attr_u64(f, "vlmae_shard_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version),
        "attribute vlmae_shard_version");
    TRY(write_attr_u64(f, "vocab_hash", H5T_STD_U64LE, H5T_NATIVE_UINT64, &w->vocab_hash),
        "attribute vocab_hash");
    TRY(write_attr_str(f, "dataset", w->dataset), "attribute dataset");
    if (rc == 0) {
        hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
        H5Pset_obj_track_times(gcpl, 0);
        gi = H5Gcreate2(f, "images", H5P_DEFAULT, gcpl, H5P_DEFAULT);
        gt = H5Gcreate2(f, "texts", H5P_DEFAULT, gcpl, H5P_DEFAULT);
        H5Pclose(gcpl);
        if (gi < 0 || gt < 0) {
            rc = -1;
            what = "groups";
        }
    }
    // /images/jpeg: contiguous, allocated at creation, filled from the spill file in pieces.
    if (rc == 0) {
        hsize_t dims[1] = {w->jpeg_bytes};
        TRY(write_ds(gi, "jpeg", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dims, NULL, 1), "/images/jpeg");
    }
    if (rc == 0 && w->jpeg_bytes > 0) {
        hid_t d = H5Dopen2(gi, "jpeg", H5P_DEFAULT);
        hid_t fs = d >= 0 ? H5Dget_space(d) : -1;
        const size_t piece = (size_t)64 << 20;
        unsigned char *buf = malloc(piece);
        if (d < 0 || fs < 0 || !buf || fflush(w->spill_f) != 0 || fseek(w->spill_f, 0, SEEK_SET) != 0) {
            rc = -1;
            what = "/images/jpeg (spill file)";
        }
        uint64_t done = 0;
        while (rc == 0 && done < w->jpeg_bytes) {
            size_t n = w->jpeg_bytes - done < piece ? (size_t)(w->jpeg_bytes - done) : piece;
            if (fread(buf, 1, n, w->spill_f) != n) {
                rc = -1;
                what = "/images/jpeg (reading spill file)";
                break;
            }
            hsize_t start = done, count = n;
            hid_t ms = H5Screate_simple(1, &count, NULL);
            if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
                H5Dwrite(d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, buf) < 0) {
                rc = -1;
                what = "/images/jpeg";
            }
            H5Sclose(ms);
            done += n;
        }
        free(buf);
        if (fs >= 0) H5Sclose(fs);
        if (d >= 0 && H5Dclose(d) < 0 && rc == 0) {
            rc = -1;
            what = "/images/jpeg";
        }
    }
    if (rc == 0) {
        hsize_t d1[1] = {N + 1}, d2[2] = {N, 2};
        TRY(write_ds(gi, "offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, d1, w->img_off.p, 0),
            "/images/offsets");
        TRY(write_ds(gi, "hw", H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, d2, w->hw.p, 0), "/images/hw");
    }
    if (rc == 0) {
        // keys: variable-length UTF-8 strings
        const char **ptrs = malloc((N ? N : 1) * sizeof(char *));
        if (!ptrs) {
            rc = -1;
            what = "/images/key (out of memory)";
        } else {
            size_t pos = 0;
            for (uint64_t i = 0; i < N; i++) {
                ptrs[i] = (const char *)w->keys.p + pos;
                pos += strlen(ptrs[i]) + 1;
            }
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, H5T_VARIABLE);
            H5Tset_cset(t, H5T_CSET_UTF8);
            hsize_t d1[1] = {N};
            TRY(write_ds(gi, "key", t, t, 1, d1, ptrs, 0), "/images/key");
            H5Tclose(t);
            free(ptrs);
        }
    }
    if (rc == 0) {
        hsize_t dm[1] = {M}, dm1[1] = {M + 1}, dc[1] = {w->caps.n}, db[2] = {M, 4};
        TRY(write_ds(gt, "image", H5T_STD_U32LE, H5T_NATIVE_UINT32, 1, dm, w->text_img.p, 0),
            "/texts/image");
        TRY(write_ds(gt, "caption", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dc, w->caps.p, 0),
            "/texts/caption");
        TRY(write_ds(gt, "caption_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, dm1, w->cap_off.p, 0),
            "/texts/caption_offsets");
        TRY(write_ds(gt, "box", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, db, w->box.p, 0), "/texts/box");
    }
    if (rc == 0) {  // optional task tables
        hsize_t dm[1] = {M}, dm1[1] = {M + 1};
        if (w->used_label)
            TRY(write_ds(gt, "label", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dm, w->t_label.p, 0), "/texts/label");
        if (w->used_image2)
            TRY(write_ds(gt, "image2", H5T_STD_U32LE, H5T_NATIVE_UINT32, 1, dm, w->t_image2.p, 0),
                "/texts/image2");
        if (w->used_ans) {
            hsize_t dn[1] = {w->t_ans.n};
            TRY(write_ds(gt, "answers", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, w->t_ans.p, 0), "/texts/answers");
            TRY(write_ds(gt, "answer_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, dm1, w->t_ans_off.p, 0),
                "/texts/answer_offsets");
        }
        if (w->used_prop) {
            hsize_t dp[2] = {w->t_prop.n / 16, 4};
            TRY(write_ds(gt, "proposals", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dp, w->t_prop.p, 0),
                "/texts/proposals");
            TRY(write_ds(gt, "proposal_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, dm1, w->t_prop_off.p, 0),
                "/texts/proposal_offsets");
        }
        if (w->used_key) {
            hsize_t dn[1] = {w->t_key.n};
            TRY(write_ds(gt, "key", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, w->t_key.p, 0), "/texts/key");
            TRY(write_ds(gt, "key_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, dm1, w->t_key_off.p, 0),
                "/texts/key_offsets");
        }
    }
#undef TRY
    if (gi >= 0) H5Gclose(gi);
    if (gt >= 0) H5Gclose(gt);
    if (H5Fclose(f) < 0 && rc == 0) {
        rc = -1;
        what = "closing the file";
    }
    if (rc != 0)
        shard_set_err(err, errlen, "%s: writing %s failed: %s (disk full?)", w->tmp, what, shard_h5_last_error(h5msg));
    return rc;
}

int shard_writer_finish(ShardWriter *w, char *err, size_t errlen) {
    H5Quiet q;
    shard_h5_quiet_begin(&q);
    int rc = write_hdf5(w, err, errlen);
    shard_h5_quiet_end(&q);
    if (rc == 0) {
        // Make the bytes durable before the rename makes the file look complete.
        int fd = open(w->tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) {
            shard_set_err(err, errlen, "%s: fsync: %s", w->tmp, strerror(errno));
            rc = -1;
        }
        if (fd >= 0) close(fd);
    }
    if (rc == 0 && rename(w->tmp, w->path) != 0) {
        shard_set_err(err, errlen, "rename %s -> %s: %s", w->tmp, w->path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) unlink(w->tmp);
    if (w->spill_f) {
        fclose(w->spill_f);
        w->spill_f = NULL;
    }
    unlink(w->spill);
    writer_free(w);
    return rc;
}
