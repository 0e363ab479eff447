// checkpoint.c: HDF5 training checkpoints (layout and guarantees in checkpoint.h).
#define _GNU_SOURCE  // mmap, fsync, strdup, nftw, mkdtemp
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"

#define FORMAT_NAME "vlmae-checkpoint"
// Float datasets are chunked (Fletcher-32 needs chunks); a chunk holds whole rows, at most this
// many bytes (well under HDF5's 4 GiB chunk limit).
#define CHUNK_BYTES (64u << 20)

// ---------------------------------------------------------------------------------------------
// Errors: our own message, plus the most specific line of HDF5's error stack (the OS error text
// when there is one, e.g. "No space left on device").

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} Ctx;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    char *cause = data;
    if (cause[0] || !e->desc || !e->desc[0]) return 0;
    const char *m = strstr(e->desc, "error message = '");
    if (m) {  // "... errno = 28, error message = 'No space left on device', ..."
        m += strlen("error message = '");
        const char *q = strchr(m, '\'');
        size_t k = q ? (size_t)(q - m) : strlen(m);
        if (k > 255) k = 255;
        memcpy(cause, m, k);
        cause[k] = 0;
    } else {
        snprintf(cause, 256, "%s", e->desc);
    }
    return 0;
}

static int cfail(Ctx *c, int with_hdf5, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(Ctx *c, int with_hdf5, const char *fmt, ...) {
    if (!c->err || !c->errlen) return -1;
    char cause[256] = "";
    if (with_hdf5) H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, cause);
    int k = snprintf(c->err, c->errlen, "%s: ", c->path);
    if (k < 0 || (size_t)k >= c->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    int k2 = vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    if (k2 >= 0 && cause[0] && (size_t)(k + k2) < c->errlen)
        snprintf(c->err + k + k2, c->errlen - (size_t)(k + k2), " (%s)", cause);
    return -1;
}

// HDF5 prints its error stack on every failure by default; our functions turn that off and put
// the caller's setting back on the way out.
typedef struct {
    H5E_auto2_t func;
    void *data;
} H5Quiet;

static void h5_quiet(H5Quiet *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void h5_restore(const H5Quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

static hid_t make_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    // The 1.8 file format: readable by every HDF5 since 2008 (h5py included) and it stores
    // attributes over 64 KiB (a long config YAML) densely.
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
    // H5Fclose really closes (and flushes), so its return value reports write errors.
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
    // Parallel file systems mounted without flock support: do not fail, just do not lock.
    H5Pset_file_locking(fapl, 1, 1);
#endif
    return fapl;
}

// ---------------------------------------------------------------------------------------------
// Writing

static int write_f32(Ctx *c, hid_t loc, const char *name, const char *what, int ndim,
                     const hsize_t *dims, const float *data) {
    int rc = -1;
    hid_t space = -1, dcpl = -1, ds = -1;
    space = H5Screate_simple(ndim, dims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0) {
        cfail(c, 1, "cannot create the dataspace of %s", what);
        goto out;
    }
    hsize_t numel = 1, row = 4, chunk[8];
    for (int i = 0; i < ndim; i++) numel *= dims[i], chunk[i] = dims[i];
    for (int i = 1; i < ndim; i++) row *= dims[i];
    if (numel > 0 && row <= CHUNK_BYTES && H5Zfilter_avail(H5Z_FILTER_FLETCHER32) > 0) {
        if (chunk[0] * row > CHUNK_BYTES) chunk[0] = CHUNK_BYTES / row;
        if (H5Pset_chunk(dcpl, ndim, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0) {
            cfail(c, 1, "cannot set up chunked storage for %s", what);
            goto out;
        }
    }
    ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) {
        cfail(c, 1, "cannot create the dataset of %s", what);
        goto out;
    }
    if (numel > 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        cfail(c, 1, "writing %s failed", what);
        goto out;
    }
    rc = 0;
out:
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0) rc = cfail(c, 1, "writing %s failed", what);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int write_attr(Ctx *c, hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space >= 0 ? H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = 0;
    if (a < 0 || H5Awrite(a, mem_type, value) < 0) rc = cfail(c, 1, "cannot write attribute %s", name);
    if (a >= 0 && H5Aclose(a) < 0 && rc == 0) rc = cfail(c, 1, "cannot write attribute %s", name);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int write_attr_i64(Ctx *c, hid_t loc, const char *name, int64_t v) {
    return write_attr(c, loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int write_attr_str(Ctx *c, hid_t loc, const char *name, const char *s) {
    size_t len = strlen(s);
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, len + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        if (t >= 0) H5Tclose(t);
        return cfail(c, 1, "cannot make the string type of attribute %s", name);
    }
    int rc = write_attr(c, loc, name, t, t, s);
    H5Tclose(t);
    return rc;
}

static hid_t make_group(Ctx *c, hid_t loc, const char *name) {
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) cfail(c, 1, "cannot create group %s", name);
    return g;
}

// Writes the parameters of ps as datasets of the group `group`; data from base (ps->data or an
// AdamW moment in the same layout).
static int write_set(Ctx *c, hid_t file, const char *group, const ParamSet *ps, const float *base,
                     const char *label) {
    hid_t g = make_group(c, file, group);
    if (g < 0) return -1;
    int rc = 0;
    for (int i = 0; i < ps->count && rc == 0; i++) {
        const ParamInfo *pi = &ps->p[i];
        hsize_t dims[4];
        for (int d = 0; d < pi->ndim; d++) dims[d] = (hsize_t)pi->shape[d];
        char what[160];
        snprintf(what, sizeof(what), "%s %s", label, pi->name);
        rc = write_f32(c, g, pi->name, what, pi->ndim, dims, base + pi->offset);
    }
    if (H5Gclose(g) < 0 && rc == 0) rc = cfail(c, 1, "writing group %s failed", group);
    return rc;
}

static int all_finite(const float *x, size_t n) {
    int bad = 0;
#pragma omp parallel for reduction(| : bad)
    for (size_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return !bad;
}

static int check_finite_set(Ctx *c, const ParamSet *ps, const float *base, const char *label) {
    for (int i = 0; i < ps->count; i++) {
        const ParamInfo *pi = &ps->p[i];
        if (!all_finite(base + pi->offset, pi->n))
            return cfail(c, 0, "refusing to save: %s %s has non-finite values (NaN or Inf)", label, pi->name);
    }
    return 0;
}

static void fsync_dir_of(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);  // best effort: some file systems do not support fsync on a directory
        close(fd);
    }
    free(copy);
}

// The file is built in memory (HDF5's core driver) and written by us: an I/O error (disk full,
// quota, EIO) then never happens inside HDF5, which cannot close a file whose flush failed (the
// handle stays open and the library crashes at exit), and our message has the OS error. It costs
// one in-memory copy of the checkpoint while saving (3.8 GB for the base model with AdamW state).
// The callbacks let us keep the driver's buffer at close instead of copying it out.
#define IMAGE_INCREMENT (1u << 20)

typedef struct {
    void *buf;
    size_t size;  // the driver's view (its end of file)
    size_t cap;   // allocated: grows geometrically, so a multi-GB image is not realloc'ed per MiB
    int kept;
} Image;

static void *img_grow(Image *im, void *ptr, size_t size) {
    if (ptr && ptr == im->buf && size <= im->cap) {
        im->size = size;
        return ptr;
    }
    size_t cap = im->cap + im->cap / 2;
    if (cap < size) cap = size;
    if (cap < ((size_t)16 << 20)) cap = (size_t)16 << 20;
    void *p = realloc(ptr, cap);  // fresh pages are not touched until the driver writes them
    if (p) im->buf = p, im->size = size, im->cap = cap;
    return p;
}

static void *img_malloc(size_t size, H5FD_file_image_op_t op, void *ud) {
    (void)op;
    return img_grow(ud, NULL, size);
}

static void *img_memcpy(void *dst, const void *src, size_t size, H5FD_file_image_op_t op, void *ud) {
    (void)op, (void)ud;
    return memcpy(dst, src, size);
}

static void *img_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *ud) {
    (void)op;
    return img_grow(ud, ptr, size);
}

static herr_t img_free(void *ptr, H5FD_file_image_op_t op, void *ud) {
    Image *im = ud;
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && ptr && ptr == im->buf) {
        im->kept = 1;  // ours now
        return 0;
    }
    free(ptr);
    return 0;
}

static void *img_udata_copy(void *ud) { return ud; }
static herr_t img_udata_free(void *ud) {
    (void)ud;
    return 0;
}

// Bytes of the image to write: the end-of-file address stored in the superblock (versions 2/3,
// which the V18 format bounds give us: signature 8, version, offset size, length size, flags,
// base address, extension address, EOF address), else the whole buffer (zero tail; harmless).
static size_t image_length(const Image *im) {
    const unsigned char *b = im->buf;
    if (im->size >= 48 && memcmp(b, "\211HDF\r\n\032\n", 8) == 0 && (b[8] == 2 || b[8] == 3) && b[9] == 8) {
        uint64_t base = 0, eof = 0;
        for (int i = 7; i >= 0; i--) base = base << 8 | b[12 + i], eof = eof << 8 | b[28 + i];
        if (base == 0 && eof >= 48 && eof <= im->size) return (size_t)eof;
    }
    return im->size;
}

static int save_contents(Ctx *c, hid_t f, const Model *m, const AdamW *opt, const CheckpointMeta *meta) {
    const ModelConfig *cfg = &m->cfg;
    if (write_set(c, f, "params", &m->params, m->params.data, "parameter")) return -1;
    if (write_set(c, f, "momentum", &m->momentum, m->momentum.data, "momentum parameter")) return -1;
    if (opt) {
        hid_t a = make_group(c, f, "adam");
        if (a < 0) return -1;
        int rc = write_set(c, a, "m", &m->params, opt->m, "AdamW first moment of");
        if (!rc) rc = write_set(c, a, "v", &m->params, opt->v, "AdamW second moment of");
        if (!rc) rc = write_attr_i64(c, a, "t", opt->t);
        H5Gclose(a);
        if (rc) return -1;
    }
    hid_t q = make_group(c, f, "queue");
    if (q < 0) return -1;
    hsize_t qd[2] = {(hsize_t)cfg->queue_size, (hsize_t)cfg->embed_dim};
    int rc = write_f32(c, q, "image", "the image queue", 2, qd, m->image_queue);
    if (!rc) rc = write_f32(c, q, "text", "the text queue", 2, qd, m->text_queue);
    if (!rc) rc = write_attr_i64(c, q, "ptr", m->queue_ptr);
    H5Gclose(q);
    if (rc) return -1;

    CheckpointMeta zero = {0};
    if (!meta) meta = &zero;
    uint64_t seed = meta->seed;
    int32_t ws = meta->world_size, version = CHECKPOINT_FORMAT_VERSION;
    if (write_attr_str(c, f, "format", FORMAT_NAME) ||
        write_attr(c, f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version) ||
        write_attr_i64(c, f, "step", meta->step) || write_attr_i64(c, f, "epoch", meta->epoch) ||
        write_attr_i64(c, f, "epoch_step", meta->epoch_step) ||
        write_attr(c, f, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &seed) ||
        write_attr(c, f, "world_size", H5T_STD_I32LE, H5T_NATIVE_INT32, &ws) ||
        write_attr_str(c, f, "config_yaml", meta->config_yaml ? meta->config_yaml : ""))
        return -1;
    // Everything above reaches the file before the marker does.
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) return cfail(c, 1, "flushing the file failed");
    int32_t one = 1;
    return write_attr(c, f, "complete", H5T_STD_I32LE, H5T_NATIVE_INT32, &one);
}

int checkpoint_save(const char *path, const Model *m, const AdamW *opt, const CheckpointMeta *meta,
                    char *err, size_t errlen) {
    Ctx c = {path, err, errlen};
    if (opt && opt->n != m->params.total)
        return cfail(&c, 0, "the optimizer holds %zu values, the model %zu", opt->n, m->params.total);
    // No NaN ever reaches a checkpoint.
    if (check_finite_set(&c, &m->params, m->params.data, "parameter") ||
        check_finite_set(&c, &m->momentum, m->momentum.data, "momentum parameter"))
        return -1;
    if (opt && (check_finite_set(&c, &m->params, opt->m, "AdamW first moment of") ||
                check_finite_set(&c, &m->params, opt->v, "AdamW second moment of")))
        return -1;
    size_t qn = (size_t)m->cfg.queue_size * m->cfg.embed_dim;
    if (!all_finite(m->image_queue, qn) || !all_finite(m->text_queue, qn))
        return cfail(&c, 0, "refusing to save: the feature queue has non-finite values");

    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) return cfail(&c, 0, "path too long");
    // Create PATH.tmp first, so an unwritable directory fails before any work.
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return cfail(&c, 0, "cannot create %s: %s", tmp, strerror(errno));

    H5Quiet quiet;
    h5_quiet(&quiet);
    int rc = -1;
    Image img = {0};
    hid_t f = -1, fapl = make_fapl();
    H5FD_file_image_callbacks_t cb = {img_malloc, img_memcpy, img_realloc, img_free, img_udata_copy, img_udata_free, &img};
    if (fapl < 0 || H5Pset_fapl_core(fapl, IMAGE_INCREMENT, 0) < 0 || H5Pset_file_image_callbacks(fapl, &cb) < 0) {
        cfail(&c, 1, "cannot set up the HDF5 in-memory file driver");
        if (fapl >= 0) H5Pclose(fapl);
        goto out;
    }
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f < 0) cfail(&c, 1, "cannot create the HDF5 file image");  // before another call clears the error stack
    H5Pclose(fapl);
    if (f < 0) goto out;
    int wrc = save_contents(&c, f, m, opt, meta);
    if (wrc == 0 && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) wrc = cfail(&c, 1, "building the file image failed");
    herr_t crc = H5Fclose(f);
    if (wrc == 0 && crc < 0) wrc = cfail(&c, 1, "building the file image failed");
    if (wrc) goto out;
    if (!img.kept) {
        cfail(&c, 0, "internal error: HDF5 released no file image");
        goto out;
    }
    size_t len = image_length(&img);
    for (size_t done = 0; done < len;) {
        ssize_t k = write(fd, (const char *)img.buf + done, MIN(len - done, (size_t)1 << 30));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            cfail(&c, 0, "writing %s failed: %s", tmp, k < 0 ? strerror(errno) : "no progress");
            goto out;
        }
        done += (size_t)k;
    }
    // TEST HOOK (tests/test_faults.sh; inert unless set): VLMAE_TEST_CKPT_SLEEP=S sleeps S seconds
    // here, with PATH.tmp written but not renamed, so a test can kill the process mid-save.
    const char *hook = getenv("VLMAE_TEST_CKPT_SLEEP");
    if (hook && *hook) {
        fprintf(stderr, "vlmae: TEST HOOK VLMAE_TEST_CKPT_SLEEP: %s written, sleeping %s s\n", tmp, hook);
        sleep((unsigned)atoi(hook));
    }
    if (fsync(fd) != 0) {
        cfail(&c, 0, "cannot sync %s to disk: %s", tmp, strerror(errno));
        goto out;
    }
    int cl = close(fd);
    fd = -1;
    if (cl != 0) {
        cfail(&c, 0, "writing %s failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        cfail(&c, 0, "cannot rename %s into place: %s", tmp, strerror(errno));
        goto out;
    }
    fsync_dir_of(path);
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc) unlink(tmp);
    if (img.kept) free(img.buf);
    h5_restore(&quiet);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Reading

static int has_attr(hid_t loc, const char *name) { return H5Aexists(loc, name) > 0; }

static int read_attr(Ctx *c, hid_t loc, const char *name, hid_t mem_type, void *out) {
    if (!has_attr(loc, name)) return cfail(c, 0, "attribute %s is missing: not a vlmae checkpoint?", name);
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Aread(a, mem_type, out) < 0) rc = cfail(c, 1, "cannot read attribute %s", name);
    if (a >= 0) H5Aclose(a);
    return rc;
}

// Returns a malloc'ed copy of a string attribute, or NULL (error set).
static char *read_attr_str(Ctx *c, hid_t loc, const char *name) {
    if (!has_attr(loc, name)) {
        cfail(c, 0, "attribute %s is missing", name);
        return NULL;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
    char *s = NULL;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
        cfail(c, 1, "attribute %s is not a string", name);
    } else if (H5Tis_variable_str(ft) > 0) {
        char *vs = NULL;
        hid_t mt = H5Tcopy(ft);  // same character set as the file's type (no conversion path otherwise)
        if (H5Aread(a, mt, &vs) < 0 || !vs) cfail(c, 1, "cannot read attribute %s", name);
        else s = strdup(vs);
        if (vs) H5free_memory(vs);
        H5Tclose(mt);
    } else {
        size_t len = H5Tget_size(ft);
        hid_t mt = H5Tcopy(ft);
        H5Tset_size(mt, len + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        s = calloc(len + 2, 1);
        if (!s) cfail(c, 0, "out of memory reading attribute %s", name);
        else if (H5Aread(a, mt, s) < 0) free(s), s = NULL, cfail(c, 1, "cannot read attribute %s", name);
        H5Tclose(mt);
    }
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return s;
}

static void shape_str(char *buf, size_t n, int ndim, const hsize_t *dims) {
    size_t k = 0;
    buf[0] = 0;
    if (ndim == 0) snprintf(buf, n, "scalar");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? "x%llu" : "%llu", (unsigned long long)dims[i]);
}

// Opens the float dataset `name` in loc and checks its shape. Returns the dataset or -1.
static hid_t open_checked(Ctx *c, hid_t loc, const char *name, const char *label, int ndim,
                          const hsize_t *want) {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) {
        cfail(c, 0, "%s %s is missing from the checkpoint", label, name);
        return -1;
    }
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) {
        cfail(c, 1, "cannot open %s %s", label, name);
        return -1;
    }
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[H5S_MAX_RANK];
    int ok = nd >= 0 && nd <= H5S_MAX_RANK && H5Sget_simple_extent_dims(sp, dims, NULL) >= 0;
    int is_float = ty >= 0 && H5Tget_class(ty) == H5T_FLOAT;
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    if (!ok) {
        cfail(c, 1, "cannot read the shape of %s %s", label, name);
        H5Dclose(ds);
        return -1;
    }
    int same = nd == ndim;
    for (int i = 0; same && i < nd; i++) same = dims[i] == want[i];
    if (!same) {
        char a[128], b[128];
        shape_str(a, sizeof(a), nd, dims);
        shape_str(b, sizeof(b), ndim, want);
        cfail(c, 0, "%s %s has shape %s, the model expects %s", label, name, a, b);
        H5Dclose(ds);
        return -1;
    }
    if (!is_float) {
        cfail(c, 0, "%s %s is not a floating-point dataset", label, name);
        H5Dclose(ds);
        return -1;
    }
    return ds;
}

typedef struct {
    const ParamSet *ps;
    char extra[96];
} ExtraScan;

static herr_t extra_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g, (void)info;
    ExtraScan *s = data;
    if (!params_find(s->ps, name)) {
        snprintf(s->extra, sizeof(s->extra), "%s", name);
        return 1;  // stop
    }
    return 0;
}

// Validates (data == NULL) or reads (data != NULL) the group `group` against ps.
static int load_set(Ctx *c, hid_t file, const char *group, const ParamSet *ps, float *data,
                    const char *label) {
    if (H5Lexists(file, group, H5P_DEFAULT) <= 0) return cfail(c, 0, "group /%s is missing", group);
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0) return cfail(c, 1, "cannot open group /%s", group);
    int rc = 0;
    for (int i = 0; i < ps->count && rc == 0; i++) {
        const ParamInfo *pi = &ps->p[i];
        hsize_t want[4];
        for (int d = 0; d < pi->ndim; d++) want[d] = (hsize_t)pi->shape[d];
        hid_t ds = open_checked(c, g, pi->name, label, pi->ndim, want);
        if (ds < 0) {
            rc = -1;
            break;
        }
        if (data && pi->n && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data + pi->offset) < 0)
            rc = cfail(c, 1, "reading %s %s failed (corrupt or truncated file?)", label, pi->name);
        H5Dclose(ds);
    }
    if (rc == 0 && !data) {
        H5G_info_t gi;
        if (H5Gget_info(g, &gi) < 0) {
            rc = cfail(c, 1, "cannot list group /%s", group);
        } else if (gi.nlinks != (hsize_t)ps->count) {
            ExtraScan s = {ps, ""};
            H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, extra_cb, &s);
            if (s.extra[0])
                rc = cfail(c, 0, "%s %s in the checkpoint is not in the model (different configuration?)", label, s.extra);
            else
                rc = cfail(c, 0, "group /%s has %llu entries, the model has %d %ss", group,
                           (unsigned long long)gi.nlinks, ps->count, label);
        }
    }
    H5Gclose(g);
    return rc;
}

static int load_queue(Ctx *c, hid_t file, Model *m, int read) {
    hsize_t qd[2] = {(hsize_t)m->cfg.queue_size, (hsize_t)m->cfg.embed_dim};
    if (H5Lexists(file, "queue", H5P_DEFAULT) <= 0) return cfail(c, 0, "group /queue is missing");
    hid_t q = H5Gopen2(file, "queue", H5P_DEFAULT);
    if (q < 0) return cfail(c, 1, "cannot open group /queue");
    int rc = 0;
    const char *names[2] = {"image", "text"};
    float *bufs[2] = {m->image_queue, m->text_queue};
    for (int i = 0; i < 2 && rc == 0; i++) {
        hid_t ds = open_checked(c, q, names[i], "queue", 2, qd);
        if (ds < 0) {
            rc = -1;
            break;
        }
        if (read && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bufs[i]) < 0)
            rc = cfail(c, 1, "reading queue %s failed (corrupt or truncated file?)", names[i]);
        H5Dclose(ds);
    }
    int64_t ptr = 0;
    if (rc == 0) rc = read_attr(c, q, "ptr", H5T_NATIVE_INT64, &ptr);
    if (rc == 0 && (ptr < 0 || ptr >= m->cfg.queue_size))
        rc = cfail(c, 0, "queue pointer %lld is outside the queue of %d", (long long)ptr, m->cfg.queue_size);
    if (rc == 0 && read) m->queue_ptr = (int)ptr;
    H5Gclose(q);
    return rc;
}

// Checks the format marker, the version and the completion marker.
static int check_header(Ctx *c, hid_t f) {
    int32_t version = 0, complete = 0;
    if (!has_attr(f, "format_version")) return cfail(c, 0, "not a vlmae checkpoint (no format_version attribute)");
    if (read_attr(c, f, "format_version", H5T_NATIVE_INT32, &version)) return -1;
    if (version != CHECKPOINT_FORMAT_VERSION)
        return cfail(c, 0, "checkpoint format version %d, this vlmae reads version %d", (int)version,
                     CHECKPOINT_FORMAT_VERSION);
    if (!has_attr(f, "complete")) return cfail(c, 0, "incomplete checkpoint (no complete marker: the save was interrupted)");
    if (read_attr(c, f, "complete", H5T_NATIVE_INT32, &complete)) return -1;
    if (complete != 1) return cfail(c, 0, "incomplete checkpoint (complete = %d)", (int)complete);
    return 0;
}

static hid_t open_ro(Ctx *c, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        cfail(c, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    hid_t fapl = make_fapl();
    hid_t f = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
    if (f < 0) cfail(c, 1, "cannot open as an HDF5 file (corrupt or truncated?)");
    if (fapl >= 0) H5Pclose(fapl);
    return f;
}

int checkpoint_load(const char *path, Model *m, AdamW *opt, CheckpointMeta *meta, char *err,
                    size_t errlen) {
    Ctx c = {path, err, errlen};
    if (opt && opt->n != m->params.total)
        return cfail(&c, 0, "the optimizer holds %zu values, the model %zu", opt->n, m->params.total);
    H5Quiet quiet;
    h5_quiet(&quiet);
    int rc = -1;
    char *yaml = NULL;
    hid_t f = open_ro(&c, path), adam = -1;
    if (f < 0) goto out;
    if (check_header(&c, f)) goto out;
    CheckpointMeta mt = {0};
    int32_t ws = 0;
    if (read_attr(&c, f, "step", H5T_NATIVE_INT64, &mt.step) ||
        read_attr(&c, f, "epoch", H5T_NATIVE_INT64, &mt.epoch) ||
        read_attr(&c, f, "epoch_step", H5T_NATIVE_INT64, &mt.epoch_step) ||
        read_attr(&c, f, "seed", H5T_NATIVE_UINT64, &mt.seed) ||
        read_attr(&c, f, "world_size", H5T_NATIVE_INT32, &ws))
        goto out;
    mt.world_size = ws;
    if (meta && !(yaml = read_attr_str(&c, f, "config_yaml"))) goto out;
    if (opt) {
        if (H5Lexists(f, "adam", H5P_DEFAULT) <= 0) {
            cfail(&c, 0, "the checkpoint has no optimizer state (/adam); load it as weights only");
            goto out;
        }
        if ((adam = H5Gopen2(f, "adam", H5P_DEFAULT)) < 0) {
            cfail(&c, 1, "cannot open group /adam");
            goto out;
        }
    }
    // Pass 0 validates every name and shape; pass 1 reads.
    for (int pass = 0; pass < 2; pass++) {
        if (load_set(&c, f, "params", &m->params, pass ? m->params.data : NULL, "parameter") ||
            load_set(&c, f, "momentum", &m->momentum, pass ? m->momentum.data : NULL, "momentum parameter") ||
            load_queue(&c, f, m, pass))
            goto out;
        if (opt && (load_set(&c, adam, "m", &m->params, pass ? opt->m : NULL, "AdamW first moment of") ||
                    load_set(&c, adam, "v", &m->params, pass ? opt->v : NULL, "AdamW second moment of")))
            goto out;
    }
    if (opt) {
        int64_t t = 0;
        if (read_attr(&c, adam, "t", H5T_NATIVE_INT64, &t)) goto out;
        opt->t = t;
    }
    if (meta) {
        *meta = mt;
        meta->config_yaml = yaml;
        yaml = NULL;
    }
    rc = 0;
out:
    free(yaml);
    if (adam >= 0) H5Gclose(adam);
    if (f >= 0) H5Fclose(f);
    h5_restore(&quiet);
    return rc;
}

void checkpoint_meta_free(CheckpointMeta *meta) {
    if (!meta) return;
    free(meta->config_yaml);
    meta->config_yaml = NULL;
}

// ---------------------------------------------------------------------------------------------
// Run directories

int checkpoint_path(char *buf, size_t n, const char *run_dir, int64_t step) {
    int k = run_dir && run_dir[0] ? snprintf(buf, n, "%s/ckpt-%08lld.h5", run_dir, (long long)step)
                                  : snprintf(buf, n, "ckpt-%08lld.h5", (long long)step);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

// Step of a canonical checkpoint name ("ckpt-%08lld.h5"), or -1.
static int64_t parse_name(const char *name) {
    if (strncmp(name, "ckpt-", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t step = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (step > (INT64_MAX - 9) / 10) return -1;
        step = step * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || strcmp(p, ".h5") != 0) return -1;
    char canon[64];
    snprintf(canon, sizeof(canon), "ckpt-%08lld.h5", (long long)step);
    return strcmp(canon, name) == 0 ? step : -1;
}

typedef struct {
    int64_t step;
    char *path;
} Found;

static int cmp_found_desc(const void *a, const void *b) {
    const Found *x = a, *y = b;
    return x->step < y->step ? 1 : x->step > y->step ? -1 : 0;
}

// Lists the checkpoint files of run_dir, newest first. Returns the count or -1.
static int list_checkpoints(const char *run_dir, Found **out) {
    *out = NULL;
    DIR *d = opendir(run_dir);
    if (!d) {
        fprintf(stderr, "vlmae: cannot read checkpoint directory %s: %s\n", run_dir, strerror(errno));
        return -1;
    }
    Found *v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t step = parse_name(e->d_name);
        if (step < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            Found *nv = realloc(v, (size_t)cap * sizeof(Found));
            if (!nv) break;
            v = nv;
        }
        size_t len = strlen(run_dir) + strlen(e->d_name) + 2;
        v[n].path = malloc(len);
        if (!v[n].path) break;
        snprintf(v[n].path, len, "%s/%s", run_dir, e->d_name);
        v[n].step = step;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof(Found), cmp_found_desc);
    *out = v;
    return n;
}

static void free_found(Found *v, int n) {
    for (int i = 0; i < n; i++) free(v[i].path);
    free(v);
}

// 0: a complete checkpoint (header checks only; values are verified by checkpoint_load).
static int check_complete(const char *path, char *err, size_t errlen) {
    Ctx c = {path, err, errlen};
    H5Quiet quiet;
    h5_quiet(&quiet);
    hid_t f = open_ro(&c, path);
    int rc = f < 0 ? -1 : check_header(&c, f);
    if (f >= 0) H5Fclose(f);
    h5_restore(&quiet);
    return rc;
}

int checkpoint_find_latest(const char *run_dir, char *path_out, size_t n) {
    Found *v;
    int count = list_checkpoints(run_dir, &v);
    if (count < 0) return -1;
    int rc = 1;
    for (int i = 0; i < count; i++) {
        char why[1024];
        if (check_complete(v[i].path, why, sizeof(why)) != 0) {
            fprintf(stderr, "vlmae: skipping checkpoint %s\n", why);
            continue;
        }
        if (strlen(v[i].path) >= n) {
            fprintf(stderr, "vlmae: checkpoint path %s is too long\n", v[i].path);
            rc = -1;
        } else {
            strcpy(path_out, v[i].path);
            rc = 0;
        }
        break;
    }
    free_found(v, count);
    return rc;
}

int checkpoint_prune(const char *run_dir, int keep) {
    if (keep <= 0) return 0;
    Found *v;
    int count = list_checkpoints(run_dir, &v);
    if (count < 0) return -1;
    int kept = 0, deleted = 0, rc = 0;
    for (int i = 0; i < count; i++) {
        char why[1024];
        if (check_complete(v[i].path, why, sizeof(why)) != 0) continue;  // left for inspection
        if (kept < keep) {
            kept++;
            continue;
        }
        if (unlink(v[i].path) != 0) {
            fprintf(stderr, "vlmae: cannot delete old checkpoint %s: %s\n", v[i].path, strerror(errno));
            rc = -1;
        } else {
            deleted++;
        }
    }
    free_found(v, count);
    return rc ? -1 : deleted;
}
