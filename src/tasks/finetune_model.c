// finetune_model.c: the model a fine-tuning run or an evaluation starts from (ft_build_model,
// finetune.h): the architecture from a vlmae checkpoint's config_yaml (pre-training or
// fine-tuning), its online and momentum parameters by name, vit.pos_embed resized bicubically to
// the task's patch grid, and the ITC queues when their shape matches.
#include "tasks/finetune.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "tasks/finetune_internal.h"
#include "train/h5attr.h"
#include "train/weights_import.h"

// ---------------------------------------------------------------------------------------------
// Model from a checkpoint, by name

// HDF5's own error printing, off while the file is probed (an absent dataset or attribute is an
// answer here, not an error) and the caller's setting back after.
typedef struct {
    H5E_auto2_t func;
    void *data;
} Quiet;

// Reads float dataset group/name into a malloc'ed buffer; dims out. Returns NULL if absent.
static float *h5_read_floats(hid_t f, const char *group, const char *name, int *ndim, hsize_t *dims) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", group, name);
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0 || H5Lexists(f, path, H5P_DEFAULT) <= 0) return NULL;
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    if (ds < 0) return NULL;
    hid_t sp = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(sp);
    float *buf = NULL;
    if (nd >= 0 && nd <= 4 && H5Sget_simple_extent_dims(sp, dims, NULL) >= 0) {
        size_t n = 1;
        for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
        buf = mallocCheck((n ? n : 1) * sizeof(float));
        if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) free(buf), buf = NULL;
        *ndim = nd;
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

// One parameter set (group "params" or "momentum") by name. Returns 0 or -1 (err).
static int load_set_by_name(hid_t f, const char *path, const char *group, ParamSet *ps, int *resized,
                            char *err, size_t errlen) {
    for (int i = 0; i < ps->count; i++) {
        ParamInfo *pi = &ps->p[i];
        int nd = 0;
        hsize_t dims[4] = {0};
        float *buf = h5_read_floats(f, group, pi->name, &nd, dims);
        if (!buf) {
            snprintf(err, errlen, "%s: /%s/%s is missing or unreadable", path, group, pi->name);
            return -1;
        }
        int same = nd == pi->ndim;
        for (int d = 0; same && d < nd; d++) same = dims[d] == (hsize_t)pi->shape[d];
        if (same) {
            memcpy(pi->t->data, buf, pi->n * sizeof(float));
        } else if (ft_ends_with(pi->name, "vit.pos_embed") && nd == 2 && pi->ndim == 2 && dims[1] == (hsize_t)pi->shape[1]) {
            int C = pi->shape[1], sg = (int)lround(sqrt((double)dims[0] - 1)), dg = (int)lround(sqrt((double)pi->shape[0] - 1));
            if ((hsize_t)(sg * sg + 1) != dims[0] || dg * dg + 1 != pi->shape[0]) {
                snprintf(err, errlen, "%s: /%s/%s has %llu rows, not 1 + a square grid", path, group, pi->name,
                         (unsigned long long)dims[0]);
                free(buf);
                return -1;
            }
            memcpy(pi->t->data, buf, (size_t)C * sizeof(float));  // the CLS row
            pos_embed_resize_bicubic(buf + C, sg, sg, pi->t->data + C, dg, dg, C);
            resized[0] = sg, resized[1] = dg;
        } else {
            char a[64] = "", b[64] = "";
            for (int d = 0; d < nd; d++) snprintf(a + strlen(a), sizeof(a) - strlen(a), d ? "x%llu" : "%llu", (unsigned long long)dims[d]);
            for (int d = 0; d < pi->ndim; d++) snprintf(b + strlen(b), sizeof(b) - strlen(b), d ? "x%d" : "%d", pi->shape[d]);
            snprintf(err, errlen, "%s: /%s/%s has shape %s, the model expects %s", path, group, pi->name, a, b);
            free(buf);
            return -1;
        }
        free(buf);
    }
    return 0;
}

int ft_build_model(FtContext *cx, Model *m, const char *path, char *err, size_t errlen) {
    ModelConfig mc = cx->rc.model;
    hid_t f = -1;
    Quiet q;
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = -1;
    if (path) {
        if (access(path, R_OK) != 0) {
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
            goto out;
        }
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) {
            snprintf(err, errlen, "%s: not an HDF5 file (corrupt or truncated?)", path);
            goto out;
        }
        char *fmt = h5_attr_string(f, "format", NULL, NULL), *yaml = h5_attr_string(f, "config_yaml", NULL, NULL);
        cx->ckpt_step = 0;
        if (H5Aexists(f, "step") > 0) {
            hid_t a = H5Aopen(f, "step", H5P_DEFAULT);
            if (a >= 0 && H5Aread(a, H5T_NATIVE_INT64, &cx->ckpt_step) < 0) cx->ckpt_step = 0;
            if (a >= 0) H5Aclose(a);
        }
        int ok = fmt && !strcmp(fmt, "vlmae-checkpoint") && yaml;
        free(fmt);
        if (!ok) {
            free(yaml);
            snprintf(err, errlen, "%s: not a vlmae checkpoint (no format / config_yaml attribute)", path);
            goto out;
        }
        RunConfig ck;
        char e2[1024];
        if (config_load_string(&ck, yaml, strlen(yaml), path, e2, sizeof(e2)) != 0) {
            snprintf(err, errlen, "%s: its config_yaml does not load: %s", path, e2);
            free(yaml);
            config_free(&ck);
            goto out;
        }
        free(yaml);
        // The architecture is the checkpoint's; how it is trained is this config's.
        const ModelConfig *fc = &cx->rc.model;
        mc = ck.model;
        mc.hidden_dropout = fc->hidden_dropout, mc.attn_dropout = fc->attn_dropout, mc.momentum = fc->momentum;
        mc.w_itc = fc->w_itc, mc.w_itm = fc->w_itm, mc.w_mlm = fc->w_mlm, mc.w_rmim = fc->w_rmim, mc.w_ifr = fc->w_ifr;
        config_free(&ck);
    }
    mc.image_size = cx->rc.task.image_size;
    mc.pad_id = tokenizer_pad_id(cx->tok), mc.cls_id = tokenizer_cls_id(cx->tok), mc.mask_id = tokenizer_mask_id(cx->tok);
    if (mc.image_size % mc.patch_size) {
        snprintf(err, errlen, "task.image_size %d is not a multiple of the model's patch_size %d", mc.image_size, mc.patch_size);
        goto out;
    }
    if (tokenizer_vocab_size(cx->tok) != mc.vocab_size) {
        snprintf(err, errlen, "the vocabulary has %d tokens but the model's vocab_size is %d", tokenizer_vocab_size(cx->tok), mc.vocab_size);
        goto out;
    }
    if (cx->rc.task.text_max_len > mc.max_text_len) {
        snprintf(err, errlen, "task.text_max_len %d exceeds the model's max_text_len %d", cx->rc.task.text_max_len, mc.max_text_len);
        goto out;
    }
    model_create(m, &mc);
    model_init_weights(m, cx->seed);
    cx->rc.model = mc;
    if (!path) {
        rc = 0;
        goto out;
    }
    int resized[2] = {0, 0};
    if (load_set_by_name(f, path, "params", &m->params, resized, err, errlen) ||
        load_set_by_name(f, path, "momentum", &m->momentum, resized, err, errlen)) {
        model_free(m);
        goto out;
    }
    // The ITC queues carry over when their shape matches (ALBEF loads them with the weights).
    int nd = 0, queues = 0;
    hsize_t dims[4];
    float *qi = h5_read_floats(f, "queue", "image", &nd, dims);
    if (qi && nd == 2 && dims[0] == (hsize_t)mc.queue_size && dims[1] == (hsize_t)mc.embed_dim) {
        float *qt = h5_read_floats(f, "queue", "text", &nd, dims);
        if (qt && nd == 2 && dims[0] == (hsize_t)mc.queue_size && dims[1] == (hsize_t)mc.embed_dim) {
            size_t n = (size_t)mc.queue_size * mc.embed_dim;
            memcpy(m->image_queue, qi, n * sizeof(float));
            memcpy(m->text_queue, qt, n * sizeof(float));
            queues = 1;
            hid_t g = H5Gopen2(f, "queue", H5P_DEFAULT);
            int64_t ptr = 0;
            if (g >= 0 && H5Aexists(g, "ptr") > 0) {
                hid_t a = H5Aopen(g, "ptr", H5P_DEFAULT);
                if (a >= 0 && H5Aread(a, H5T_NATIVE_INT64, &ptr) >= 0 && ptr >= 0 && ptr < mc.queue_size)
                    m->queue_ptr = (int)ptr;
                if (a >= 0) H5Aclose(a);
            }
            if (g >= 0) H5Gclose(g);
        }
        free(qt);
    }
    free(qi);
    if (cx->R0) {
        printf("weights: %s (%d parameters + %d momentum by name", path, m->params.count, m->momentum.count);
        if (resized[0]) printf("; pos_embed grid %dx%d -> %dx%d bicubic", resized[0], resized[0], resized[1], resized[1]);
        printf("; ITC queues %s)\n", queues ? "loaded" : "fresh (shape differs)");
        fflush(stdout);
    }
    rc = 0;
out:
    if (f >= 0) H5Fclose(f);
    H5Eset_auto2(H5E_DEFAULT, q.func, q.data);
    return rc;
}
