// checkpoint_write.c: checkpoint_save (layout and guarantees in checkpoint.h): every value
// checked finite, the HDF5 file built in memory (core driver) and written out by our own code,
// PATH.tmp fsync'ed and renamed into place.
#define _GNU_SOURCE  // fsync, strdup
#include "train/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "train/checkpoint_internal.h"

#define FORMAT_NAME "vlmae-checkpoint"
// Float datasets are chunked (Fletcher-32 needs chunks); a chunk holds whole rows, at most this
// many bytes (well under HDF5's 4 GiB chunk limit).
#define CHUNK_BYTES (64u << 20)

// ---------------------------------------------------------------------------------------------
// Datasets, attributes, groups; finiteness

static int write_f32(CkptCtx *c, hid_t loc, const char *name, const char *what, int ndim,
                     const hsize_t *dims, const float *data) {
    int rc = -1;
    hid_t space = -1, dcpl = -1, ds = -1;
    space = H5Screate_simple(ndim, dims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0) {
        ckpt_fail(c, 1, "cannot create the dataspace of %s", what);
        goto out;
    }
    hsize_t numel = 1, row = 4, chunk[8];
    for (int i = 0; i < ndim; i++) numel *= dims[i], chunk[i] = dims[i];
    for (int i = 1; i < ndim; i++) row *= dims[i];
    if (numel > 0 && row <= CHUNK_BYTES && H5Zfilter_avail(H5Z_FILTER_FLETCHER32) > 0) {
        if (chunk[0] * row > CHUNK_BYTES) chunk[0] = CHUNK_BYTES / row;
        if (H5Pset_chunk(dcpl, ndim, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0) {
            ckpt_fail(c, 1, "cannot set up chunked storage for %s", what);
            goto out;
        }
    }
    ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) {
        ckpt_fail(c, 1, "cannot create the dataset of %s", what);
        goto out;
    }
    if (numel > 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        ckpt_fail(c, 1, "writing %s failed", what);
        goto out;
    }
    rc = 0;
out:
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0) rc = ckpt_fail(c, 1, "writing %s failed", what);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int write_attr(CkptCtx *c, hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space >= 0 ? H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = 0;
    if (a < 0 || H5Awrite(a, mem_type, value) < 0) rc = ckpt_fail(c, 1, "cannot write attribute %s", name);
    if (a >= 0 && H5Aclose(a) < 0 && rc == 0) rc = ckpt_fail(c, 1, "cannot write attribute %s", name);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int write_attr_i64(CkptCtx *c, hid_t loc, const char *name, int64_t v) {
    return write_attr(c, loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int write_attr_str(CkptCtx *c, hid_t loc, const char *name, const char *s) {
    size_t len = strlen(s);
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, len + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        if (t >= 0) H5Tclose(t);
        return ckpt_fail(c, 1, "cannot make the string type of attribute %s", name);
    }
    int rc = write_attr(c, loc, name, t, t, s);
    H5Tclose(t);
    return rc;
}

static hid_t make_group(CkptCtx *c, hid_t loc, const char *name) {
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) ckpt_fail(c, 1, "cannot create group %s", name);
    return g;
}

// Writes the parameters of ps as datasets of the group `group`; data from base (ps->data or an
// AdamW moment in the same layout).
static int write_set(CkptCtx *c, hid_t file, const char *group, const ParamSet *ps, const float *base,
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
    if (H5Gclose(g) < 0 && rc == 0) rc = ckpt_fail(c, 1, "writing group %s failed", group);
    return rc;
}

static int all_finite(const float *x, size_t n) {
    int bad = 0;
#pragma omp parallel for reduction(| : bad)
    for (size_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return !bad;
}

static int check_finite_set(CkptCtx *c, const ParamSet *ps, const float *base, const char *label) {
    for (int i = 0; i < ps->count; i++) {
        const ParamInfo *pi = &ps->p[i];
        if (!all_finite(base + pi->offset, pi->n))
            return ckpt_fail(c, 0, "refusing to save: %s %s has non-finite values (NaN or Inf)", label, pi->name);
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

static int save_contents(CkptCtx *c, hid_t f, const Model *m, const AdamW *opt, const CheckpointMeta *meta) {
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
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) return ckpt_fail(c, 1, "flushing the file failed");
    int32_t one = 1;
    return write_attr(c, f, "complete", H5T_STD_I32LE, H5T_NATIVE_INT32, &one);
}

int checkpoint_save(const char *path, const Model *m, const AdamW *opt, const CheckpointMeta *meta,
                    char *err, size_t errlen) {
    CkptCtx c = {path, err, errlen};
    if (opt && opt->n != m->params.total)
        return ckpt_fail(&c, 0, "the optimizer holds %zu values, the model %zu", opt->n, m->params.total);
    // No NaN ever reaches a checkpoint.
    if (check_finite_set(&c, &m->params, m->params.data, "parameter") ||
        check_finite_set(&c, &m->momentum, m->momentum.data, "momentum parameter"))
        return -1;
    if (opt && (check_finite_set(&c, &m->params, opt->m, "AdamW first moment of") ||
                check_finite_set(&c, &m->params, opt->v, "AdamW second moment of")))
        return -1;
    size_t qn = (size_t)m->cfg.queue_size * m->cfg.embed_dim;
    if (!all_finite(m->image_queue, qn) || !all_finite(m->text_queue, qn))
        return ckpt_fail(&c, 0, "refusing to save: the feature queue has non-finite values");

    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) return ckpt_fail(&c, 0, "path too long");
    // Create PATH.tmp first, so an unwritable directory fails before any work.
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ckpt_fail(&c, 0, "cannot create %s: %s", tmp, strerror(errno));

    CkptQuiet quiet;
    ckpt_h5_quiet(&quiet);
    int rc = -1;
    Image img = {0};
    hid_t f = -1, fapl = ckpt_make_fapl();
    H5FD_file_image_callbacks_t cb = {img_malloc, img_memcpy, img_realloc, img_free, img_udata_copy, img_udata_free, &img};
    if (fapl < 0 || H5Pset_fapl_core(fapl, IMAGE_INCREMENT, 0) < 0 || H5Pset_file_image_callbacks(fapl, &cb) < 0) {
        ckpt_fail(&c, 1, "cannot set up the HDF5 in-memory file driver");
        if (fapl >= 0) H5Pclose(fapl);
        goto out;
    }
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f < 0) ckpt_fail(&c, 1, "cannot create the HDF5 file image");  // before another call clears the error stack
    H5Pclose(fapl);
    if (f < 0) goto out;
    int wrc = save_contents(&c, f, m, opt, meta);
    if (wrc == 0 && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) wrc = ckpt_fail(&c, 1, "building the file image failed");
    herr_t crc = H5Fclose(f);
    if (wrc == 0 && crc < 0) wrc = ckpt_fail(&c, 1, "building the file image failed");
    if (wrc) goto out;
    if (!img.kept) {
        ckpt_fail(&c, 0, "internal error: HDF5 released no file image");
        goto out;
    }
    size_t len = image_length(&img);
    for (size_t done = 0; done < len;) {
        ssize_t k = write(fd, (const char *)img.buf + done, MIN(len - done, (size_t)1 << 30));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            ckpt_fail(&c, 0, "writing %s failed: %s", tmp, k < 0 ? strerror(errno) : "no progress");
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
        ckpt_fail(&c, 0, "cannot sync %s to disk: %s", tmp, strerror(errno));
        goto out;
    }
    int cl = close(fd);
    fd = -1;
    if (cl != 0) {
        ckpt_fail(&c, 0, "writing %s failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        ckpt_fail(&c, 0, "cannot rename %s into place: %s", tmp, strerror(errno));
        goto out;
    }
    fsync_dir_of(path);
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc) unlink(tmp);
    if (img.kept) free(img.buf);
    ckpt_h5_restore(&quiet);
    return rc;
}
