// shard_read.c: the shard reader (shard.h): shard_open validates the file and reads its small tables
// with HDF5 once, then images are read with pread() from a plain fd (thread-safe).
#define _GNU_SOURCE
#include "data/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard_internal.h"

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
        shard_set_err(c->err, c->errlen, "%s: not a valid vlmae shard: dataset /%s/%s is missing", c->path,
                      gname, name);
        return -1;
    }
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) {
        shard_set_err(c->err, c->errlen, "%s: cannot open dataset /%s/%s: %s (corrupt or truncated file?)",
                      c->path, gname, name, shard_h5_last_error(c->h5msg));
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
        shard_set_err(c->err, c->errlen, "%s: dataset /%s/%s has the wrong type or rank (%d, want %d)",
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
        shard_set_err(c->err, c->errlen, "%s: cannot read dataset /%s/%s: %s (corrupt or truncated file?)",
                      c->path, gname, name, shard_h5_last_error(c->h5msg));
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
        shard_set_err(c->err, c->errlen,
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
        shard_set_err(c->err, c->errlen, "%s: unreadable vlmae_shard_version attribute", c->path);
        return -1;
    }
    if (version != SHARD_VERSION) {
        shard_set_err(c->err, c->errlen,
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
            shard_set_err(c->err, c->errlen, "%s: unreadable vocab_hash attribute", c->path);
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
        shard_set_err(c->err, c->errlen, "%s: /images/key has %llu entries, expected %lld", c->path,
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
                    if (!shard_buf_put(&kb, k, strlen(k) + 1)) rc = -1;
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
                    if (!shard_buf_put(&kb, k, strnlen(k, fsize) ) || !shard_buf_put(&kb, "", 1)) rc = -1;
                }
            }
            free(v);
        }
        H5Tclose(mt);
    }
    H5Dclose(d);
    if (rc != 0 && c->err && !c->err[0]) shard_set_err(c->err, c->errlen, "%s: out of memory reading keys", c->path);
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
        shard_set_err(c->err, c->errlen, "%s: /texts/%s has %llu entries, expected %lld", c->path, offname,
                      (unsigned long long)dims[0], (long long)M + 1);
    } else if (!(o = xmalloc_n(dims[0], 8))) {
        shard_set_err(c->err, c->errlen, "%s: out of memory reading /texts/%s", c->path, offname);
    } else if (read_ds(c, d, "texts", offname, H5T_NATIVE_UINT64, o, dims[0]) == 0) {
        rc = 0;
        if (o[0] != 0 || o[M] != total) rc = -1;
        for (int64_t t = 0; t < M && rc == 0; t++)
            if (o[t + 1] < o[t]) rc = -1;
        if (rc != 0)
            shard_set_err(c->err, c->errlen, "%s: /texts/%s is not a non-decreasing span of its table", c->path,
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
        shard_set_err(c->err, c->errlen, "%s: out of memory reading /texts/%s", c->path, name);
        return -1;
    }
    int rc = read_ds(c, d, "texts", name, H5T_NATIVE_UINT8, raw, n);
    H5Dclose(d);
    uint64_t *o = NULL;
    if (rc == 0) rc = read_offsets(c, gt, offname, M, n, &o);
    char *out = rc == 0 ? xmalloc_n(n + (uint64_t)M + 1, 1) : NULL;
    if (rc == 0 && !out) {
        shard_set_err(c->err, c->errlen, "%s: out of memory reading /texts/%s", c->path, name);
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
            if (c->err && !c->err[0]) shard_set_err(c->err, c->errlen, "%s: /texts/label must have %lld entries", c->path, (long long)s->M);
            return -1;
        }
    }
    if (H5Lexists(gt, "image2", H5P_DEFAULT) > 0) {
        if ((d = open_ds(c, gt, "texts", "image2", H5T_INTEGER, 1, dims)) < 0) return -1;
        int bad = (int64_t)dims[0] != s->M || !(s->image2 = xmalloc_n((uint64_t)s->M, 4)) ||
                  read_ds(c, d, "texts", "image2", H5T_NATIVE_UINT32, s->image2, (uint64_t)s->M) < 0;
        H5Dclose(d);
        if (bad) {
            if (c->err && !c->err[0]) shard_set_err(c->err, c->errlen, "%s: /texts/image2 must have %lld entries", c->path, (long long)s->M);
            return -1;
        }
        for (int64_t t = 0; t < s->M; t++) {
            if (s->image2[t] != UINT32_MAX && (int64_t)s->image2[t] >= s->N) {
                shard_set_err(c->err, c->errlen, "%s: /texts/image2[%lld] = %u but the shard has %lld images", c->path,
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
            if (c->err && !c->err[0]) shard_set_err(c->err, c->errlen, "%s: /texts/proposals must be float32 [P,4]", c->path);
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
        shard_set_err(c->err, c->errlen, "%s: not a valid vlmae shard: group /images or /texts is missing",
                      c->path);
        return -1;
    }
    gi = H5Gopen2(f, "images", H5P_DEFAULT);
    gt = H5Gopen2(f, "texts", H5P_DEFAULT);
    if (gi < 0 || gt < 0) {
        shard_set_err(c->err, c->errlen, "%s: cannot open groups: %s", c->path, shard_h5_last_error(c->h5msg));
        goto out;
    }
    // --- /images/offsets
    if ((d = open_ds(c, gi, "images", "offsets", H5T_INTEGER, 1, dims)) < 0) goto out;
    if (dims[0] < 1) {
        shard_set_err(c->err, c->errlen, "%s: /images/offsets is empty (needs N+1 entries)", c->path);
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
            shard_set_err(c->err, c->errlen,
                          "%s: /images/jpeg must be 1-byte, contiguous and unfiltered (was the file "
                          "re-packed with h5repack?)", c->path);
            goto out;
        }
        s->jpeg_size = dims[0];
        if (s->jpeg_size > 0) {
            haddr_t off = H5Dget_offset(d);
            if (off == HADDR_UNDEF) {
                shard_set_err(c->err, c->errlen, "%s: /images/jpeg has no storage allocated (incomplete file?)",
                              c->path);
                goto out;
            }
            s->jpeg_offset = off;
        }
    }
    H5Dclose(d);
    d = -1;
    if (s->img_off[0] != 0 || s->img_off[s->N] != s->jpeg_size) {
        shard_set_err(c->err, c->errlen, "%s: /images/offsets does not span /images/jpeg (%llu..%llu vs %llu bytes)",
                      c->path, (unsigned long long)s->img_off[0], (unsigned long long)s->img_off[s->N],
                      (unsigned long long)s->jpeg_size);
        goto out;
    }
    for (int64_t i = 0; i < s->N; i++) {
        if (s->img_off[i + 1] < s->img_off[i]) {
            shard_set_err(c->err, c->errlen, "%s: /images/offsets decreases at %lld", c->path, (long long)i);
            goto out;
        }
        size_t n = (size_t)(s->img_off[i + 1] - s->img_off[i]);
        if (n > s->max_img) s->max_img = n;
    }
    // --- /images/hw
    if ((d = open_ds(c, gi, "images", "hw", H5T_INTEGER, 2, dims)) < 0) goto out;
    if ((int64_t)dims[0] != s->N || dims[1] != 2) {
        shard_set_err(c->err, c->errlen, "%s: /images/hw has shape [%llu,%llu], expected [%lld,2]", c->path,
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
            shard_set_err(c->err, c->errlen, "%s: /texts/image[%lld] = %u but the shard has %lld images",
                          c->path, (long long)t, s->text_img[t], (long long)s->N);
            goto out;
        }
    }
    // --- /texts/caption_offsets + /texts/caption (re-laid out with a NUL after each caption)
    {
        if ((d = open_ds(c, gt, "texts", "caption_offsets", H5T_INTEGER, 1, dims)) < 0) goto out;
        if ((int64_t)dims[0] != s->M + 1) {
            shard_set_err(c->err, c->errlen, "%s: /texts/caption_offsets has %llu entries, expected %lld",
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
            shard_set_err(c->err, c->errlen, "%s: /texts/caption_offsets does not span /texts/caption", c->path);
            goto out;
        }
        for (int64_t t = 0; t < s->M; t++) {
            if (co[t + 1] < co[t]) {
                shard_set_err(c->err, c->errlen, "%s: /texts/caption_offsets decreases at %lld", c->path,
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
        shard_set_err(c->err, c->errlen, "%s: /texts/box has shape [%llu,%llu], expected [%lld,4]", c->path,
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
    shard_set_err(c->err, c->errlen, "%s: out of memory reading the shard tables", c->path);
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
        shard_set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    s->fd = -1;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        shard_set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    struct stat st;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        shard_set_err(err, errlen, "%s: cannot open shard: %s", path, strerror(errno));
        shard_close(s);
        return NULL;
    }
    H5Quiet q;
    shard_h5_quiet_begin(&q);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    // Read-only use: don't need (or want, on Lustre/GPFS without flock) HDF5's file locks.
    H5Pset_file_locking(fapl, 0, 1);
#endif
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    int rc = 0;
    if (f < 0) {
        // (read the error stack now: the next HDF5 call clears it)
        shard_set_err(err, errlen,
                      "%s: cannot open as HDF5 (%lld bytes; truncated, still being written, or not a "
                      "shard?): %s", path, (long long)st.st_size, shard_h5_last_error(c.h5msg));
        rc = -1;
    }
    H5Pclose(fapl);
    if (rc == 0) rc = read_attrs(&c, f, s);
    if (rc == 0) rc = open_tables(&c, f, s, flags);
    if (f >= 0 && H5Fclose(f) < 0 && rc == 0) {
        shard_set_err(err, errlen, "%s: closing HDF5 file: %s", path, shard_h5_last_error(c.h5msg));
        rc = -1;
    }
    H5Eclear2(H5E_DEFAULT);
    shard_h5_quiet_end(&q);
    if (rc == 0 && s->jpeg_size > 0 && (uint64_t)st.st_size < s->jpeg_offset + s->jpeg_size) {
        shard_set_err(err, errlen,
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
        shard_set_err(err, errlen, "%s: image %lld out of range (%lld images)", s->path, (long long)i,
                      (long long)s->N);
        return -1;
    }
    size_t n = shard_image_nbytes(s, i);
    if (n > cap) {
        shard_set_err(err, errlen, "%s: image %lld: %zu bytes do not fit a %zu-byte buffer", s->path,
                      (long long)i, n, cap);
        return -1;
    }
    uint64_t off = s->jpeg_offset + s->img_off[i];
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(s->fd, buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            shard_set_err(err, errlen, "%s: image %lld: short read at byte %llu (%s)", s->path, (long long)i,
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
