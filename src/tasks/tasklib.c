// tasklib.c: shared pieces of the classification-style tasks (see tasklib.h): their data, their
// parameters, layers, graph holders, and the plumbing (TlTask) their hooks share.
#include "tasks/tasklib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "engine/common.h"
#include "engine/rng.h"
#include "model/choices.h"

// =============================================================================================
// Data

int tl_data_open(TlData *d, const PathList *patterns, char *err, size_t errlen) {
    memset(d, 0, sizeof(*d));
    if (patterns->n < 1) {
        snprintf(err, errlen, "no data: the list of shards is empty");
        return -1;
    }
    char **paths = NULL;
    int n = 0;
    if (loader_expand_shards((const char *const *)patterns->items, patterns->n, &paths, &n, err, errlen) != 0)
        return -1;
    d->shards = callocCheck((size_t)n, sizeof(Shard *));
    d->text_base = callocCheck((size_t)n + 1, sizeof(int64_t));
    for (int i = 0; i < n; i++) {
        d->shards[i] = shard_open_flags(paths[i], SHARD_OPEN_NO_KEYS, err, errlen);
        if (!d->shards[i]) {
            loader_free_paths(paths, n);
            tl_data_close(d);
            return -1;
        }
        d->n_shards = i + 1;
        d->text_base[i + 1] = d->text_base[i] + shard_num_texts(d->shards[i]);
    }
    d->n_texts = d->text_base[n];
    loader_free_paths(paths, n);
    return 0;
}

void tl_data_close(TlData *d) {
    for (int i = 0; i < d->n_shards; i++) shard_close(d->shards[i]);
    free(d->shards);
    free(d->text_base);
    memset(d, 0, sizeof(*d));
}

const Shard *tl_data_text(const TlData *d, int64_t t, int64_t *row) {
    if (t < 0 || t >= d->n_texts) die("text %lld outside the %lld texts of the split", (long long)t, (long long)d->n_texts);
    int lo = 0, hi = d->n_shards - 1;  // last shard with text_base <= t
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (d->text_base[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    *row = t - d->text_base[lo];
    return d->shards[lo];
}

int32_t tl_data_label(const TlData *d, int64_t t) {
    int64_t r;
    const Shard *s = tl_data_text(d, t, &r);
    return shard_text_label(s, r);
}

const char *tl_data_caption(const TlData *d, int64_t t) {
    int64_t r;
    const Shard *s = tl_data_text(d, t, &r);
    return shard_text_caption(s, r, NULL);
}

const char *tl_data_answers(const TlData *d, int64_t t) {
    int64_t r;
    const Shard *s = tl_data_text(d, t, &r);
    return shard_text_answers(s, r, NULL);
}

const char *tl_data_key(const TlData *d, int64_t t) {
    int64_t r;
    const Shard *s = tl_data_text(d, t, &r);
    return shard_text_key(s, r);
}

int tl_data_has_image2(const TlData *d, int64_t t) {
    int64_t r;
    const Shard *s = tl_data_text(d, t, &r);
    return shard_text_image2(s, r) >= 0;
}

void tl_train_augment(const FtContext *cx, AugmentOptions *o) {
    augment_defaults(o);
    o->scale_min = 0.5f;
    o->randaug = cx->rc.data.randaugment, o->color_jitter = cx->rc.data.color_jitter;
    o->grayscale = cx->rc.data.grayscale, o->blur = cx->rc.data.blur;
}

int tl_data_image(const TlData *d, int64_t t, int which, int size, const AugmentOptions *aug,
                  uint64_t seed, uint64_t a, uint64_t b, float *out, char *err, size_t errlen) {
    int64_t r;
    const Shard *s = tl_data_text(d, t, &r);
    int64_t img = which ? shard_text_image2(s, r) : (int64_t)shard_text_image(s, r);
    if (img < 0) {
        snprintf(err, errlen, "%s: text %lld has no second image (pack the data with `vlmae pack nlvr`)",
                 shard_path(s), (long long)r);
        return -1;
    }
    size_t nb = shard_image_nbytes(s, img);
    uint8_t *buf = mallocCheck(nb ? nb : 1);
    if (shard_read_image(s, img, buf, nb, err, errlen) < 0) {
        free(buf);
        return -1;
    }
    Image im = {0};
    char e2[256];
    if (image_decode(buf, nb, &im, e2, sizeof(e2)) != 0) {
        snprintf(err, errlen, "%s: image %lld: %s", shard_path(s), (long long)img, e2);
        free(buf);
        return -1;
    }
    free(buf);
    if (aug) {
        Rng rng;
        rng_seed_stream(&rng, seed, a, b);
        augment_train(&im, NULL, size, aug, &rng, out, NULL);
    } else {
        augment_eval(&im, size, out);
    }
    image_free(&im);
    return 0;
}

void tl_batch_alloc(TlBatch *b, int cap, int T, int S, int two) {
    memset(b, 0, sizeof(*b));
    b->cap = cap, b->T = T, b->S = S, b->two = two;
    size_t img = (size_t)cap * 3 * S * S;
    b->image = mallocCheck(img * sizeof(float));
    b->image2 = two ? mallocCheck(img * sizeof(float)) : NULL;
    b->ids = mallocCheck((size_t)cap * T * sizeof(int32_t));
    b->mask = mallocCheck((size_t)cap * T * sizeof(int32_t));
    b->text = mallocCheck((size_t)cap * sizeof(int64_t));
}

void tl_batch_free(TlBatch *b) {
    free(b->image), free(b->image2), free(b->ids), free(b->mask), free(b->text);
    memset(b, 0, sizeof(*b));
}

int tl_data_eval_batch(const TlData *d, const Tokenizer *tok, int64_t first, int n, TlBatch *b,
                       char *err, size_t errlen) {
    if (n > b->cap) die("eval batch of %d exceeds its capacity %d", n, b->cap);
    b->n = n;
    size_t per = (size_t)3 * b->S * b->S;
    int nimg = b->two ? 2 * n : n, failed = 0;
    char first_err[512] = "";
#pragma omp parallel for schedule(dynamic)
    for (int k = 0; k < nimg; k++) {
        int i = k % n, which = k / n;
        char e[512];
        float *dst = (which ? b->image2 : b->image) + (size_t)i * per;
        if (tl_data_image(d, first + i, which, b->S, NULL, 0, 0, 0, dst, e, sizeof(e)) != 0) {
#pragma omp critical(tl_eval_err)
            {
                if (!failed) snprintf(first_err, sizeof(first_err), "%s", e);
                failed = 1;
            }
        }
    }
    if (failed) {
        snprintf(err, errlen, "%s", first_err);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        b->text[i] = first + i;
        tokenizer_encode_padded(tok, tl_data_caption(d, first + i), b->ids + (size_t)i * b->T,
                                b->mask + (size_t)i * b->T, b->T);
    }
    return 0;
}

void tl_rank_slice(const Dist *dist, int64_t n, int64_t *lo, int64_t *hi) {
    *lo = n * dist->rank / dist->world;
    *hi = n * (dist->rank + 1) / dist->world;
}

// =============================================================================================
// Task parameters

void tl_extra_init(TlExtra *x) {
    memset(x, 0, sizeof(*x));
    params_init(&x->ps);
}

Linear tl_reg_linear(TlExtra *x, const char *prefix, const char *name, int out, int in) {
    char buf[128];
    Linear l;
    snprintf(buf, sizeof(buf), "%s%s.weight", prefix, name);
    l.w = params_add2(&x->ps, buf, out, in, 1);
    snprintf(buf, sizeof(buf), "%s%s.bias", prefix, name);
    l.b = params_add1(&x->ps, buf, out, 0);
    return l;
}

Norm tl_reg_norm(TlExtra *x, const char *prefix, const char *name, int C) {
    char buf[128];
    Norm n;
    snprintf(buf, sizeof(buf), "%s%s.weight", prefix, name);
    n.w = params_add1(&x->ps, buf, C, 0);
    snprintf(buf, sizeof(buf), "%s%s.bias", prefix, name);
    n.b = params_add1(&x->ps, buf, C, 0);
    return n;
}

BertAttn tl_reg_attn(TlExtra *x, const char *prefix, int C, int Ckv, const BertAttn *share_kv) {
    BertAttn a;
    a.q = tl_reg_linear(x, prefix, "q", C, C);
    if (share_kv) {
        a.k = share_kv->k;
        a.v = share_kv->v;
    } else {
        a.k = tl_reg_linear(x, prefix, "k", C, Ckv);
        a.v = tl_reg_linear(x, prefix, "v", C, Ckv);
    }
    a.o = tl_reg_linear(x, prefix, "o", C, C);
    a.ln = tl_reg_norm(x, prefix, "ln", C);
    return a;
}

void tl_reg_ffn(TlExtra *x, BertLayer *l, const char *prefix, int C, int F) {
    l->fc1 = tl_reg_linear(x, prefix, "fc1", F, C);
    l->fc2 = tl_reg_linear(x, prefix, "fc2", C, F);
    l->ln = tl_reg_norm(x, prefix, "ln", C);
}

void tl_extra_alloc(TlExtra *x, uint64_t seed) {
    params_alloc(&x->ps, 1);
    Rng r;
    rng_seed_stream(&r, seed, 0x7a5c, 0);
    for (int i = 0; i < x->ps.count; i++) {
        ParamInfo *pi = &x->ps.p[i];
        size_t len = strlen(pi->name);
        int is_bias = len > 5 && !strcmp(pi->name + len - 5, ".bias");
        int is_norm = strstr(pi->name, ".ln.") != NULL || strstr(pi->name, "norm") != NULL;
        for (size_t k = 0; k < pi->n; k++)
            pi->t->data[k] = is_bias ? 0.0f : is_norm ? 1.0f : 0.02f * (float)rng_normal(&r);
    }
}

void tl_extra_free(TlExtra *x) {
    if (x->ready) adamw_free(&x->adam);
    params_free(&x->ps);
    if (x->has_mo) params_free(&x->mps);
    memset(x, 0, sizeof(*x));
}

void tl_extra_momentum(TlExtra *x) {
    if (x->has_mo) return;
    params_init(&x->mps);
    char name[160];
    for (int i = 0; i < x->ps.count; i++) {
        const ParamInfo *pi = &x->ps.p[i];
        snprintf(name, sizeof(name), "m.%s", pi->name);
        params_add(&x->mps, name, pi->ndim, pi->shape, 0);
    }
    params_alloc(&x->mps, 0);
    memcpy(x->mps.data, x->ps.data, x->ps.total * sizeof(float));
    x->has_mo = 1;
}

void tl_extra_ema(TlExtra *x, float mu) {
    if (x->has_mo) ops_cpu.ema(x->mps.data, x->ps.data, x->ps.total, mu);
}

Tensor *tl_mo(const TlExtra *x, const Tensor *t) {
    if (!x->has_mo) die("tl_mo: the task parameters have no momentum copies");
    for (int i = 0; i < x->ps.count; i++)
        if (x->ps.p[i].t == t) return x->mps.p[i].t;
    die("tl_mo: a tensor that is not one of the task parameters");
}

Linear tl_mo_linear(const TlExtra *x, Linear l) { return (Linear){tl_mo(x, l.w), tl_mo(x, l.b)}; }

Norm tl_mo_norm(const TlExtra *x, Norm n) { return (Norm){tl_mo(x, n.w), tl_mo(x, n.b)}; }

static BertAttn mo_attn(const TlExtra *x, const BertAttn *a) {
    return (BertAttn){tl_mo_linear(x, a->q), tl_mo_linear(x, a->k), tl_mo_linear(x, a->v), tl_mo_linear(x, a->o),
                      tl_mo_norm(x, a->ln)};
}

BertLayer tl_mo_layer(const TlExtra *x, const BertLayer *l) {
    BertLayer r;
    memset(&r, 0, sizeof(r));
    r.attn = mo_attn(x, &l->attn);
    r.has_cross = l->has_cross;
    if (l->has_cross) r.cross = mo_attn(x, &l->cross);
    r.fc1 = tl_mo_linear(x, l->fc1), r.fc2 = tl_mo_linear(x, l->fc2);
    r.ln = tl_mo_norm(x, l->ln);
    return r;
}

void tl_extra_optim(TlExtra *x, const FtContext *cx, int64_t n_train_texts) {
    const RunConfig *rc = &cx->rc;
    if (x->ready) adamw_free(&x->adam);
    adamw_init(&x->adam, &x->ps, rc->train.beta1, rc->train.beta2, rc->train.eps, rc->train.weight_decay);
    x->ready = 1;
    // ft_train: steps/epoch = floor(texts / (batch * world)) (the loader's drop_last)
    int64_t spe = n_train_texts / ((int64_t)rc->train.batch_size * cx->d.world);
    int64_t total = rc->train.max_steps > 0 ? rc->train.max_steps : spe * rc->train.epochs;
    x->sched = (LrSchedule){.lr = rc->train.lr, .warmup_lr = rc->train.warmup_lr, .min_lr = rc->train.min_lr,
                            .warmup_steps = rc->train.warmup_steps, .total_steps = total};
    x->step = 0;
}

int tl_extra_grads_finite(const TlExtra *x) {
    int ok = 1;
    const float *g = x->ps.grad;
#pragma omp parallel for reduction(&& : ok)
    for (size_t i = 0; i < x->ps.total; i++) ok = ok && isfinite(g[i]);
    return ok;
}

void tl_extra_begin_step(TlExtra *x) {
    params_zero_grad(&x->ps);
    x->cur = x->step++;
}

void tl_extra_update(TlExtra *x, const Dist *d) {
    dist_allreduce_mean(d, x->ps.grad, x->ps.total);
    adamw_step(&x->adam, &x->ps, lr_at(&x->sched, x->cur));
}

int tl_extra_save(const TlExtra *x, const char *path, char *err, size_t errlen) {
    FtBlobs b = {0};
    char name[160];
    for (int i = 0; i < x->ps.count; i++) {
        const ParamInfo *pi = &x->ps.p[i];
        snprintf(name, sizeof(name), "p:%s", pi->name);
        ft_blobs_add(&b, name, x->ps.data + pi->offset, pi->n * sizeof(float));
        if (x->ready) {
            snprintf(name, sizeof(name), "m:%s", pi->name);
            ft_blobs_add(&b, name, x->adam.m + pi->offset, pi->n * sizeof(float));
            snprintf(name, sizeof(name), "v:%s", pi->name);
            ft_blobs_add(&b, name, x->adam.v + pi->offset, pi->n * sizeof(float));
        }
    }
    if (x->ready) ft_blobs_add(&b, "adam_t", &x->adam.t, sizeof(x->adam.t));
    ft_blobs_add(&b, "step", &x->step, sizeof(x->step));
    for (int i = 0; x->has_mo && i < x->mps.count; i++) {
        const ParamInfo *pi = &x->mps.p[i];
        snprintf(name, sizeof(name), "p:%s", pi->name);
        ft_blobs_add(&b, name, x->mps.data + pi->offset, pi->n * sizeof(float));
    }
    int rc = ft_blobs_write(&b, path, err, errlen);
    ft_blobs_free(&b);
    return rc;
}

int tl_extra_load(TlExtra *x, const char *path, int with_optim, int allow_missing, int *missing,
                  char *err, size_t errlen) {
    FtBlobs b;
    if (ft_blobs_read(&b, path, err, errlen) != 0) return -1;
    int miss = 0, rc = 0;
    char name[160];
    unsigned char *from_file = callocCheck((size_t)x->ps.count + 1, 1);  // online values read
    for (int i = 0; i < x->ps.count && rc == 0; i++) {
        const ParamInfo *pi = &x->ps.p[i];
        size_t n = 0;
        snprintf(name, sizeof(name), "p:%s", pi->name);
        const void *v = ft_blobs_get(&b, name, &n);
        if (!v) {
            miss++;
            if (!allow_missing) {
                snprintf(err, errlen, "%s: task parameter %s is missing", path, pi->name);
                rc = -1;
            }
            continue;
        }
        if (n != pi->n * sizeof(float)) {
            snprintf(err, errlen, "%s: task parameter %s has %zu values, the task expects %zu", path, pi->name,
                     n / sizeof(float), pi->n);
            rc = -1;
            break;
        }
        memcpy(x->ps.data + pi->offset, v, n);
        from_file[i] = 1;
        if (with_optim && x->ready) {
            size_t nm = 0, nv = 0;
            snprintf(name, sizeof(name), "m:%s", pi->name);
            const void *m = ft_blobs_get(&b, name, &nm);
            snprintf(name, sizeof(name), "v:%s", pi->name);
            const void *vv = ft_blobs_get(&b, name, &nv);
            if (m && vv && nm == n && nv == n) {
                memcpy(x->adam.m + pi->offset, m, n);
                memcpy(x->adam.v + pi->offset, vv, n);
            }
        }
    }
    for (int i = 0; rc == 0 && x->has_mo && i < x->mps.count; i++) {
        const ParamInfo *pi = &x->mps.p[i];
        size_t n = 0;
        snprintf(name, sizeof(name), "p:%s", pi->name);
        const void *v = ft_blobs_get(&b, name, &n);
        if (v && n == pi->n * sizeof(float)) {
            memcpy(x->mps.data + pi->offset, v, n);
        } else if (v) {
            snprintf(err, errlen, "%s: momentum copy %s has %zu values, the task expects %zu", path, pi->name,
                     n / sizeof(float), pi->n);
            rc = -1;
        } else if (!allow_missing) {
            snprintf(err, errlen,
                     "%s: no momentum copy %s (a checkpoint of a run without momentum distillation: continue it "
                     "with --set task.distill=false)", path, pi->name);
            rc = -1;
        } else if (from_file[i]) {
            memcpy(x->mps.data + pi->offset, x->ps.data + x->ps.p[i].offset, pi->n * sizeof(float));
        }
    }
    if (rc == 0 && with_optim) {
        size_t n = 0;
        const void *t = ft_blobs_get(&b, "adam_t", &n);
        if (t && n == sizeof(int64_t) && x->ready) memcpy(&x->adam.t, t, n);
        const void *s = ft_blobs_get(&b, "step", &n);
        if (s && n == sizeof(int64_t)) memcpy(&x->step, s, n);
    }
    free(from_file);
    ft_blobs_free(&b);
    if (missing) *missing = miss;
    return rc;
}

int tl_extra_from_init(TlExtra *x, const FtContext *cx, const char *task) {
    if (!cx->init) return 0;
    char path[4200], err[2048];
    snprintf(path, sizeof(path), "%s.extra", cx->init);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    int missing = 0;
    if (tl_extra_load(x, path, 0, 1, &missing, err, sizeof(err)) != 0) {
        if (cx->R0) fprintf(stderr, "vlmae finetune: %s: %s\n", task, err);
        return -1;
    }
    int loaded = x->ps.count - missing;
    if (cx->R0)
        printf("%s: %d of %d task parameters from %s%s\n", task, loaded, x->ps.count, path,
               missing ? " (the rest fresh)" : "");
    return loaded;
}

void tl_copy(Tensor *dst, const Tensor *src) {
    if (dst->n != src->n) die("cannot initialise a tensor of %zu values from one of %zu", dst->n, src->n);
    memcpy(dst->data, src->data, dst->n * sizeof(float));
}

void tl_copy_attn(BertAttn *dst, const BertAttn *src, int with_kv) {
    tl_copy(dst->q.w, src->q.w), tl_copy(dst->q.b, src->q.b);
    if (with_kv) {
        tl_copy(dst->k.w, src->k.w), tl_copy(dst->k.b, src->k.b);
        tl_copy(dst->v.w, src->v.w), tl_copy(dst->v.b, src->v.b);
    }
    tl_copy(dst->o.w, src->o.w), tl_copy(dst->o.b, src->o.b);
    tl_copy(dst->ln.w, src->ln.w), tl_copy(dst->ln.b, src->ln.b);
}

void tl_copy_ffn(BertLayer *dst, const BertLayer *src) {
    tl_copy(dst->fc1.w, src->fc1.w), tl_copy(dst->fc1.b, src->fc1.b);
    tl_copy(dst->fc2.w, src->fc2.w), tl_copy(dst->fc2.b, src->fc2.b);
    tl_copy(dst->ln.w, src->ln.w), tl_copy(dst->ln.b, src->ln.b);
}

// =============================================================================================
// Layers (the same computation as bert.c's sub-layers, with key masks on both sides and causal
// self-attention)

Tensor *tl_attn(Graph *g, const ModelConfig *c, const BertAttn *a, Tensor *x, Tensor *kv,
                const float *kv_mask, int B, int Tq, int Tk, int causal) {
    int Ct = c->text_width;
    Tensor *q = g_linear(g, x, a->q.w, a->q.b);
    Tensor *k = g_linear(g, kv, a->k.w, a->k.b);
    Tensor *v = g_linear(g, kv, a->v.w, a->v.b);
    Tensor *h = g_attention(g, q, 0, Ct, k, 0, Ct, v, 0, Ct, kv_mask, B, Tq, Tk, Ct, c->text_heads, causal,
                            c->attn_dropout);
    h = g_dropout(g, g_linear(g, h, a->o.w, a->o.b), c->hidden_dropout);
    return g_layernorm(g, g_add(g, h, x), a->ln.w, a->ln.b, c->text_ln_eps);
}

Tensor *tl_ffn(Graph *g, const ModelConfig *c, const BertLayer *l, Tensor *x) {
    Tensor *h = g_gelu(g, g_linear(g, x, l->fc1.w, l->fc1.b));
    h = g_dropout(g, g_linear(g, h, l->fc2.w, l->fc2.b), c->hidden_dropout);
    return g_layernorm(g, g_add(g, h, x), l->ln.w, l->ln.b, c->text_ln_eps);
}

Tensor *tl_embed(Graph *g, const ModelConfig *c, Tensor *word, Tensor *position, Tensor *type,
                 const Norm *ln, const int32_t *ids, int B, int T) {
    int Ct = c->text_width;
    int V = word->shape[0];
    if (T > position->shape[0]) die("text length %d exceeds the %d positions", T, position->shape[0]);
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= V) die("token id %d outside the vocabulary (%d)", ids[i], V);
    Tensor *x = g_gather_rows(g, word, Ct, ids, B * T);
    x = g_add_bcast(g, x, g_view(g, position, 0, T, Ct));
    x = g_add_bcast(g, x, g_view(g, type, 0, 1, Ct));
    return g_dropout(g, g_layernorm(g, x, ln->w, ln->b, c->text_ln_eps), c->hidden_dropout);
}

Tensor *tl_rows(Graph *g, Tensor *x, int n, int stride, int D) {
    int32_t *idx = arena_alloc(g->arena, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) idx[i] = i * stride;
    return g_gather_rows(g, x, D, idx, n);
}

Tensor *tl_mlp_head(Graph *g, const Linear *fc1, const Linear *fc2, Tensor *x) {
    return g_linear(g, g_relu(g, g_linear(g, x, fc1->w, fc1->b)), fc2->w, fc2->b);
}

void tl_additive_mask(const int32_t *mask, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = mask[i] ? 0.0f : -10000.0f;
}

// =============================================================================================
// Graph holders

void tl_infer_init(TlInfer *in) {
    memset(in, 0, sizeof(*in));
    arena_plan_begin(&in->arena, NULL);
    graph_init(&in->g, &ops_cpu, &in->arena, NULL, 1 << 15);
    in->g.grad_enabled = 0;
    in->g.training = 0;
}

void tl_infer_begin(TlInfer *in) {
    arena_reset(&in->arena);
    graph_clear(&in->g);
}

void tl_infer_end(TlInfer *in) {
    if (!in->planned) {
        arena_plan_end(&in->arena);
        in->planned = 1;
    }
}

void tl_infer_free(TlInfer *in) {
    graph_free(&in->g);
    arena_free(&in->arena);
}

void tl_train_init(TlTrain *t) {
    memset(t, 0, sizeof(*t));
    arena_plan_begin(&t->arena, NULL);
    graph_init(&t->g, &ops_cpu, &t->arena, NULL, 1 << 16);
}

void tl_train_begin(TlTrain *t, Rng *rng) {
    arena_reset(&t->arena);
    graph_clear(&t->g);
    if (rng) rng_seed(&t->g.rng, rng_u64(rng));
}

void tl_train_end(TlTrain *t) {
    if (!t->planned) {
        arena_plan_end(&t->arena);
        t->planned = 1;
    }
}

void tl_train_free(TlTrain *t) {
    graph_free(&t->g);
    arena_free(&t->arena);
}

Tensor *tl_encode_images(Graph *g, const Model *m, const Tower *tw, const float *images, int n) {
    const ModelConfig *c = &m->cfg;
    int N = model_num_patches(c), P = 3 * c->patch_size * c->patch_size;
    Tensor *patches = g_tensor2(g, n * N, P, 0);
    patchify_conv(images, n, c->image_size, c->patch_size, patches->data);
    return vit_forward(g, m, tw, patches, NULL, n, N);
}

float tl_cls_train_pass(TlTrain *t, Rng *rng, TlLogitsFn logits_fn, void *ctx, const int32_t *labels,
                        int distill, float alpha) {
    tl_train_begin(t, rng);
    Graph *g = &t->g;
    Tensor *logits = logits_fn(g, ctx, 0);  // (B, K)
    float *soft = NULL;
    if (distill) {
        int K = logits->shape[logits->ndim - 1], B = (int)(logits->n / (size_t)K);
        soft = arena_alloc(g->arena, logits->n * sizeof(float));  // below the region: kept until backward
        GraphScope sc = g_scope_begin(g);
        Tensor *lt = logits_fn(g, ctx, 1);
        g->ops->softmax_rows(soft, lt->data, B, K);
        g_scope_end(g, sc);
    }
    Tensor *loss = g_xent(g, logits, labels, soft, alpha);
    loss->grad[0] = 1.0f;
    graph_backward(g);
    return loss->data[0];
}

// =============================================================================================
// Task plumbing (TlTask): the hooks ve, nlvr2 and vqa share

int tl_task_open_train(TlTask *t, FtContext *cx) {
    t->cx = cx;
    char err[2048];
    if (tl_data_open(&t->train, &cx->rc.task.train, err, sizeof(err)) != 0) {
        if (cx->R0) fprintf(stderr, "vlmae finetune: task.train: %s\n", err);
        return -1;
    }
    t->have_train = 1;
    return 0;
}

static void task_after_step(void *state, Model *m, const Dist *d) {
    (void)m;
    tl_extra_update(&((TlTask *)state)->x, d);
}

static int task_save_extra(void *state, const char *path, char *err, size_t errlen) {
    return tl_extra_save(&((TlTask *)state)->x, path, err, errlen);
}

static int task_load_extra(void *state, const char *path, char *err, size_t errlen) {
    return tl_extra_load(&((TlTask *)state)->x, path, 1, 0, NULL, err, errlen);
}

FtHooks tl_task_hooks(TlTask *t, const char *loss_name) {
    FtHooks h = {0};
    h.state = t;
    h.n_losses = 1;
    h.loss_names[0] = loss_name;
    h.momentum = t->distill;  // EMA of the Model's tower before each step
    h.after_step = task_after_step;
    h.save_extra = task_save_extra;
    h.load_extra = task_load_extra;
    h.free = tl_task_free;
    return h;
}

void tl_task_free(void *state) {
    TlTask *t = state;
    if (t->have_train) tl_data_close(&t->train);
    tl_train_free(&t->tr);
}

void tl_task_plan_begin(TlTask *t, Rng *rng) {
    tl_train_init(&t->tr);
    rng_seed(rng, 1);
    tl_extra_begin_step(&t->x);
}

void tl_task_plan_end(TlTask *t) {
    tl_train_end(&t->tr);
    params_zero_grad(&t->x.ps);
    t->x.step = 0;
}

void tl_task_begin_step(TlTask *t, const Model *m) {
    tl_extra_begin_step(&t->x);
    tl_extra_ema(&t->x, m->cfg.momentum);
}

int tl_task_load(TlTask *t, const char *ckpt, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof(path), "%s.extra", ckpt);
    return tl_extra_load(&t->x, path, 0, 0, NULL, err, errlen);
}
