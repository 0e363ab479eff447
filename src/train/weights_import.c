// weights_import.c: timm ViT / HF BERT safetensors -> our parameters, and safetensors export
// (name mapping in weights_import.h).
#define _GNU_SOURCE  // mmap, fsync, strdup, nftw, mkdtemp
#include "train/weights_import.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/safetensors.h"

// ---------------------------------------------------------------------------------------------
// Bicubic resize (PyTorch upsample_bicubic2d, align_corners=False)

static double cubic1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }          // |x| <= 1
static double cubic2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }    // 1 < |x| < 2

// For each output index: the 4 clamped source indices and their weights.
static void cubic_taps(int in, int out, int *idx, double *w) {
    const double A = -0.75;
    float scale = (float)in / (float)out;  // PyTorch: opmath (float) in / out
    for (int o = 0; o < out; o++) {
        float real = scale * ((float)o + 0.5f) - 0.5f;
        int i0 = (int)floorf(real);
        if (i0 > in - 1) i0 = in - 1;
        double t = (double)real - i0;
        if (t < 0) t = 0;
        if (t > 1) t = 1;
        w[4 * o + 0] = cubic2(t + 1.0, A);
        w[4 * o + 1] = cubic1(t, A);
        w[4 * o + 2] = cubic1(1.0 - t, A);
        w[4 * o + 3] = cubic2(2.0 - t, A);
        for (int k = 0; k < 4; k++) {
            int j = i0 - 1 + k;
            idx[4 * o + k] = j < 0 ? 0 : j > in - 1 ? in - 1 : j;
        }
    }
}

void pos_embed_resize_bicubic(const float *src, int sh, int sw, float *dst, int dh, int dw, int C) {
    int *iy = malloc(sizeof(int) * 4 * (size_t)dh), *ix = malloc(sizeof(int) * 4 * (size_t)dw);
    double *wy = malloc(sizeof(double) * 4 * (size_t)dh), *wx = malloc(sizeof(double) * 4 * (size_t)dw);
    if (!iy || !ix || !wy || !wx) {
        fprintf(stderr, "vlmae: out of memory resizing pos_embed\n");
        exit(1);
    }
    cubic_taps(sh, dh, iy, wy);
    cubic_taps(sw, dw, ix, wx);
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int a = 0; a < 4; a++) {
                    double row = 0;
                    for (int b = 0; b < 4; b++)
                        row += wx[4 * x + b] * src[((size_t)iy[4 * y + a] * sw + ix[4 * x + b]) * C + c];
                    acc += wy[4 * y + a] * row;
                }
                dst[((size_t)y * dw + x) * C + c] = (float)acc;
            }
    free(iy), free(ix), free(wy), free(wx);
}

// ---------------------------------------------------------------------------------------------
// Import bookkeeping

typedef struct {
    int n;
    size_t len;
    char s[320];
} NameList;  // up to a few names, then a count

static void nl_add(NameList *l, const char *name) {
    l->n++;
    if (l->n > 4) return;
    int k = snprintf(l->s + l->len, sizeof(l->s) - l->len, "%s%s", l->len ? ", " : "", name);
    if (k > 0) l->len += (size_t)k;
    if (l->len > sizeof(l->s) - 1) l->len = sizeof(l->s) - 1;
}

typedef struct {
    Model *m;
    SafeTensors st;
    char *msg;
    size_t msglen;
    char *loaded;          // per online parameter
    int n_loaded;
    float *buf;            // scratch for one file tensor
    size_t buf_n;
    NameList ignored, unexpected, skipped;
    char notes[1024];      // resize/truncation remarks
} Imp;

static int ifail(Imp *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ifail(Imp *im, const char *fmt, ...) {
    if (!im->msg || !im->msglen) return -1;
    int k = snprintf(im->msg, im->msglen, "%s: ", im->st.path);
    if (k < 0 || (size_t)k >= im->msglen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(im->msg + k, im->msglen - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

static void note(Imp *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(Imp *im, const char *fmt, ...) {
    size_t len = strlen(im->notes);
    if (len + 3 >= sizeof(im->notes)) return;
    if (len) strcpy(im->notes + len, "; "), len += 2;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(im->notes + len, sizeof(im->notes) - len, fmt, ap);
    va_end(ap);
}

static int imp_open(Imp *im, Model *m, const char *path, char *msg, size_t msglen) {
    memset(im, 0, sizeof(*im));
    im->m = m, im->msg = msg, im->msglen = msglen;
    if (st_open(&im->st, path, msg, msglen)) return -1;
    im->loaded = calloc((size_t)m->params.count, 1);
    if (!im->loaded) {
        st_close(&im->st);
        snprintf(msg, msglen, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

static void imp_close(Imp *im) {
    st_close(&im->st);
    free(im->loaded);
    free(im->buf);
}

// Reads tensor t as float into im->buf.
static float *imp_read(Imp *im, const StTensor *t) {
    size_t n = (size_t)t->numel;
    if (n > im->buf_n) {
        free(im->buf);
        im->buf = malloc((n ? n : 1) * sizeof(float));
        im->buf_n = im->buf ? n : 0;
        if (!im->buf) {
            ifail(im, "out of memory reading tensor %s", t->name);
            return NULL;
        }
    }
    if (st_read_f32(&im->st, t, im->buf, im->msg, im->msglen)) return NULL;
    return im->buf;
}

static void dims_str(char *b, size_t n, int ndim, const int64_t *d) {
    size_t k = 0;
    b[0] = 0;
    if (ndim == 0) snprintf(b, n, "scalar");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(b + k, n - k, i ? "x%lld" : "%lld", (long long)d[i]);
}

// Writes values (n of them, the parameter's size) into the online parameter `ours` and its
// momentum copy, if any.
static int put_values(Imp *im, const char *ours, const float *vals) {
    Model *m = im->m;
    const ParamInfo *pi = params_find(&m->params, ours);
    if (!pi) return ifail(im, "internal: the model has no parameter %s", ours);
    memcpy(m->params.data + pi->offset, vals, pi->n * sizeof(float));
    char mname[128];
    snprintf(mname, sizeof(mname), "m.%s", ours);
    const ParamInfo *mp = params_find(&m->momentum, mname);
    if (mp) memcpy(m->momentum.data + mp->offset, vals, mp->n * sizeof(float));
    int idx = (int)(pi - m->params.p);
    if (!im->loaded[idx]) im->loaded[idx] = 1, im->n_loaded++;
    return 0;
}

// Copies file tensor t into parameter `ours`. The file shape must equal want (want_ndim dims),
// or the parameter's own shape when want is NULL.
static int copy_param(Imp *im, const char *ours, const StTensor *t, int want_ndim, const int64_t *want) {
    const ParamInfo *pi = params_find(&im->m->params, ours);
    if (!pi) return ifail(im, "internal: the model has no parameter %s (for %s)", ours, t->name);
    int64_t own[4];
    if (!want) {
        for (int i = 0; i < pi->ndim; i++) own[i] = pi->shape[i];
        want = own, want_ndim = pi->ndim;
    }
    int same = t->ndim == want_ndim;
    for (int i = 0; same && i < want_ndim; i++) same = t->shape[i] == want[i];
    if (!same) {
        char a[96], b[96];
        dims_str(a, sizeof(a), t->ndim, t->shape);
        dims_str(b, sizeof(b), want_ndim, want);
        return ifail(im, "tensor %s has shape %s, the model's %s needs %s", t->name, a, ours, b);
    }
    const float *v = imp_read(im, t);
    if (!v) return -1;
    return put_values(im, ours, v);
}

static void summary(Imp *im, const char *what, const char *missing_label, const NameList *missing) {
    size_t k = 0, n = im->msglen;
    char *s = im->msg;
    if (!s || !n) return;
    k += (size_t)snprintf(s + k, n - k, "%s: %s: loaded %d tensors (online and momentum)", im->st.path, what, im->n_loaded);
#define PART(...) if (k < n) k += (size_t)snprintf(s + k, n - k, __VA_ARGS__)
    if (im->notes[0]) PART("; %s", im->notes);
    if (missing && missing->n) PART("; %s %d: %s%s", missing_label, missing->n, missing->s, missing->n > 4 ? ", ..." : "");
    if (im->skipped.n) PART("; skipped %d: %s%s", im->skipped.n, im->skipped.s, im->skipped.n > 4 ? ", ..." : "");
    if (im->ignored.n) PART("; ignored %d: %s%s", im->ignored.n, im->ignored.s, im->ignored.n > 4 ? ", ..." : "");
    if (im->unexpected.n) PART("; not recognised (skipped) %d: %s%s", im->unexpected.n, im->unexpected.s, im->unexpected.n > 4 ? ", ..." : "");
#undef PART
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

// ---------------------------------------------------------------------------------------------
// timm ViT

static int isqrt_exact(int64_t n) {
    if (n < 0) return -1;
    int64_t r = (int64_t)llround(sqrt((double)n));
    return r * r == n ? (int)r : -1;
}

static int vit_pos_embed(Imp *im, const StTensor *t, int distilled) {
    const ModelConfig *c = &im->m->cfg;
    int C = c->vision_width, gd = c->image_size / c->patch_size;
    int64_t rows;
    if (t->ndim == 3 && t->shape[0] == 1 && t->shape[2] == C) rows = t->shape[1];
    else if (t->ndim == 2 && t->shape[1] == C) rows = t->shape[0];
    else {
        char a[96];
        dims_str(a, sizeof(a), t->ndim, t->shape);
        return ifail(im, "tensor pos_embed has shape %s, expected (1, tokens, %d)", a, C);
    }
    int extra = distilled ? 2 : isqrt_exact(rows - 1) > 0 ? 1 : isqrt_exact(rows) > 0 ? 0 : -1;
    int gs = extra >= 0 ? isqrt_exact(rows - extra) : -1;
    if (gs <= 0)
        return ifail(im, "tensor pos_embed has %lld rows: not a square grid plus %s", (long long)rows,
                     distilled ? "class and distillation tokens" : "a class token");
    const float *src = imp_read(im, t);
    if (!src) return -1;
    size_t N = (size_t)gd * gd;
    float *out = calloc((1 + N) * (size_t)C, sizeof(float));
    if (!out) return ifail(im, "out of memory");
    if (extra >= 1) memcpy(out, src, (size_t)C * sizeof(float));  // CLS position; dist row dropped
    else note(im, "pos_embed has no class-token row: CLS position set to zero");
    const float *grid = src + (size_t)extra * C;
    if (gs == gd) memcpy(out + C, grid, N * C * sizeof(float));
    else {
        pos_embed_resize_bicubic(grid, gs, gs, out + C, gd, gd, C);
        note(im, "pos_embed resized bicubically %dx%d -> %dx%d", gs, gs, gd, gd);
    }
    int rc = put_values(im, "vit.pos_embed", out);
    free(out);
    return rc;
}

int import_vit_timm(Model *m, const char *path, char *msg, size_t msglen) {
    Imp im;
    if (imp_open(&im, m, path, msg, msglen)) return -1;
    const ModelConfig *c = &m->cfg;
    int C = c->vision_width, p = c->patch_size, rc = -1;
    int distilled = st_find(&im.st, "dist_token") || st_find(&im.st, "module.dist_token");
    for (int i = 0; i < im.st.count; i++) {
        const StTensor *t = &im.st.t[i];
        const char *n = t->name;
        if (starts(n, "module.")) n += 7;
        char ours[160];
        if (strcmp(n, "cls_token") == 0) {
            int64_t want[3] = {1, 1, C};
            if (copy_param(&im, "vit.cls_token", t, 3, want)) goto out;
        } else if (strcmp(n, "pos_embed") == 0) {
            if (vit_pos_embed(&im, t, distilled)) goto out;
        } else if (strcmp(n, "patch_embed.proj.weight") == 0) {
            int64_t want[4] = {C, 3, p, p};
            if (copy_param(&im, "vit.patch_embed.weight", t, 4, want)) goto out;
        } else if (strcmp(n, "patch_embed.proj.bias") == 0) {
            if (copy_param(&im, "vit.patch_embed.bias", t, 0, NULL)) goto out;
        } else if (strcmp(n, "norm.weight") == 0 || strcmp(n, "norm.bias") == 0) {
            snprintf(ours, sizeof(ours), "vit.%s", n);
            if (copy_param(&im, ours, t, 0, NULL)) goto out;
        } else if (starts(n, "blocks.")) {
            char *end;
            long L = strtol(n + 7, &end, 10);
            snprintf(ours, sizeof(ours), "vit.%s", n);
            if (end == n + 7 || *end != '.') nl_add(&im.unexpected, t->name);
            else if (L >= c->vision_depth) nl_add(&im.skipped, t->name);  // deeper than our encoder
            else if (!params_find(&m->params, ours)) nl_add(&im.unexpected, t->name);
            else if (copy_param(&im, ours, t, 0, NULL)) goto out;
        } else if (strcmp(n, "dist_token") == 0) {
            nl_add(&im.ignored, "dist_token (DeiT distilled)");
        } else if (starts(n, "head.") || starts(n, "head_dist.") || starts(n, "fc_norm.") || starts(n, "pre_logits.")) {
            nl_add(&im.ignored, t->name);
        } else {
            nl_add(&im.unexpected, t->name);
        }
    }
    if (im.skipped.n) note(&im, "the file has more blocks than vision_depth %d", c->vision_depth);
    NameList missing = {0};
    for (int i = 0; i < m->params.count; i++)
        if (starts(m->params.p[i].name, "vit.") && !im.loaded[i]) nl_add(&missing, m->params.p[i].name);
    if (missing.n) {
        ifail(&im, "not a timm ViT matching the model: %d image-encoder parameters not found (%s%s)", missing.n,
              missing.s, missing.n > 4 ? ", ..." : "");
        goto out;
    }
    summary(&im, "timm ViT -> image encoder", NULL, NULL);
    rc = 0;
out:
    imp_close(&im);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// HF BERT

// Our name for an HF LayerNorm/Linear leaf: "LayerNorm.gamma" -> "weight", etc.
static const char *leaf(const char *s) {
    if (strcmp(s, "gamma") == 0) return "weight";
    if (strcmp(s, "beta") == 0) return "bias";
    if (strcmp(s, "weight") == 0 || strcmp(s, "bias") == 0) return s;
    return NULL;
}

// Maps "attention.self.query.weight" (the part after encoder.layer.L.) to our suffix.
static int map_layer_part(const char *rest, char *out, size_t n) {
    static const struct {
        const char *hf, *ours;
    } T[] = {
        {"attention.self.query.", "attn.q."},      {"attention.self.key.", "attn.k."},
        {"attention.self.value.", "attn.v."},      {"attention.output.dense.", "attn.o."},
        {"attention.output.LayerNorm.", "attn.ln."}, {"crossattention.self.query.", "cross.q."},
        {"crossattention.self.key.", "cross.k."},  {"crossattention.self.value.", "cross.v."},
        {"crossattention.output.dense.", "cross.o."}, {"crossattention.output.LayerNorm.", "cross.ln."},
        {"intermediate.dense.", "ffn.fc1."},       {"output.dense.", "ffn.fc2."},
        {"output.LayerNorm.", "ffn.ln."},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++)
        if (starts(rest, T[i].hf)) {
            const char *l = leaf(rest + strlen(T[i].hf));
            if (!l) return -1;
            snprintf(out, n, "%s%s", T[i].ours, l);
            return 0;
        }
    return -1;
}

int import_bert_hf(Model *m, const char *path, char *msg, size_t msglen) {
    Imp im;
    if (imp_open(&im, m, path, msg, msglen)) return -1;
    const ModelConfig *c = &m->cfg;
    int L_model = c->text_layers + c->fusion_layers, rc = -1, max_layer = -1, truncated_pos = 0;
    for (int i = 0; i < im.st.count; i++) {
        const StTensor *t = &im.st.t[i];
        const char *n = t->name;
        if (starts(n, "module.")) n += 7;
        if (starts(n, "bert.")) n += 5;
        char ours[160];
        const char *l;
        if (strcmp(n, "embeddings.word_embeddings.weight") == 0) {
            if (t->ndim == 2 && t->shape[1] == c->text_width && t->shape[0] != c->vocab_size) {
                ifail(&im, "tensor %s has a vocabulary of %lld tokens, the model's vocab_size is %d", t->name,
                      (long long)t->shape[0], c->vocab_size);
                goto out;
            }
            if (copy_param(&im, "bert.embeddings.word", t, 0, NULL)) goto out;
        } else if (strcmp(n, "embeddings.position_embeddings.weight") == 0) {
            if (t->ndim != 2 || t->shape[1] != c->text_width || t->shape[0] < c->max_text_len) {
                char a[96];
                dims_str(a, sizeof(a), t->ndim, t->shape);
                ifail(&im, "tensor %s has shape %s, the model needs at least %dx%d (max_text_len x text_width)",
                      t->name, a, c->max_text_len, c->text_width);
                goto out;
            }
            const float *v = imp_read(&im, t);  // the first max_text_len rows
            if (!v || put_values(&im, "bert.embeddings.position", v)) goto out;
            if (t->shape[0] > c->max_text_len) truncated_pos = (int)t->shape[0];
        } else if (strcmp(n, "embeddings.token_type_embeddings.weight") == 0) {
            if (copy_param(&im, "bert.embeddings.token_type", t, 0, NULL)) goto out;
        } else if (starts(n, "embeddings.LayerNorm.") && (l = leaf(n + strlen("embeddings.LayerNorm.")))) {
            snprintf(ours, sizeof(ours), "bert.embeddings.ln.%s", l);
            if (copy_param(&im, ours, t, 0, NULL)) goto out;
        } else if (strcmp(n, "embeddings.position_ids") == 0) {
            nl_add(&im.ignored, t->name);
        } else if (starts(n, "encoder.layer.")) {
            char *end, part[96];
            long L = strtol(n + 14, &end, 10);
            if (end == n + 14 || *end != '.' || map_layer_part(end + 1, part, sizeof(part))) {
                nl_add(&im.unexpected, t->name);
                continue;
            }
            if (L > max_layer) max_layer = (int)L;
            snprintf(ours, sizeof(ours), "bert.layers.%ld.%s", L, part);
            if (L >= L_model) nl_add(&im.skipped, t->name);
            else if (!params_find(&m->params, ours)) nl_add(&im.unexpected, t->name);  // cross-attn in a text layer
            else if (copy_param(&im, ours, t, 0, NULL)) goto out;
        } else if (starts(n, "cls.predictions.transform.dense.") && (l = leaf(n + strlen("cls.predictions.transform.dense.")))) {
            snprintf(ours, sizeof(ours), "mlm.dense.%s", l);
            if (copy_param(&im, ours, t, 0, NULL)) goto out;
        } else if (starts(n, "cls.predictions.transform.LayerNorm.") &&
                   (l = leaf(n + strlen("cls.predictions.transform.LayerNorm.")))) {
            snprintf(ours, sizeof(ours), "mlm.ln.%s", l);
            if (copy_param(&im, ours, t, 0, NULL)) goto out;
        } else if (strcmp(n, "cls.predictions.bias") == 0) {
            if (copy_param(&im, "mlm.bias", t, 0, NULL)) goto out;
        } else if (strcmp(n, "cls.predictions.decoder.weight") == 0 || strcmp(n, "cls.predictions.decoder.bias") == 0) {
            nl_add(&im.ignored, t->name);  // tied to the word embeddings / same as cls.predictions.bias
        } else if (starts(n, "pooler.") || starts(n, "cls.seq_relationship.")) {
            nl_add(&im.ignored, t->name);
        } else {
            nl_add(&im.unexpected, t->name);
        }
    }
    static const char *required[] = {"bert.embeddings.word", "bert.embeddings.position", "bert.embeddings.token_type",
                                     "bert.embeddings.ln.weight", "bert.embeddings.ln.bias"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const ParamInfo *pi = params_find(&m->params, required[i]);
        if (!im.loaded[pi - m->params.p]) {
            ifail(&im, "not a Hugging Face BERT checkpoint: no tensor for %s (expected [bert.]%s)", required[i],
                  strstr(required[i], ".ln.") ? "embeddings.LayerNorm.weight/bias (or gamma/beta)"
                                              : "embeddings.{word,position,token_type}_embeddings.weight");
            goto out;
        }
    }
    if (truncated_pos) note(&im, "position table %d -> %d rows (max_text_len)", truncated_pos, c->max_text_len);
    if (max_layer >= 0) note(&im, "the file has %d layers, the model %d (%d text + %d fusion)", max_layer + 1, L_model,
                             c->text_layers, c->fusion_layers);
    // Parameters of the text side left as initialised: cross-attention (expected), whole layers
    // the file does not have, the MLM head of a BertModel file, and single tensors.
    NameList fresh_cross = {0}, missing = {0};
    int *layer_loaded = calloc((size_t)L_model, sizeof(int)), mlm_loaded = 0, first_empty = -1, n_empty = 0;
    for (int i = 0; i < m->params.count; i++) {
        const char *pn = m->params.p[i].name;
        if (!im.loaded[i]) continue;
        if (starts(pn, "bert.layers.")) layer_loaded[atoi(pn + 12)]++;
        if (starts(pn, "mlm.")) mlm_loaded++;
    }
    for (int l = 0; l < L_model; l++)
        if (!layer_loaded[l]) n_empty++, first_empty = first_empty < 0 ? l : first_empty;
    for (int i = 0; i < m->params.count; i++) {
        const char *pn = m->params.p[i].name;
        if (im.loaded[i] || !(starts(pn, "bert.") || starts(pn, "mlm."))) continue;
        if (strstr(pn, ".cross.")) nl_add(&fresh_cross, pn);
        else if (starts(pn, "bert.layers.") && !layer_loaded[atoi(pn + 12)]) continue;  // reported per layer
        else if (starts(pn, "mlm.") && !mlm_loaded) continue;                          // reported as a whole
        else nl_add(&missing, pn);
    }
    free(layer_loaded);
    if (fresh_cross.n)
        note(&im, "cross-attention of the %d fusion layers left freshly initialised (%d tensors)", c->fusion_layers,
             fresh_cross.n);
    if (n_empty == 1) note(&im, "layer %d not in the file, left as initialised", first_empty);
    else if (n_empty) note(&im, "%d layers (from layer %d) not in the file, left as initialised", n_empty, first_empty);
    if (!mlm_loaded) note(&im, "no MLM head in the file (cls.predictions.*): mlm.* left as initialised");
    summary(&im, "HF BERT -> text encoder, fusion layers, MLM head", "not in the file, left as initialised", &missing);
    rc = 0;
out:
    imp_close(&im);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Export

int export_safetensors(const Model *m, const char *path, char *err, size_t errlen) {
    int n = m->params.count;
    StWriteTensor *ts = calloc((size_t)n, sizeof(StWriteTensor));
    int64_t *shapes = calloc((size_t)n * 4, sizeof(int64_t));
    if (!ts || !shapes) {
        free(ts), free(shapes);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const ParamInfo *pi = &m->params.p[i];
        for (int d = 0; d < pi->ndim; d++) shapes[4 * i + d] = pi->shape[d];
        ts[i].name = pi->name;
        ts[i].ndim = pi->ndim;
        ts[i].shape = shapes + 4 * i;
        ts[i].data = m->params.data + pi->offset;
    }
    const char *meta[] = {"producer", "vlmae", NULL};
    int rc = st_write_f32(path, ts, n, meta, err, errlen);
    free(ts), free(shapes);
    return rc;
}
