// shard.c: HDF5 shard format v1, writer and pread-based reader (see shard.h, data/README.md).
#define _GNU_SOURCE
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

// Growable byte buffer.
typedef struct {
    unsigned char *p;
    size_t n, cap;
} Buf;

static int buf_put(Buf *b, const void *data, size_t n) {
    if (b->cap - b->n < n) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc - b->n < n) {
            if (nc > SIZE_MAX / 2) return 0;
            nc *= 2;
        }
        unsigned char *np = realloc(b->p, nc);
        if (!np) return 0;
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    return 1;
}

// HDF5 error handling: silence the automatic stack printing while inside our calls, and keep
// the most specific message of the stack for our own error text.
typedef struct {
    H5E_auto2_t func;
    void *data;
} H5Quiet;

static void h5_quiet_begin(H5Quiet *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
static void h5_quiet_end(const H5Quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    char *msg = data;
    if (n == 0 && e && e->desc) snprintf(msg, 256, "%s", e->desc);
    return 0;
}

// Most specific message on the current HDF5 error stack ("" if none), then clears the stack.
static const char *h5_last_error(char msg[256]) {
    msg[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, msg);
    H5Eclear2(H5E_DEFAULT);
    if (!msg[0]) snprintf(msg, 256, "no detail from HDF5");
    return msg;
}

// =============================================================================================
// Writer

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
        set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    w->path = strdup_cat(path, "");
    w->tmp = strdup_cat(path, ".tmp");
    w->spill = strdup_cat(path, ".jpeg.tmp");
    w->dataset = strdup_cat(dataset ? dataset : "", "");
    w->vocab_hash = vocab_hash;
    uint64_t zero = 0;
    if (!w->path || !w->tmp || !w->spill || !w->dataset || !buf_put(&w->img_off, &zero, 8) ||
        !buf_put(&w->cap_off, &zero, 8) || !buf_put(&w->t_ans_off, &zero, 8) ||
        !buf_put(&w->t_prop_off, &zero, 8) || !buf_put(&w->t_key_off, &zero, 8)) {
        set_err(err, errlen, "%s: out of memory", path);
        writer_free(w);
        return NULL;
    }
    w->spill_f = fopen(w->spill, "w+b");
    if (!w->spill_f) {
        set_err(err, errlen, "%s: cannot create %s: %s", path, w->spill, strerror(errno));
        writer_free(w);
        return NULL;
    }
    return w;
}

int64_t shard_writer_add_image(ShardWriter *w, const uint8_t *jpeg, size_t n, int h, int w_,
                               const char *key, char *err, size_t errlen) {
    if (h < 1 || h > 65535 || w_ < 1 || w_ > 65535) {
        set_err(err, errlen, "%s: image %s has invalid size %dx%d", w->path, key ? key : "", h, w_);
        return -1;
    }
    if (w->nimg >= (int64_t)UINT32_MAX) {
        set_err(err, errlen, "%s: too many images for one shard", w->path);
        return -1;
    }
    if (n && fwrite(jpeg, 1, n, w->spill_f) != n) {
        set_err(err, errlen, "%s: writing %s: %s", w->path, w->spill, strerror(errno));
        return -1;
    }
    w->jpeg_bytes += n;
    uint16_t hw[2] = {(uint16_t)h, (uint16_t)w_};
    const char *k = key ? key : "";
    if (!buf_put(&w->img_off, &w->jpeg_bytes, 8) || !buf_put(&w->hw, hw, sizeof hw) ||
        !buf_put(&w->keys, k, strlen(k) + 1)) {
        set_err(err, errlen, "%s: out of memory", w->path);
        return -1;
    }
    return w->nimg++;
}

int64_t shard_writer_add_text(ShardWriter *w, uint32_t image, const char *caption, size_t len,
                              const float box[4], char *err, size_t errlen) {
    if ((int64_t)image >= w->nimg) {
        set_err(err, errlen, "%s: text refers to image %u but the shard has %lld images", w->path,
                image, (long long)w->nimg);
        return -1;
    }
    float b[4] = {NAN, NAN, NAN, NAN};
    if (box) memcpy(b, box, sizeof b);
    if (!buf_put(&w->text_img, &image, 4) || !buf_put(&w->caps, caption, len) ||
        !buf_put(&w->box, b, sizeof b)) {
        set_err(err, errlen, "%s: out of memory", w->path);
        return -1;
    }
    uint64_t end = w->caps.n;
    // task tables: "none" until shard_writer_set_extra
    int32_t no_label = -1;
    uint32_t no_image = UINT32_MAX;
    uint64_t ae = w->t_ans.n, pe = w->t_prop.n / 16, ke = w->t_key.n;
    if (!buf_put(&w->cap_off, &end, 8) || !buf_put(&w->t_label, &no_label, 4) ||
        !buf_put(&w->t_image2, &no_image, 4) || !buf_put(&w->t_ans_off, &ae, 8) ||
        !buf_put(&w->t_prop_off, &pe, 8) || !buf_put(&w->t_key_off, &ke, 8)) {
        set_err(err, errlen, "%s: out of memory", w->path);
        return -1;
    }
    return w->ntext++;
}

int shard_writer_set_extra(ShardWriter *w, int64_t text, const ShardTextExtra *e, char *err,
                           size_t errlen) {
    if (text != w->ntext - 1 || text < 0) {
        set_err(err, errlen, "%s: task fields can only be set on the text added last (%lld), not %lld",
                w->path, (long long)w->ntext - 1, (long long)text);
        return -1;
    }
    if (e->has_image2 && ((int64_t)e->image2 >= w->nimg || e->image2 == UINT32_MAX)) {
        set_err(err, errlen, "%s: text %lld: second image %u but the shard has %lld images", w->path,
                (long long)text, e->image2, (long long)w->nimg);
        return -1;
    }
    if (e->n_proposals < 0 || (e->n_proposals > 0 && !e->proposals)) {
        set_err(err, errlen, "%s: text %lld: invalid proposal list", w->path, (long long)text);
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
        ok = ok && buf_put(&w->t_ans, e->answers, e->answers_len);
        w->used_ans = 1;
    }
    if (e->n_proposals > 0) {
        ok = ok && buf_put(&w->t_prop, e->proposals, (size_t)e->n_proposals * 16);
        w->used_prop = 1;
    }
    if (e->key) {
        ok = ok && buf_put(&w->t_key, e->key, strlen(e->key));
        w->used_key = 1;
    }
    if (!ok) {
        set_err(err, errlen, "%s: out of memory", w->path);
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
        set_err(err, errlen, "%s: cannot create %s: %s", w->path, w->tmp, h5_last_error(h5msg));
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
        set_err(err, errlen, "%s: writing %s failed: %s (disk full?)", w->tmp, what, h5_last_error(h5msg));
    return rc;
}

int shard_writer_finish(ShardWriter *w, char *err, size_t errlen) {
    H5Quiet q;
    h5_quiet_begin(&q);
    int rc = write_hdf5(w, err, errlen);
    h5_quiet_end(&q);
    if (rc == 0) {
        // Make the bytes durable before the rename makes the file look complete.
        int fd = open(w->tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) {
            set_err(err, errlen, "%s: fsync: %s", w->tmp, strerror(errno));
            rc = -1;
        }
        if (fd >= 0) close(fd);
    }
    if (rc == 0 && rename(w->tmp, w->path) != 0) {
        set_err(err, errlen, "rename %s -> %s: %s", w->tmp, w->path, strerror(errno));
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

// =============================================================================================
// Reader

struct Shard {
    char *path;
    char *dataset;
    int fd;
    uint64_t vocab_hash;
    int64_t N, M;
    uint64_t jpeg_offset;   // file offset of /images/jpeg
    uint64_t jpeg_size;
    uint64_t *img_off;      // N+1
    uint16_t *hw;           // N*2
    char *keys;             // NUL-terminated back to back
    uint64_t *key_off;      // N
    uint32_t *text_img;     // M
    char *caps;             // NUL-terminated captions back to back
    uint64_t *cap_off;      // M+1, into caps (each caption followed by a NUL)
    float *box;             // M*4
    size_t max_img;
    // optional task tables (NULL when absent)
    int32_t *label;         // M
    uint32_t *image2;       // M
    char *ans;              // NUL-terminated answer blocks back to back
    uint64_t *ans_off;      // M+1 into ans
    float *prop;            // P*4
    uint64_t *prop_off;     // M+1, in boxes
    char *tkey;             // NUL-terminated text keys back to back
    uint64_t *tkey_off;     // M+1 into tkey
};

void shard_close(Shard *s) {
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->path);
    free(s->dataset);
    free(s->img_off);
    free(s->hw);
    free(s->keys);
    free(s->key_off);
    free(s->text_img);
    free(s->caps);
    free(s->cap_off);
    free(s->box);
    free(s->label);
    free(s->image2);
    free(s->ans);
    free(s->ans_off);
    free(s->prop);
    free(s->prop_off);
    free(s->tkey);
    free(s->tkey_off);
    free(s);
}

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
    char h5msg[256];
} OpenCtx;

// Open dataset `name` in group g ("/grp/name" for messages), check its class and rank; dims out.
static hid_t open_ds(OpenCtx *c, hid_t g, const char *gname, const char *name, H5T_class_t cls,
                     int rank, hsize_t *dims) {
    htri_t ex = H5Lexists(g, name, H5P_DEFAULT);
    if (ex <= 0) {
        set_err(c->err, c->errlen, "%s: not a valid vlmae shard: dataset /%s/%s is missing", c->path,
                gname, name);
        return -1;
    }
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) {
        set_err(c->err, c->errlen, "%s: cannot open dataset /%s/%s: %s (corrupt or truncated file?)",
                c->path, gname, name, h5_last_error(c->h5msg));
        return -1;
    }
    hid_t t = H5Dget_type(d);
    H5T_class_t tc = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (t >= 0) H5Tclose(t);
    hid_t sp = H5Dget_space(d);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (tc != cls || r != rank) {
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(d);
        set_err(c->err, c->errlen, "%s: dataset /%s/%s has the wrong type or rank (%d, want %d)",
                c->path, gname, name, r, rank);
        return -1;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    return d;
}

static int read_ds(OpenCtx *c, hid_t d, const char *gname, const char *name, hid_t mtype, void *buf,
                   uint64_t count) {
    if (count == 0) return 0;
    if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        set_err(c->err, c->errlen, "%s: cannot read dataset /%s/%s: %s (corrupt or truncated file?)",
                c->path, gname, name, h5_last_error(c->h5msg));
        return -1;
    }
    return 0;
}

static void *xmalloc_n(uint64_t n, size_t size) {
    if (n > SIZE_MAX / size - 1) return NULL;
    return malloc((size_t)(n ? n : 1) * size);
}

static int read_attrs(OpenCtx *c, hid_t f, Shard *s) {
    htri_t ex = H5Aexists(f, "vlmae_shard_version");
    if (ex <= 0) {
        set_err(c->err, c->errlen,
                "%s: not a vlmae shard (HDF5 file without a vlmae_shard_version attribute)", c->path);
        return -1;
    }
    hid_t a = H5Aopen(f, "vlmae_shard_version", H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    int64_t version = -1;
    int ok = a >= 0 && t >= 0 && H5Tget_class(t) == H5T_INTEGER &&
             H5Aread(a, H5T_NATIVE_INT64, &version) >= 0;
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    if (!ok) {
        set_err(c->err, c->errlen, "%s: unreadable vlmae_shard_version attribute", c->path);
        return -1;
    }
    if (version != SHARD_VERSION) {
        set_err(c->err, c->errlen,
                "%s: shard format version %lld, but this vlmae reads version %d (re-pack the "
                "dataset with this vlmae's `vlmae pack`, or use a matching vlmae)",
                c->path, (long long)version, SHARD_VERSION);
        return -1;
    }
    s->vocab_hash = 0;
    if (H5Aexists(f, "vocab_hash") > 0) {
        a = H5Aopen(f, "vocab_hash", H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_UINT64, &s->vocab_hash) < 0) {
            if (a >= 0) H5Aclose(a);
            set_err(c->err, c->errlen, "%s: unreadable vocab_hash attribute", c->path);
            return -1;
        }
        H5Aclose(a);
    }
    s->dataset = NULL;
    if (H5Aexists(f, "dataset") > 0) {
        a = H5Aopen(f, "dataset", H5P_DEFAULT);
        t = a >= 0 ? H5Aget_type(a) : -1;
        if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
            if (H5Tis_variable_str(t) > 0) {
                char *v = NULL;
                hid_t mt = H5Tcopy(H5T_C_S1);
                H5Tset_size(mt, H5T_VARIABLE);
                if (H5Aread(a, mt, &v) >= 0 && v) {
                    s->dataset = strdup(v);
                    H5free_memory(v);
                }
                H5Tclose(mt);
            } else {
                size_t n = H5Tget_size(t);
                char *v = calloc(n + 1, 1);
                if (v && H5Aread(a, t, v) >= 0) s->dataset = v;
                else free(v);
            }
        }
        if (t >= 0) H5Tclose(t);
        if (a >= 0) H5Aclose(a);
    }
    if (!s->dataset) s->dataset = strdup("");
    H5Eclear2(H5E_DEFAULT);
    return 0;
}

static int read_keys(OpenCtx *c, hid_t gi, Shard *s) {
    hsize_t dims[1];
    hid_t d = open_ds(c, gi, "images", "key", H5T_STRING, 1, dims);
    if (d < 0) return -1;
    int rc = 0;
    if ((int64_t)dims[0] != s->N) {
        set_err(c->err, c->errlen, "%s: /images/key has %llu entries, expected %lld", c->path,
                (unsigned long long)dims[0], (long long)s->N);
        H5Dclose(d);
        return -1;
    }
    hid_t ft = H5Dget_type(d);
    int var = H5Tis_variable_str(ft) > 0;
    size_t fsize = H5Tget_size(ft);
    H5T_cset_t cset = H5Tget_cset(ft);
    H5Tclose(ft);
    Buf kb = {0};
    s->key_off = xmalloc_n((uint64_t)s->N, sizeof(uint64_t));
    if (!s->key_off) rc = -1;
    if (rc == 0 && s->N > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mt, cset);   // HDF5 does not convert between ASCII and UTF-8 string types
        if (var) {
            H5Tset_size(mt, H5T_VARIABLE);
            char **v = xmalloc_n((uint64_t)s->N, sizeof(char *));
            if (!v || read_ds(c, d, "images", "key", mt, v, (uint64_t)s->N) < 0) {
                rc = -1;
            } else {
                for (int64_t i = 0; i < s->N && rc == 0; i++) {
                    s->key_off[i] = kb.n;
                    const char *k = v[i] ? v[i] : "";
                    if (!buf_put(&kb, k, strlen(k) + 1)) rc = -1;
                }
                hid_t sp = H5Dget_space(d);
#if H5_VERSION_GE(1, 12, 0)
                H5Treclaim(mt, sp, H5P_DEFAULT, v);
#else
                H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
#endif
                H5Sclose(sp);
            }
            free(v);
        } else {
            H5Tset_size(mt, fsize + 1);   // read fixed strings NUL-terminated
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            char *v = xmalloc_n((uint64_t)s->N, fsize + 1);
            if (!v || read_ds(c, d, "images", "key", mt, v, (uint64_t)s->N) < 0) {
                rc = -1;
            } else {
                for (int64_t i = 0; i < s->N && rc == 0; i++) {
                    s->key_off[i] = kb.n;
                    const char *k = v + (size_t)i * (fsize + 1);
                    if (!buf_put(&kb, k, strnlen(k, fsize) ) || !buf_put(&kb, "", 1)) rc = -1;
                }
            }
            free(v);
        }
        H5Tclose(mt);
    }
    H5Dclose(d);
    if (rc != 0 && c->err && !c->err[0]) set_err(c->err, c->errlen, "%s: out of memory reading keys", c->path);
    s->keys = (char *)kb.p;
    if (!s->keys) s->keys = calloc(1, 1);
    return rc;
}

// Offsets table `offname` (uint64[M+1], non-decreasing from 0 to `total`) into *out.
static int read_offsets(OpenCtx *c, hid_t gt, const char *offname, int64_t M, uint64_t total,
                        uint64_t **out) {
    hsize_t dims[2];
    hid_t d = open_ds(c, gt, "texts", offname, H5T_INTEGER, 1, dims);
    if (d < 0) return -1;
    int rc = -1;
    uint64_t *o = NULL;
    if ((int64_t)dims[0] != M + 1) {
        set_err(c->err, c->errlen, "%s: /texts/%s has %llu entries, expected %lld", c->path, offname,
                (unsigned long long)dims[0], (long long)M + 1);
    } else if (!(o = xmalloc_n(dims[0], 8))) {
        set_err(c->err, c->errlen, "%s: out of memory reading /texts/%s", c->path, offname);
    } else if (read_ds(c, d, "texts", offname, H5T_NATIVE_UINT64, o, dims[0]) == 0) {
        rc = 0;
        if (o[0] != 0 || o[M] != total) rc = -1;
        for (int64_t t = 0; t < M && rc == 0; t++)
            if (o[t + 1] < o[t]) rc = -1;
        if (rc != 0)
            set_err(c->err, c->errlen, "%s: /texts/%s is not a non-decreasing span of its table", c->path,
                    offname);
    }
    H5Dclose(d);
    if (rc == 0) *out = o;
    else free(o);
    return rc;
}

// Optional byte table `name` + `offname`, re-laid out with a NUL after each text's bytes.
static int read_text_bytes(OpenCtx *c, hid_t gt, const char *name, const char *offname, int64_t M,
                           char **bytes, uint64_t **offs) {
    hsize_t dims[2];
    hid_t d = open_ds(c, gt, "texts", name, H5T_INTEGER, 1, dims);
    if (d < 0) return -1;
    uint64_t n = dims[0];
    char *raw = xmalloc_n(n, 1);
    if (!raw) {
        H5Dclose(d);
        set_err(c->err, c->errlen, "%s: out of memory reading /texts/%s", c->path, name);
        return -1;
    }
    int rc = read_ds(c, d, "texts", name, H5T_NATIVE_UINT8, raw, n);
    H5Dclose(d);
    uint64_t *o = NULL;
    if (rc == 0) rc = read_offsets(c, gt, offname, M, n, &o);
    char *out = rc == 0 ? xmalloc_n(n + (uint64_t)M + 1, 1) : NULL;
    if (rc == 0 && !out) {
        set_err(c->err, c->errlen, "%s: out of memory reading /texts/%s", c->path, name);
        rc = -1;
    }
    if (rc != 0) {
        free(raw);
        free(o);
        return -1;
    }
    uint64_t pos = 0;
    for (int64_t t = 0; t < M; t++) {
        uint64_t a = o[t], b = o[t + 1];
        memcpy(out + pos, raw + a, (size_t)(b - a));
        o[t] = pos;
        pos += b - a;
        out[pos++] = '\0';
    }
    o[M] = pos;
    out[pos] = '\0';
    free(raw);
    *bytes = out;
    *offs = o;
    return 0;
}

// The optional task tables of shard.h ("Task tables"); absent ones stay NULL.
static int read_task_tables(OpenCtx *c, hid_t gt, Shard *s) {
    hsize_t dims[2];
    hid_t d;
    if (H5Lexists(gt, "label", H5P_DEFAULT) > 0) {
        if ((d = open_ds(c, gt, "texts", "label", H5T_INTEGER, 1, dims)) < 0) return -1;
        int bad = (int64_t)dims[0] != s->M || !(s->label = xmalloc_n((uint64_t)s->M, 4)) ||
                  read_ds(c, d, "texts", "label", H5T_NATIVE_INT32, s->label, (uint64_t)s->M) < 0;
        H5Dclose(d);
        if (bad) {
            if (c->err && !c->err[0]) set_err(c->err, c->errlen, "%s: /texts/label must have %lld entries", c->path, (long long)s->M);
            return -1;
        }
    }
    if (H5Lexists(gt, "image2", H5P_DEFAULT) > 0) {
        if ((d = open_ds(c, gt, "texts", "image2", H5T_INTEGER, 1, dims)) < 0) return -1;
        int bad = (int64_t)dims[0] != s->M || !(s->image2 = xmalloc_n((uint64_t)s->M, 4)) ||
                  read_ds(c, d, "texts", "image2", H5T_NATIVE_UINT32, s->image2, (uint64_t)s->M) < 0;
        H5Dclose(d);
        if (bad) {
            if (c->err && !c->err[0]) set_err(c->err, c->errlen, "%s: /texts/image2 must have %lld entries", c->path, (long long)s->M);
            return -1;
        }
        for (int64_t t = 0; t < s->M; t++) {
            if (s->image2[t] != UINT32_MAX && (int64_t)s->image2[t] >= s->N) {
                set_err(c->err, c->errlen, "%s: /texts/image2[%lld] = %u but the shard has %lld images", c->path,
                        (long long)t, s->image2[t], (long long)s->N);
                return -1;
            }
        }
    }
    if (H5Lexists(gt, "answers", H5P_DEFAULT) > 0 &&
        read_text_bytes(c, gt, "answers", "answer_offsets", s->M, &s->ans, &s->ans_off) < 0)
        return -1;
    if (H5Lexists(gt, "key", H5P_DEFAULT) > 0 &&
        read_text_bytes(c, gt, "key", "key_offsets", s->M, &s->tkey, &s->tkey_off) < 0)
        return -1;
    if (H5Lexists(gt, "proposals", H5P_DEFAULT) > 0) {
        if ((d = open_ds(c, gt, "texts", "proposals", H5T_FLOAT, 2, dims)) < 0) return -1;
        uint64_t P = dims[0];
        int bad = dims[1] != 4 || !(s->prop = xmalloc_n(P * 4, 4)) ||
                  read_ds(c, d, "texts", "proposals", H5T_NATIVE_FLOAT, s->prop, P * 4) < 0;
        H5Dclose(d);
        if (bad) {
            if (c->err && !c->err[0]) set_err(c->err, c->errlen, "%s: /texts/proposals must be float32 [P,4]", c->path);
            return -1;
        }
        if (read_offsets(c, gt, "proposal_offsets", s->M, P, &s->prop_off) < 0) return -1;
    }
    return 0;
}

static int open_tables(OpenCtx *c, hid_t f, Shard *s, int flags) {
    (void)flags;
    hid_t gi = -1, gt = -1, d = -1;
    int rc = -1;
    hsize_t dims[2];
    if (H5Lexists(f, "images", H5P_DEFAULT) <= 0 || H5Lexists(f, "texts", H5P_DEFAULT) <= 0) {
        set_err(c->err, c->errlen, "%s: not a valid vlmae shard: group /images or /texts is missing",
                c->path);
        return -1;
    }
    gi = H5Gopen2(f, "images", H5P_DEFAULT);
    gt = H5Gopen2(f, "texts", H5P_DEFAULT);
    if (gi < 0 || gt < 0) {
        set_err(c->err, c->errlen, "%s: cannot open groups: %s", c->path, h5_last_error(c->h5msg));
        goto out;
    }
    // --- /images/offsets
    if ((d = open_ds(c, gi, "images", "offsets", H5T_INTEGER, 1, dims)) < 0) goto out;
    if (dims[0] < 1) {
        set_err(c->err, c->errlen, "%s: /images/offsets is empty (needs N+1 entries)", c->path);
        goto out;
    }
    s->N = (int64_t)dims[0] - 1;
    if (!(s->img_off = xmalloc_n(dims[0], 8))) goto oom;
    if (read_ds(c, d, "images", "offsets", H5T_NATIVE_UINT64, s->img_off, dims[0]) < 0) goto out;
    H5Dclose(d);
    d = -1;
    // --- /images/jpeg: contiguous, unfiltered, allocated; remember its file offset
    if ((d = open_ds(c, gi, "images", "jpeg", H5T_INTEGER, 1, dims)) < 0) goto out;
    {
        hid_t t = H5Dget_type(d);
        size_t tsz = H5Tget_size(t);
        H5Tclose(t);
        hid_t dcpl = H5Dget_create_plist(d);
        H5D_layout_t lay = H5Pget_layout(dcpl);
        int nf = H5Pget_nfilters(dcpl);
        H5Pclose(dcpl);
        if (tsz != 1 || lay != H5D_CONTIGUOUS || nf != 0) {
            set_err(c->err, c->errlen,
                    "%s: /images/jpeg must be 1-byte, contiguous and unfiltered (was the file "
                    "re-packed with h5repack?)", c->path);
            goto out;
        }
        s->jpeg_size = dims[0];
        if (s->jpeg_size > 0) {
            haddr_t off = H5Dget_offset(d);
            if (off == HADDR_UNDEF) {
                set_err(c->err, c->errlen, "%s: /images/jpeg has no storage allocated (incomplete file?)",
                        c->path);
                goto out;
            }
            s->jpeg_offset = off;
        }
    }
    H5Dclose(d);
    d = -1;
    if (s->img_off[0] != 0 || s->img_off[s->N] != s->jpeg_size) {
        set_err(c->err, c->errlen, "%s: /images/offsets does not span /images/jpeg (%llu..%llu vs %llu bytes)",
                c->path, (unsigned long long)s->img_off[0], (unsigned long long)s->img_off[s->N],
                (unsigned long long)s->jpeg_size);
        goto out;
    }
    for (int64_t i = 0; i < s->N; i++) {
        if (s->img_off[i + 1] < s->img_off[i]) {
            set_err(c->err, c->errlen, "%s: /images/offsets decreases at %lld", c->path, (long long)i);
            goto out;
        }
        size_t n = (size_t)(s->img_off[i + 1] - s->img_off[i]);
        if (n > s->max_img) s->max_img = n;
    }
    // --- /images/hw
    if ((d = open_ds(c, gi, "images", "hw", H5T_INTEGER, 2, dims)) < 0) goto out;
    if ((int64_t)dims[0] != s->N || dims[1] != 2) {
        set_err(c->err, c->errlen, "%s: /images/hw has shape [%llu,%llu], expected [%lld,2]", c->path,
                (unsigned long long)dims[0], (unsigned long long)dims[1], (long long)s->N);
        goto out;
    }
    if (!(s->hw = xmalloc_n((uint64_t)s->N * 2, 2))) goto oom;
    if (read_ds(c, d, "images", "hw", H5T_NATIVE_UINT16, s->hw, (uint64_t)s->N * 2) < 0) goto out;
    H5Dclose(d);
    d = -1;
    // --- /images/key
    if (flags & SHARD_OPEN_NO_KEYS) {
        s->keys = calloc(1, 1);
        if (!s->keys) goto oom;
    } else if (read_keys(c, gi, s) < 0) {
        goto out;
    }
    // --- /texts/image
    if ((d = open_ds(c, gt, "texts", "image", H5T_INTEGER, 1, dims)) < 0) goto out;
    s->M = (int64_t)dims[0];
    if (!(s->text_img = xmalloc_n((uint64_t)s->M, 4))) goto oom;
    if (read_ds(c, d, "texts", "image", H5T_NATIVE_UINT32, s->text_img, (uint64_t)s->M) < 0) goto out;
    H5Dclose(d);
    d = -1;
    for (int64_t t = 0; t < s->M; t++) {
        if ((int64_t)s->text_img[t] >= s->N) {
            set_err(c->err, c->errlen, "%s: /texts/image[%lld] = %u but the shard has %lld images",
                    c->path, (long long)t, s->text_img[t], (long long)s->N);
            goto out;
        }
    }
    // --- /texts/caption_offsets + /texts/caption (re-laid out with a NUL after each caption)
    {
        if ((d = open_ds(c, gt, "texts", "caption_offsets", H5T_INTEGER, 1, dims)) < 0) goto out;
        if ((int64_t)dims[0] != s->M + 1) {
            set_err(c->err, c->errlen, "%s: /texts/caption_offsets has %llu entries, expected %lld",
                    c->path, (unsigned long long)dims[0], (long long)s->M + 1);
            goto out;
        }
        uint64_t *co = xmalloc_n(dims[0], 8);
        if (!co) goto oom;
        s->cap_off = co;
        if (read_ds(c, d, "texts", "caption_offsets", H5T_NATIVE_UINT64, co, dims[0]) < 0) goto out;
        H5Dclose(d);
        d = -1;
        if ((d = open_ds(c, gt, "texts", "caption", H5T_INTEGER, 1, dims)) < 0) goto out;
        uint64_t nbytes = dims[0];
        if (co[0] != 0 || co[s->M] != nbytes) {
            set_err(c->err, c->errlen, "%s: /texts/caption_offsets does not span /texts/caption", c->path);
            goto out;
        }
        for (int64_t t = 0; t < s->M; t++) {
            if (co[t + 1] < co[t]) {
                set_err(c->err, c->errlen, "%s: /texts/caption_offsets decreases at %lld", c->path,
                        (long long)t);
                goto out;
            }
        }
        char *raw = xmalloc_n(nbytes, 1);
        if (!raw) goto oom;
        if (read_ds(c, d, "texts", "caption", H5T_NATIVE_UINT8, raw, nbytes) < 0) {
            free(raw);
            goto out;
        }
        H5Dclose(d);
        d = -1;
        s->caps = xmalloc_n(nbytes + (uint64_t)s->M + 1, 1);
        if (!s->caps) {
            free(raw);
            goto oom;
        }
        uint64_t o = 0;
        for (int64_t t = 0; t < s->M; t++) {
            uint64_t a = co[t], b = co[t + 1];
            memcpy(s->caps + o, raw + a, (size_t)(b - a));
            co[t] = o;
            o += b - a;
            s->caps[o++] = '\0';
        }
        co[s->M] = o;
        s->caps[o] = '\0';
        free(raw);
    }
    // --- /texts/box
    if ((d = open_ds(c, gt, "texts", "box", H5T_FLOAT, 2, dims)) < 0) goto out;
    if ((int64_t)dims[0] != s->M || dims[1] != 4) {
        set_err(c->err, c->errlen, "%s: /texts/box has shape [%llu,%llu], expected [%lld,4]", c->path,
                (unsigned long long)dims[0], (unsigned long long)dims[1], (long long)s->M);
        goto out;
    }
    if (!(s->box = xmalloc_n((uint64_t)s->M * 4, 4))) goto oom;
    if (read_ds(c, d, "texts", "box", H5T_NATIVE_FLOAT, s->box, (uint64_t)s->M * 4) < 0) goto out;
    H5Dclose(d);
    d = -1;
    if (read_task_tables(c, gt, s) < 0) goto out;
    rc = 0;
    goto out;
oom:
    set_err(c->err, c->errlen, "%s: out of memory reading the shard tables", c->path);
out:
    if (d >= 0) H5Dclose(d);
    if (gi >= 0) H5Gclose(gi);
    if (gt >= 0) H5Gclose(gt);
    return rc;
}

Shard *shard_open_flags(const char *path, int flags, char *err, size_t errlen) {
    OpenCtx c = {path, err, errlen, {0}};
    if (err && errlen) err[0] = '\0';
    Shard *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    s->fd = -1;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    struct stat st;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        set_err(err, errlen, "%s: cannot open shard: %s", path, strerror(errno));
        shard_close(s);
        return NULL;
    }
    H5Quiet q;
    h5_quiet_begin(&q);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    // Read-only use: don't need (or want, on Lustre/GPFS without flock) HDF5's file locks.
    H5Pset_file_locking(fapl, 0, 1);
#endif
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    int rc = 0;
    if (f < 0) {
        // (read the error stack now: the next HDF5 call clears it)
        set_err(err, errlen,
                "%s: cannot open as HDF5 (%lld bytes; truncated, still being written, or not a "
                "shard?): %s", path, (long long)st.st_size, h5_last_error(c.h5msg));
        rc = -1;
    }
    H5Pclose(fapl);
    if (rc == 0) rc = read_attrs(&c, f, s);
    if (rc == 0) rc = open_tables(&c, f, s, flags);
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0) {
        set_err(err, errlen, "%s: closing HDF5 file: %s", path, h5_last_error(c.h5msg));
        rc = -1;
    }
    H5Eclear2(H5E_DEFAULT);
    h5_quiet_end(&q);
    if (rc == 0 && s->jpeg_size > 0 && (uint64_t)st.st_size < s->jpeg_offset + s->jpeg_size) {
        set_err(err, errlen,
                "%s: truncated shard: image data ends at byte %llu but the file has %lld bytes",
                path, (unsigned long long)(s->jpeg_offset + s->jpeg_size), (long long)st.st_size);
        rc = -1;
    }
    if (rc != 0) {
        shard_close(s);
        return NULL;
    }
    return s;
}

Shard *shard_open(const char *path, char *err, size_t errlen) {
    return shard_open_flags(path, 0, err, errlen);
}

const char *shard_path(const Shard *s) { return s->path; }
uint64_t shard_vocab_hash(const Shard *s) { return s->vocab_hash; }
const char *shard_dataset(const Shard *s) { return s->dataset; }
int64_t shard_num_images(const Shard *s) { return s->N; }
int64_t shard_num_texts(const Shard *s) { return s->M; }
size_t shard_max_image_nbytes(const Shard *s) { return s->max_img; }

size_t shard_image_nbytes(const Shard *s, int64_t i) {
    if (i < 0 || i >= s->N) return 0;
    return (size_t)(s->img_off[i + 1] - s->img_off[i]);
}

void shard_image_hw(const Shard *s, int64_t i, int *h, int *w) {
    if (i < 0 || i >= s->N) {
        *h = *w = 0;
        return;
    }
    *h = s->hw[2 * i];
    *w = s->hw[2 * i + 1];
}

const char *shard_image_key(const Shard *s, int64_t i) {
    if (!s->key_off || i < 0 || i >= s->N) return "";
    return s->keys + s->key_off[i];
}

int64_t shard_read_image(const Shard *s, int64_t i, uint8_t *buf, size_t cap, char *err,
                         size_t errlen) {
    if (i < 0 || i >= s->N) {
        set_err(err, errlen, "%s: image %lld out of range (%lld images)", s->path, (long long)i,
                (long long)s->N);
        return -1;
    }
    size_t n = shard_image_nbytes(s, i);
    if (n > cap) {
        set_err(err, errlen, "%s: image %lld: %zu bytes do not fit a %zu-byte buffer", s->path,
                (long long)i, n, cap);
        return -1;
    }
    uint64_t off = s->jpeg_offset + s->img_off[i];
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(s->fd, buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            set_err(err, errlen, "%s: image %lld: short read at byte %llu (%s)", s->path, (long long)i,
                    (unsigned long long)(off + done), r < 0 ? strerror(errno) : "end of file");
            return -1;
        }
        done += (size_t)r;
    }
    return (int64_t)n;
}

uint32_t shard_text_image(const Shard *s, int64_t t) { return s->text_img[t]; }

const char *shard_text_caption(const Shard *s, int64_t t, size_t *len) {
    if (len) *len = (size_t)(s->cap_off[t + 1] - s->cap_off[t] - 1);
    return s->caps + s->cap_off[t];
}

void shard_text_box(const Shard *s, int64_t t, float box[4]) { memcpy(box, s->box + 4 * t, 16); }

int shard_has_labels(const Shard *s) { return s->label != NULL; }
int shard_has_image2(const Shard *s) { return s->image2 != NULL; }
int shard_has_answers(const Shard *s) { return s->ans != NULL; }
int shard_has_proposals(const Shard *s) { return s->prop_off != NULL; }
int shard_has_text_keys(const Shard *s) { return s->tkey != NULL; }

int32_t shard_text_label(const Shard *s, int64_t t) { return s->label ? s->label[t] : -1; }

int64_t shard_text_image2(const Shard *s, int64_t t) {
    if (!s->image2 || s->image2[t] == UINT32_MAX) return -1;
    return s->image2[t];
}

const char *shard_text_answers(const Shard *s, int64_t t, size_t *len) {
    if (!s->ans) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = (size_t)(s->ans_off[t + 1] - s->ans_off[t] - 1);
    return s->ans + s->ans_off[t];
}

int shard_text_proposals(const Shard *s, int64_t t, const float **boxes) {
    if (!s->prop_off) {
        if (boxes) *boxes = NULL;
        return 0;
    }
    if (boxes) *boxes = s->prop + 4 * s->prop_off[t];
    return (int)(s->prop_off[t + 1] - s->prop_off[t]);
}

const char *shard_text_key(const Shard *s, int64_t t) { return s->tkey ? s->tkey + s->tkey_off[t] : ""; }
