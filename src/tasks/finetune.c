// finetune.c: `vlmae finetune` and `vlmae eval` (see finetune.h): the command line, the model from
// a pre-trained or fine-tuned checkpoint (parameters by name, pos_embed resized), the loaders, the
// training harness the tasks plug their step into, evaluation reports and extra-state files.
#define _GNU_SOURCE  // open_memstream, strdup
#include "tasks/finetune.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/datafiles.h"
#include "engine/common.h"
#include "tasks/task.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/weights_import.h"

#define EXIT_REQUEUE 99

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

void ft_metric(FtMetrics *m, const char *name, double value) {
    if (m->n >= FT_MAX_METRICS) die("too many metrics (at most %d)", FT_MAX_METRICS);
    snprintf(m->name[m->n], sizeof(m->name[0]), "%s", name);
    m->value[m->n++] = value;
}

// ---------------------------------------------------------------------------------------------
// Model from a checkpoint, by name

typedef struct {
    H5E_auto2_t func;
    void *data;
} Quiet;

static char *h5_attr_string(hid_t loc, const char *name) {
    if (H5Aexists(loc, name) <= 0) return NULL;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
    char *s = NULL;
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            char *vs = NULL;
            hid_t mt = H5Tcopy(ft);
            if (H5Aread(a, mt, &vs) >= 0 && vs) s = strdup(vs);
            if (vs) H5free_memory(vs);
            H5Tclose(mt);
        } else {
            size_t len = H5Tget_size(ft);
            hid_t mt = H5Tcopy(ft);
            H5Tset_size(mt, len + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            s = callocCheck(len + 2, 1);
            if (H5Aread(a, mt, s) < 0) free(s), s = NULL;
            H5Tclose(mt);
        }
    }
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return s;
}

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

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
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
        } else if (ends_with(pi->name, "vit.pos_embed") && nd == 2 && pi->ndim == 2 && dims[1] == (hsize_t)pi->shape[1]) {
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
        char *fmt = h5_attr_string(f, "format"), *yaml = h5_attr_string(f, "config_yaml");
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

// ---------------------------------------------------------------------------------------------
// Loaders

Loader *ft_open_loader(const FtContext *cx, const PathList *patterns, FtLoaderMode mode, int batch,
                       char *err, size_t errlen) {
    const RunConfig *rc = &cx->rc;
    if (patterns->n < 1) {
        snprintf(err, errlen, "no data: the task's list of shards is empty");
        return NULL;
    }
    char **shards = NULL;
    int n = 0;
    if (loader_expand_shards((const char *const *)patterns->items, patterns->n, &shards, &n, err, errlen) != 0)
        return NULL;
    LoaderConfig lc;
    loader_config_defaults(&lc);
    lc.shards = (const char *const *)shards, lc.num_shards = n;
    lc.rank = cx->d.rank, lc.world = cx->d.world, lc.batch_size = batch, lc.seed = cx->seed;
    lc.image_size = rc->task.image_size, lc.max_len = rc->task.text_max_len, lc.tok = cx->tok;
    lc.threads = rc->data.threads, lc.prefetch = rc->data.prefetch;
    lc.quiet = 0;
    if (mode == FT_TRAIN) {
        // ALBEF's fine-tuning transform: RandomResizedCrop(scale 0.5-1), flip, RandAugment; the
        // VLMAE extras (jitter, grayscale, blur) as data.augment says.
        lc.aug.scale_min = rc->data.crop_scale_min;  // the fine-tune configs set ALBEF's 0.5
        lc.aug.randaug = rc->data.randaugment, lc.aug.color_jitter = rc->data.color_jitter;
        lc.aug.grayscale = rc->data.grayscale, lc.aug.blur = rc->data.blur, lc.aug.hflip = rc->data.hflip;
        lc.skip_corrupt = 0;
    } else {
        lc.eval = 1, lc.drop_last = 0;
        lc.by_image = mode == FT_EVAL_IMAGES;
        lc.no_images = mode == FT_EVAL_TEXTS;
    }
    Loader *L = loader_open(&lc, err, errlen);
    loader_free_paths(shards, n);
    return L;
}

// ---------------------------------------------------------------------------------------------
// Blobs: "VLMAEBLB" u32 count, then per blob: u32 name length, name, u64 bytes, bytes.

void ft_blobs_add(FtBlobs *b, const char *name, const void *data, size_t bytes) {
    b->names = realloc(b->names, (size_t)(b->n + 1) * sizeof(char *));
    b->data = realloc(b->data, (size_t)(b->n + 1) * sizeof(void *));
    b->bytes = realloc(b->bytes, (size_t)(b->n + 1) * sizeof(size_t));
    if (!b->names || !b->data || !b->bytes) die("out of memory");
    b->names[b->n] = strdup(name);
    b->data[b->n] = mallocCheck(bytes ? bytes : 1);
    if (bytes) memcpy(b->data[b->n], data, bytes);
    b->bytes[b->n++] = bytes;
}

int ft_blobs_write(const FtBlobs *b, const char *path, char *err, size_t errlen) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    uint32_t n = (uint32_t)b->n;
    int ok = fwrite("VLMAEBLB", 1, 8, f) == 8 && fwrite(&n, 4, 1, f) == 1;
    for (int i = 0; ok && i < b->n; i++) {
        uint32_t nl = (uint32_t)strlen(b->names[i]);
        uint64_t nb = b->bytes[i];
        ok = fwrite(&nl, 4, 1, f) == 1 && fwrite(b->names[i], 1, nl, f) == nl && fwrite(&nb, 8, 1, f) == 1 &&
             (nb == 0 || fwrite(b->data[i], 1, nb, f) == nb);
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int ft_blobs_read(FtBlobs *b, const char *path, char *err, size_t errlen) {
    memset(b, 0, sizeof(*b));
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char magic[8];
    uint32_t n = 0;
    int ok = fread(magic, 1, 8, f) == 8 && !memcmp(magic, "VLMAEBLB", 8) && fread(&n, 4, 1, f) == 1 && n < 100000;
    for (uint32_t i = 0; ok && i < n; i++) {
        uint32_t nl = 0;
        uint64_t nb = 0;
        char name[1024];
        ok = fread(&nl, 4, 1, f) == 1 && nl < sizeof(name) && fread(name, 1, nl, f) == nl && fread(&nb, 8, 1, f) == 1 &&
             nb < ((uint64_t)1 << 40);
        if (!ok) break;
        name[nl] = 0;
        void *data = mallocCheck(nb ? nb : 1);
        ok = nb == 0 || fread(data, 1, nb, f) == nb;
        if (ok) ft_blobs_add(b, name, data, nb);
        free(data);
    }
    fclose(f);
    if (!ok) {
        ft_blobs_free(b);
        snprintf(err, errlen, "%s: not a vlmae extra-state file, or truncated", path);
        return -1;
    }
    return 0;
}

const void *ft_blobs_get(const FtBlobs *b, const char *name, size_t *bytes) {
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->names[i], name)) {
            if (bytes) *bytes = b->bytes[i];
            return b->data[i];
        }
    return NULL;
}

void ft_blobs_free(FtBlobs *b) {
    for (int i = 0; i < b->n; i++) free(b->names[i]), free(b->data[i]);
    free(b->names), free(b->data), free(b->bytes);
    memset(b, 0, sizeof(*b));
}

// ---------------------------------------------------------------------------------------------
// Reports

void ft_report(FtContext *cx, const char *name, int64_t step, const FtMetrics *m) {
    if (!cx->R0) return;
    printf("%s:", name);
    for (int i = 0; i < m->n; i++) printf(" %s %.2f", m->name[i], m->value[i]);
    printf("\n");
    fflush(stdout);
    char path[2200];
    snprintf(path, sizeof(path), "%s/%s", cx->run_dir, cx->is_eval ? "eval.jsonl" : "log.jsonl");
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "vlmae: cannot append to %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f, "{\"eval\": \"%s\", \"step\": %lld", name, (long long)step);
    if (cx->is_eval && cx->ckpt) fprintf(f, ", \"ckpt\": \"%s\"", cx->ckpt);
    for (int i = 0; i < m->n; i++) fprintf(f, ", \"%s\": %.6g", m->name[i], m->value[i]);
    fprintf(f, "}\n");
    fclose(f);
}

// Runs the task's eval on one split (if the split has data) and reports every set.
static int run_eval(FtContext *cx, const Task *task, Model *m, const char *split, int64_t step) {
    const PathList *l = !strcmp(split, "val") ? &cx->rc.task.val : &cx->rc.task.test;
    if (l->n == 0) return 0;
    FtMetrics out[8];
    memset(out, 0, sizeof(out));
    int n = task->eval(cx, m, split, step, out, 8);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        // a task that returns several sets names each with a first metric "set:NAME"
        FtMetrics r = out[i];
        char name[96];
        snprintf(name, sizeof(name), "%s", split);
        if (r.n > 0 && !strncmp(r.name[0], "set:", 4)) {
            snprintf(name, sizeof(name), "%.90s", r.name[0] + 4);
            r.n--;
            memmove(r.name, r.name + 1, sizeof(r.name[0]) * (size_t)r.n);
            memmove(r.value, r.value + 1, sizeof(r.value[0]) * (size_t)r.n);
        }
        ft_report(cx, name, step, &r);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Training harness

typedef struct {
    FtContext *cx;
    Model *m;
    AdamW *adam;
    FtHooks *h;
    Loader *L;
    int64_t step;
} Run;

static void extra_path(char *buf, size_t n, const char *ckpt) { snprintf(buf, n, "%s.extra", ckpt); }

// Removes NAME.h5.extra files whose checkpoint is gone (after checkpoint_prune).
static void prune_extras(const char *run_dir) {
    DIR *dir = opendir(run_dir);
    if (!dir) return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!ends_with(e->d_name, ".h5.extra")) continue;
        char p[4096], h5[4096];
        snprintf(p, sizeof(p), "%s/%s", run_dir, e->d_name);
        snprintf(h5, sizeof(h5), "%.*s", (int)(strlen(p) - 6), p);
        if (access(h5, F_OK) != 0) unlink(p);
    }
    closedir(dir);
}

static int save_checkpoint(Run *r) {
    FtContext *cx = r->cx;
    int ok = 1;
    char path[4096], err[1024] = "";
    if (cx->R0) {
        CheckpointMeta meta = {0};
        meta.step = r->step;
        loader_position(r->L, &meta.epoch, &meta.epoch_step);
        meta.seed = cx->seed;
        meta.world_size = cx->d.world;
        meta.config_yaml = config_to_yaml(&cx->rc);
        checkpoint_path(path, sizeof(path), cx->run_dir, meta.step);
        if (r->h->save_extra) {  // first, so a complete checkpoint always has its extra state
            char xp[4200];
            extra_path(xp, sizeof(xp), path);
            ok = r->h->save_extra(r->h->state, xp, err, sizeof(err)) == 0;
        }
        if (ok) ok = checkpoint_save(path, r->m, r->adam, &meta, err, sizeof(err)) == 0;
        free(meta.config_yaml);
        if (ok) {
            printf("checkpoint %s (epoch %lld, step %lld of the epoch)\n", path, (long long)meta.epoch,
                   (long long)meta.epoch_step);
            if (cx->rc.train.keep_checkpoints > 0) {
                checkpoint_prune(cx->run_dir, cx->rc.train.keep_checkpoints);
                prune_extras(cx->run_dir);
            }
        } else {
            fprintf(stderr, "vlmae finetune: checkpoint failed: %s (the previous checkpoint is kept)\n", err);
        }
        fflush(stdout);
    }
    return !dist_any(&cx->d, !ok);
}

static void shape_batch(Batch *b, const ModelConfig *c, int B, int T, int S) {
    memset(b, 0, sizeof(*b));
    b->B = B, b->T = T, b->H = b->W = S;
    b->image = callocCheck((size_t)B * 3 * S * S, sizeof(float));
    b->text_ids = callocCheck((size_t)B * T, sizeof(int32_t));
    b->text_mask = callocCheck((size_t)B * T, sizeof(int32_t));
    b->box = callocCheck((size_t)B * 4, sizeof(float));
    b->image_id = callocCheck((size_t)B, sizeof(int64_t));
    for (int i = 0; i < B * T; i++) b->text_ids[i] = i % T == 0 ? c->cls_id : c->mask_id, b->text_mask[i] = 1;
    for (int i = 0; i < B; i++) b->image_id[i] = i;
}

static void free_batch(Batch *b) {
    free(b->image), free(b->text_ids), free(b->text_mask), free(b->box), free(b->image_id);
}

int ft_train(FtContext *cx, FtHooks *h) {
    RunConfig *rc = &cx->rc;
    const Dist *d = &cx->d;
    int R0 = cx->R0;
    char err[2048];
    const Task *task = task_find(rc->task.name);

    // Resume?
    char ckpt[4096] = "";
    if (cx->resume && !strcmp(cx->resume, "auto")) {
        int rcf = checkpoint_find_latest(cx->run_dir, ckpt, sizeof(ckpt));
        if (rcf < 0) dist_abort(d, 2);
        if (rcf == 1) ckpt[0] = 0;
    } else if (cx->resume) {
        snprintf(ckpt, sizeof(ckpt), "%s", cx->resume);
    }
    Model m;
    const char *weights = ckpt[0] ? ckpt : cx->init;
    if (!weights && R0)
        fprintf(stderr, "vlmae finetune: warning: no --init checkpoint: fine-tuning a randomly initialised model\n");
    if (ft_build_model(cx, &m, weights, err, sizeof(err)) != 0) {
        if (R0) fprintf(stderr, "vlmae finetune: %s\n", err);
        dist_abort(d, 2);
    }
    if (config_validate(rc, d->world, err, sizeof(err)) != 0) {
        if (R0) fprintf(stderr, "vlmae finetune: %s\n", err);
        dist_abort(d, 2);
    }
    Loader *L = ft_open_loader(cx, &rc->task.train, FT_TRAIN, rc->train.batch_size, err, sizeof(err));
    if (!L) {
        fprintf(stderr, "vlmae finetune (rank %d): task.train: %s\n", d->rank, err);
        dist_abort(d, 2);
    }
    int64_t spe = loader_steps_per_epoch(L);
    int64_t total = rc->train.max_steps > 0 ? rc->train.max_steps : spe * rc->train.epochs;

    Batch shape;
    shape_batch(&shape, &m.cfg, rc->train.batch_size, rc->task.text_max_len, rc->task.image_size);
    h->init(h->state, &m, &shape, cx);
    free_batch(&shape);
    params_zero_grad(&m.params);
    AdamW adam;
    adamw_init(&adam, &m.params, rc->train.beta1, rc->train.beta2, rc->train.eps, rc->train.weight_decay);
    LrSchedule sched = {.lr = rc->train.lr, .warmup_lr = rc->train.warmup_lr, .min_lr = rc->train.min_lr,
                        .warmup_steps = rc->train.warmup_steps, .total_steps = total};

    Run run = {cx, &m, &adam, h, L, 0};
    if (ckpt[0]) {
        CheckpointMeta meta = {0};
        if (checkpoint_load(ckpt, &m, &adam, &meta, err, sizeof(err)) != 0) {
            fprintf(stderr, "vlmae finetune (rank %d): %s\n", d->rank, err);
            dist_abort(d, 2);
        }
        run.step = meta.step;
        if (loader_seek(L, meta.epoch, meta.epoch_step) != 0) {
            if (R0) fprintf(stderr, "vlmae finetune: %s: data position epoch %lld step %lld is outside this data set\n",
                            ckpt, (long long)meta.epoch, (long long)meta.epoch_step);
            dist_abort(d, 2);
        }
        checkpoint_meta_free(&meta);
        if (h->load_extra) {
            char xp[4200];
            extra_path(xp, sizeof(xp), ckpt);
            if (h->load_extra(h->state, xp, err, sizeof(err)) != 0) {
                if (R0) fprintf(stderr, "vlmae finetune: %s\n", err);
                dist_abort(d, 2);
            }
        }
        if (R0) printf("resumed from %s at step %lld\n", ckpt, (long long)run.step);
    }

    if (R0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/config.yaml", cx->run_dir);
        FILE *f = fopenCheck(path, "w");
        config_dump(rc, f);
        fclose(f);
        printf("vlmae finetune: task %s, %lld parameters, image %d px, %d rank(s) x batch %d, %lld texts, "
               "%lld steps/epoch, %lld steps; run dir %s\n",
               rc->task.name, (long long)m.params.total, m.cfg.image_size, d->world, rc->train.batch_size,
               (long long)loader_num_texts(L), (long long)spe, (long long)total, cx->run_dir);
        fflush(stdout);
    }
    char logpath[4096];
    snprintf(logpath, sizeof(logpath), "%s/log.jsonl", cx->run_dir);
    FILE *jlog = R0 ? fopenCheck(logpath, "a") : NULL;

    signal(SIGUSR1, on_signal);
    signal(SIGTERM, on_signal);
    double t_win = now_seconds();
    int64_t win = 0, last_eval_step = -1;
    double acc[6] = {0};
    float losses[6];
    int status = 0;
    while (run.step < total) {
        if (dist_any(d, stop_signal != 0)) {
            if (R0) printf("signal received: checkpointing at step %lld\n", (long long)run.step);
            status = save_checkpoint(&run) ? EXIT_REQUEUE : 4;
            break;
        }
        Batch *b;
        if (loader_next(L, &b) != 1) {
            fprintf(stderr, "vlmae finetune (rank %d): data: %s\n", d->rank, loader_error(L));
            dist_abort(d, 3);
        }
        int64_t s = run.step;
        float alpha = rc->task.distill ? rc->train.alpha : 0.0f;  // task.distill false: no teacher term
        if (rc->train.alpha_ramp && s < spe) alpha *= (float)s / (float)spe;  // ALBEF's first-epoch ramp
        if (h->clamp_temp) model_clamp_temp(&m);
        if (h->momentum) model_momentum_update(&m, m.cfg.momentum);
        params_zero_grad(&m.params);
        Rng rng;
        rng_seed_stream(&rng, cx->seed, (uint64_t)d->rank, (uint64_t)s);
        for (int k = 0; k < 6; k++) losses[k] = 0.0f;
        h->step(h->state, &m, b, alpha, &rng, losses);
        dist_allreduce_mean(d, m.params.grad, m.params.total);
        int bad = 0;
        char what[160] = "";
        for (int k = 0; k < h->n_losses && !bad; k++)
            if (!isfinite(losses[k])) bad = 1, snprintf(what, sizeof(what), "loss %s = %g", h->loss_names[k], losses[k]);
        if (!bad && !ops_cpu.all_finite(m.params.grad, m.params.total)) {
            bad = 1;  // the all-reduced gradients (the same on every rank): name the first bad parameter
            snprintf(what, sizeof(what), "a parameter gradient");
            for (int i = 0; i < m.params.count; i++)
                if (!ops_cpu.all_finite(m.params.grad + m.params.p[i].offset, m.params.p[i].n)) {
                    snprintf(what, sizeof(what), "gradient of %s", m.params.p[i].name);
                    break;
                }
        }
        if (dist_any(d, bad)) {
            dist_nonfinite_where(d, bad, what, sizeof(what));
            if (rc->train.nonfinite == 0) {
                if (R0) fprintf(stderr, "vlmae finetune: non-finite %s at step %lld: stopping (train.nonfinite: stop)\n",
                                what, (long long)s);
                status = 3;
                break;
            }
            if (R0) printf("step %lld skipped: non-finite %s\n", (long long)s, what);
            run.step++;
            continue;
        }
        if (h->after_step) h->after_step(h->state, &m, d);
        float lr = lr_at(&sched, s);
        adamw_step(&adam, &m.params, lr);
        run.step++;
        s = run.step;
        for (int k = 0; k < h->n_losses; k++) acc[k] += losses[k];
        win++;
        if (s % rc->train.log_every == 0 || s == total) {
            double mean[6];
            for (int k = 0; k < h->n_losses; k++) mean[k] = dist_sum(d, acc[k]) / (d->world * (double)win);
            double now = now_seconds(), sps = rc->train.batch_size * d->world * win / (now - t_win);
            if (R0) {
                printf("step %lld/%lld ep %.2f |", (long long)s, (long long)total, (double)s / spe);
                for (int k = 0; k < h->n_losses; k++) printf(" %s %.4f", h->loss_names[k], mean[k]);
                printf(" | lr %.3g | alpha %.3f | %.1f samples/s\n", lr, alpha, sps);
                fprintf(jlog, "{\"step\": %lld, \"epoch\": %.4f", (long long)s, (double)s / spe);
                for (int k = 0; k < h->n_losses; k++) fprintf(jlog, ", \"%s\": %.6f", h->loss_names[k], mean[k]);
                fprintf(jlog, ", \"lr\": %.6g, \"alpha\": %.4f, \"temp\": %.5f, \"samples_per_s\": %.3f}\n", lr, alpha,
                        m.temp->data[0], sps);
                fflush(stdout);
                fflush(jlog);
            }
            memset(acc, 0, sizeof(acc));
            win = 0;
            t_win = now;
        }
        int ep = (int)(s / spe);
        int eval_now = s % spe == 0 && rc->task.eval_every > 0 && ep % rc->task.eval_every == 0 && s != total && task;
        // checkpoints: every ckpt_every steps, at the end, at --stop-after, and the model each
        // epoch-end evaluation sees (ALBEF keeps one per epoch)
        if ((rc->train.ckpt_every > 0 && s % rc->train.ckpt_every == 0) || s == total || s == cx->stop_after || eval_now) {
            if (!save_checkpoint(&run)) {
                status = 4;
                break;
            }
        }
        if (eval_now) {
            if (run_eval(cx, task, &m, "val", s) || run_eval(cx, task, &m, "test", s)) status = 5;
            last_eval_step = s;
            t_win = now_seconds();
            if (status) break;
        }
        if (s == cx->stop_after) {
            if (R0) printf("stopped after step %lld (--stop-after)\n", (long long)s);
            break;
        }
    }
    if (status == 0 && run.step == total && last_eval_step != total && task) {
        if (run_eval(cx, task, &m, "val", total) || run_eval(cx, task, &m, "test", total)) status = 5;
    }
    if (R0 && status == 0 && run.step == total) printf("done: %lld steps\n", (long long)run.step);
    if (jlog) fclose(jlog);
    loader_close(L);
    if (h->free) h->free(h->state);
    adamw_free(&adam);
    model_free(&m);
    return status;
}

// ---------------------------------------------------------------------------------------------
// Command line

static void usage(FILE *f, int is_eval) {
    if (is_eval)
        fprintf(f,
                "usage: vlmae eval -c CONFIG.yaml --ckpt CKPT.h5 [--split test|val|all] [--set KEY=VALUE ...]\n"
                "                  [--out DIR] [--overlays DIR] [--max-overlays N]\n"
                "Evaluates a checkpoint on the task of the config (task.name) over task.test (or task.val).\n"
                "The model is the checkpoint's (its config_yaml), at task.image_size. Zero-shot transfer:\n"
                "evaluate a checkpoint fine-tuned on one data set with another's config, e.g. the COCO\n"
                "retrieval model on Flickr30K:\n"
                "  vlmae eval -c configs/finetune_retrieval_flickr.yaml --ckpt runs/finetune_retrieval_coco/ckpt-N.h5\n"
                "  --out DIR           where eval.jsonl goes (default: the checkpoint's directory)\n"
                "  --overlays DIR      grounding: write heat-map PNGs (image, heat, gt and chosen boxes)\n"
                "  --max-overlays N    at most N PNGs per evaluation set (default 16)\n"
                "tasks:\n");
    else
        fprintf(f,
                "usage: vlmae finetune -c CONFIG.yaml [--init PRETRAINED.h5] [--set KEY=VALUE ...]\n"
                "                      [--run-dir DIR] [--resume auto|PATH] [--stop-after N]\n"
                "Fine-tunes a pre-trained checkpoint on the task of the config (task.name), one process per\n"
                "rank, and evaluates task.val / task.test every task.eval_every epochs and at the end.\n"
                "Writes DIR/config.yaml, DIR/log.jsonl, DIR/ckpt-STEP.h5. SIGUSR1/SIGTERM: checkpoint, exit 99.\n"
                "  -c, --config FILE   YAML config (configs/finetune_*.yaml)\n"
                "  --init FILE         pre-trained checkpoint (vlmae pretrain's ckpt-*.h5)\n"
                "  --set KEY=VALUE     override one config key\n"
                "  --run-dir DIR       run directory (default runs/CONFIG-NAME)\n"
                "  --resume auto|PATH  continue from the newest checkpoint in DIR / this checkpoint\n"
                "  --stop-after N      checkpoint and stop after step N\n"
                "tasks:\n");
    task_list(f);
}

static int ft_main(int argc, char **argv, int is_eval) {
    FtContext cx;
    memset(&cx, 0, sizeof(cx));
    cx.is_eval = is_eval;
    cx.split = "test";
    cx.max_overlays = 16;
    const char *run_dir_opt = NULL;
    const char **sets = callocCheck((size_t)argc + 1, sizeof(char *));
    int n_sets = 0;
    static struct option opts[] = {{"config", 1, 0, 'c'}, {"set", 1, 0, 's'},      {"run-dir", 1, 0, 'r'},
                                   {"out", 1, 0, 'r'},    {"resume", 1, 0, 'R'},   {"stop-after", 1, 0, 'S'},
                                   {"init", 1, 0, 'i'},   {"ckpt", 1, 0, 'k'},     {"split", 1, 0, 'p'},
                                   {"overlays", 1, 0, 'o'}, {"max-overlays", 1, 0, 'm'}, {"help", 0, 0, 'h'},
                                   {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': cx.config_path = optarg; break;
        case 's': sets[n_sets++] = optarg; break;
        case 'r': run_dir_opt = optarg; break;
        case 'R': cx.resume = optarg; break;
        case 'S': cx.stop_after = atoll(optarg); break;
        case 'i': cx.init = optarg; break;
        case 'k': cx.ckpt = optarg; break;
        case 'p': cx.split = optarg; break;
        case 'o': cx.overlays = optarg; break;
        case 'm': cx.max_overlays = atoi(optarg); break;
        case 'h': usage(stdout, is_eval); free(sets); return 0;
        default: usage(stderr, is_eval); free(sets); return 2;
        }
    }
    const char *cmd = is_eval ? "vlmae eval" : "vlmae finetune";
    int bad_args = !cx.config_path || optind != argc || (is_eval && !cx.ckpt) ||
                   (is_eval && strcmp(cx.split, "test") && strcmp(cx.split, "val") && strcmp(cx.split, "all"));
    if (!is_eval && (cx.ckpt || cx.overlays)) bad_args = 1;
    if (is_eval && (cx.init || cx.resume)) bad_args = 1;
    if (bad_args) {
        usage(stderr, is_eval);
        free(sets);
        return 2;
    }

    dist_init(&cx.d, &argc, &argv);
    cx.R0 = cx.d.rank == 0;
    char err[2048];
    RunConfig *rc = &cx.rc;
    config_defaults(rc);
    int bad = config_load(rc, cx.config_path, err, sizeof(err)) != 0;
    for (int i = 0; i < n_sets && !bad; i++) bad = config_set(rc, sets[i], err, sizeof(err)) != 0;
    free(sets);
    const Task *task = NULL;
    if (!bad && !(task = task_find(rc->task.name))) {
        char *list = NULL;
        size_t len = 0;
        FILE *mf = open_memstream(&list, &len);
        task_list(mf);
        fclose(mf);
        snprintf(err, sizeof(err), "task.name '%s' is not a task; the tasks are:\n%s", rc->task.name, list);
        free(list);
        bad = 1;
    }
    if (!bad && !is_eval && rc->task.train.n == 0) snprintf(err, sizeof(err), "task.train lists no shards"), bad = 1;
    if (!bad && rc->runtime.device != DEVICE_CPU)
        snprintf(err, sizeof(err), "runtime.device: fine-tuning runs on the CPU backend only (pre-training "
                 "runs on cuda); use cpu"), bad = 1;
    if (bad) {
        if (cx.R0) fprintf(stderr, "%s: %s\n", cmd, err);
        config_free(rc);
        dist_finalize(&cx.d);
        return 2;
    }
    cx.seed = rc->train.seed;
    const char *vocab = rc->data.vocab[0] ? rc->data.vocab : default_vocab_path();
    cx.tok = tokenizer_load(vocab, err, sizeof(err));
    if (!cx.tok) {
        if (cx.R0) fprintf(stderr, "%s: %s\n", cmd, err);
        dist_abort(&cx.d, 2);
    }

    // Run directory: finetune default runs/<config name>; eval default the checkpoint's directory.
    if (run_dir_opt) {
        snprintf(cx.run_dir, sizeof(cx.run_dir), "%s", run_dir_opt);
    } else if (is_eval) {
        const char *sl = strrchr(cx.ckpt, '/');
        if (sl) snprintf(cx.run_dir, sizeof(cx.run_dir), "%.*s", (int)(sl - cx.ckpt), cx.ckpt);
        else snprintf(cx.run_dir, sizeof(cx.run_dir), ".");
    } else {
        const char *base = strrchr(cx.config_path, '/');
        base = base ? base + 1 : cx.config_path;
        snprintf(cx.run_dir, sizeof(cx.run_dir), "runs/%.*s", (int)strcspn(base, "."), base);
    }
    if (cx.R0 && mkdir_p(cx.run_dir) != 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", cmd, cx.run_dir, strerror(errno));
        dist_abort(&cx.d, 2);
    }
    dist_barrier(&cx.d);

    int status = 0;
    if (!is_eval) {
        status = task->finetune(&cx);
    } else {
        Model m;
        if (ft_build_model(&cx, &m, cx.ckpt, err, sizeof(err)) != 0) {
            if (cx.R0) fprintf(stderr, "%s: %s\n", cmd, err);
            dist_abort(&cx.d, 2);
        }
        if (task->load && task->load(&cx, &m, cx.ckpt, err, sizeof(err)) != 0) {
            if (cx.R0) fprintf(stderr, "%s: %s\n", cmd, err);
            dist_abort(&cx.d, 2);
        }
        int64_t step = cx.ckpt_step;
        if (cx.R0) printf("%s: task %s, checkpoint %s (step %lld), image %d px\n", cmd, rc->task.name, cx.ckpt,
                          (long long)step, m.cfg.image_size);
        const char *splits[2] = {"val", "test"};
        int any = 0;
        for (int i = 0; i < 2 && !status; i++) {
            if (strcmp(cx.split, "all") && strcmp(cx.split, splits[i])) continue;
            const PathList *l = i == 0 ? &rc->task.val : &rc->task.test;
            if (l->n == 0) {
                if (strcmp(cx.split, "all")) {
                    if (cx.R0) fprintf(stderr, "%s: task.%s lists no data\n", cmd, splits[i]);
                    status = 2;
                }
                continue;
            }
            any = 1;
            if (run_eval(&cx, task, &m, splits[i], step) != 0) status = 1;
        }
        if (!any && !status) {
            if (cx.R0) fprintf(stderr, "%s: neither task.val nor task.test lists data\n", cmd);
            status = 2;
        }
        model_free(&m);
    }
    tokenizer_free(cx.tok);
    config_free(rc);
    dist_finalize(&cx.d);
    return status;
}

int finetune_main(int argc, char **argv) { return ft_main(argc, argv, 0); }
int eval_main(int argc, char **argv) { return ft_main(argc, argv, 1); }
