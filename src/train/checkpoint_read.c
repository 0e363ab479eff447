// checkpoint_read.c: checkpoint_load (layout and guarantees in checkpoint.h): the header and
// the completion marker checked, then every name and shape validated before any value is read.
#include "train/checkpoint.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train/checkpoint_internal.h"
#include "train/h5attr.h"

static int has_attr(hid_t loc, const char *name) { return H5Aexists(loc, name) > 0; }

static int read_attr(CkptCtx *c, hid_t loc, const char *name, hid_t mem_type, void *out) {
    if (!has_attr(loc, name)) return ckpt_fail(c, 0, "attribute %s is missing: not a vlmae checkpoint?", name);
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Aread(a, mem_type, out) < 0) rc = ckpt_fail(c, 1, "cannot read attribute %s", name);
    if (a >= 0) H5Aclose(a);
    return rc;
}

// h5_attr_string's failures as checkpoint messages (with HDF5's cause where it has one).
static void attr_str_fail(void *ctx, H5AttrError why, const char *name) {
    CkptCtx *c = ctx;
    switch (why) {
    case H5ATTR_MISSING: ckpt_fail(c, 0, "attribute %s is missing", name); break;
    case H5ATTR_NOT_STRING: ckpt_fail(c, 1, "attribute %s is not a string", name); break;
    case H5ATTR_UNREADABLE: ckpt_fail(c, 1, "cannot read attribute %s", name); break;
    case H5ATTR_NO_MEMORY: ckpt_fail(c, 0, "out of memory reading attribute %s", name); break;
    }
}

// Returns a malloc'ed copy of a string attribute, or NULL (error set).
static char *read_attr_str(CkptCtx *c, hid_t loc, const char *name) {
    return h5_attr_string(loc, name, attr_str_fail, c);
}

static void shape_str(char *buf, size_t n, int ndim, const hsize_t *dims) {
    size_t k = 0;
    buf[0] = 0;
    if (ndim == 0) snprintf(buf, n, "scalar");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? "x%llu" : "%llu", (unsigned long long)dims[i]);
}

// Opens the float dataset `name` in loc and checks its shape. Returns the dataset or -1.
static hid_t open_checked(CkptCtx *c, hid_t loc, const char *name, const char *label, int ndim,
                          const hsize_t *want) {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) {
        ckpt_fail(c, 0, "%s %s is missing from the checkpoint", label, name);
        return -1;
    }
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) {
        ckpt_fail(c, 1, "cannot open %s %s", label, name);
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
        ckpt_fail(c, 1, "cannot read the shape of %s %s", label, name);
        H5Dclose(ds);
        return -1;
    }
    int same = nd == ndim;
    for (int i = 0; same && i < nd; i++) same = dims[i] == want[i];
    if (!same) {
        char a[128], b[128];
        shape_str(a, sizeof(a), nd, dims);
        shape_str(b, sizeof(b), ndim, want);
        ckpt_fail(c, 0, "%s %s has shape %s, the model expects %s", label, name, a, b);
        H5Dclose(ds);
        return -1;
    }
    if (!is_float) {
        ckpt_fail(c, 0, "%s %s is not a floating-point dataset", label, name);
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
static int load_set(CkptCtx *c, hid_t file, const char *group, const ParamSet *ps, float *data,
                    const char *label) {
    if (H5Lexists(file, group, H5P_DEFAULT) <= 0) return ckpt_fail(c, 0, "group /%s is missing", group);
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0) return ckpt_fail(c, 1, "cannot open group /%s", group);
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
            rc = ckpt_fail(c, 1, "reading %s %s failed (corrupt or truncated file?)", label, pi->name);
        H5Dclose(ds);
    }
    if (rc == 0 && !data) {
        H5G_info_t gi;
        if (H5Gget_info(g, &gi) < 0) {
            rc = ckpt_fail(c, 1, "cannot list group /%s", group);
        } else if (gi.nlinks != (hsize_t)ps->count) {
            ExtraScan s = {ps, ""};
            H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, extra_cb, &s);
            if (s.extra[0])
                rc = ckpt_fail(c, 0, "%s %s in the checkpoint is not in the model (different configuration?)", label, s.extra);
            else
                rc = ckpt_fail(c, 0, "group /%s has %llu entries, the model has %d %ss", group,
                           (unsigned long long)gi.nlinks, ps->count, label);
        }
    }
    H5Gclose(g);
    return rc;
}

static int load_queue(CkptCtx *c, hid_t file, Model *m, int read) {
    hsize_t qd[2] = {(hsize_t)m->cfg.queue_size, (hsize_t)m->cfg.embed_dim};
    if (H5Lexists(file, "queue", H5P_DEFAULT) <= 0) return ckpt_fail(c, 0, "group /queue is missing");
    hid_t q = H5Gopen2(file, "queue", H5P_DEFAULT);
    if (q < 0) return ckpt_fail(c, 1, "cannot open group /queue");
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
            rc = ckpt_fail(c, 1, "reading queue %s failed (corrupt or truncated file?)", names[i]);
        H5Dclose(ds);
    }
    int64_t ptr = 0;
    if (rc == 0) rc = read_attr(c, q, "ptr", H5T_NATIVE_INT64, &ptr);
    if (rc == 0 && (ptr < 0 || ptr >= m->cfg.queue_size))
        rc = ckpt_fail(c, 0, "queue pointer %lld is outside the queue of %d", (long long)ptr, m->cfg.queue_size);
    if (rc == 0 && read) m->queue_ptr = (int)ptr;
    H5Gclose(q);
    return rc;
}

// Checks the format marker, the version and the completion marker.
int ckpt_check_header(CkptCtx *c, hid_t f) {
    int32_t version = 0, complete = 0;
    if (!has_attr(f, "format_version")) return ckpt_fail(c, 0, "not a vlmae checkpoint (no format_version attribute)");
    if (read_attr(c, f, "format_version", H5T_NATIVE_INT32, &version)) return -1;
    if (version != CHECKPOINT_FORMAT_VERSION)
        return ckpt_fail(c, 0, "checkpoint format version %d, this vlmae reads version %d", (int)version,
                     CHECKPOINT_FORMAT_VERSION);
    if (!has_attr(f, "complete")) return ckpt_fail(c, 0, "incomplete checkpoint (no complete marker: the save was interrupted)");
    if (read_attr(c, f, "complete", H5T_NATIVE_INT32, &complete)) return -1;
    if (complete != 1) return ckpt_fail(c, 0, "incomplete checkpoint (complete = %d)", (int)complete);
    return 0;
}

hid_t ckpt_open_ro(CkptCtx *c, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        ckpt_fail(c, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    hid_t fapl = ckpt_make_fapl();
    hid_t f = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
    if (f < 0) ckpt_fail(c, 1, "cannot open as an HDF5 file (corrupt or truncated?)");
    if (fapl >= 0) H5Pclose(fapl);
    return f;
}

int checkpoint_load(const char *path, Model *m, AdamW *opt, CheckpointMeta *meta, char *err,
                    size_t errlen) {
    CkptCtx c = {path, err, errlen};
    if (opt && opt->n != m->params.total)
        return ckpt_fail(&c, 0, "the optimizer holds %zu values, the model %zu", opt->n, m->params.total);
    CkptQuiet quiet;
    ckpt_h5_quiet(&quiet);
    int rc = -1;
    char *yaml = NULL;
    hid_t f = ckpt_open_ro(&c, path), adam = -1;
    if (f < 0) goto out;
    if (ckpt_check_header(&c, f)) goto out;
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
            ckpt_fail(&c, 0, "the checkpoint has no optimizer state (/adam); load it as weights only");
            goto out;
        }
        if ((adam = H5Gopen2(f, "adam", H5P_DEFAULT)) < 0) {
            ckpt_fail(&c, 1, "cannot open group /adam");
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
    ckpt_h5_restore(&quiet);
    return rc;
}

void checkpoint_meta_free(CheckpointMeta *meta) {
    if (!meta) return;
    free(meta->config_yaml);
    meta->config_yaml = NULL;
}
