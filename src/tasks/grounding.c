// grounding.c: the `grounding` task (see grounding.h): retrieval fine-tuning on expressions, and
// the Grad-CAM evaluation of ALBEF's Grounding.py (gradcam_mode itm) + grounding_eval.
//
// The attention-probability gradient is not kept by the graph, so it is computed here from saved
// pieces: the fusion layers from task.gradcam_layer on are re-run with gradients (earlier layers
// and every parameter without), the ITM match logits are back-propagated, and for the chosen
// cross-attention with output O = P V (per head), dL/dP = dL/dO V^T, with P recomputed from its q
// and k (softmax(q k^T / sqrt(d)); cross-attention has no mask, evaluation no dropout). A check
// per batch verifies P V against the graph's attention output.
#define _GNU_SOURCE  // strdup
#include "tasks/grounding.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/augment.h"
#include "data/caption.h"
#include "data/image.h"
#include "data/json.h"
#include "data/loader.h"
#include "data/shard.h"
#include "engine/common.h"
#include "engine/graph.h"
#include "model/choices.h"
#include "tasks/retrieval_ft.h"
#include "tasks/task.h"
#include "train/weights_import.h"

// ---------------------------------------------------------------------------------------------
// Box metrics

double grounding_iou(const float a[4], const float b[4]) {
    double ix1 = MAX(a[0], b[0]), iy1 = MAX(a[1], b[1]);
    double ix2 = MIN(a[0] + a[2] - 1.0, b[0] + b[2] - 1.0), iy2 = MIN(a[1] + a[3] - 1.0, b[1] + b[3] - 1.0);
    double inter = (ix1 < ix2 && iy1 < iy2) ? (ix2 - ix1 + 1.0) * (iy2 - iy1 + 1.0) : 0.0;
    double uni = (double)a[2] * a[3] + (double)b[2] * b[3] - inter;
    return uni > 0.0 ? inter / uni : 0.0;
}

// Python's int() of a float (truncation toward zero), then slice clipping to [0, n].
static int slice_index(double v, int n) {
    long t = (long)v;
    if (t < 0) t += n;  // a negative index counts from the end, as in Python
    if (t < 0) t = 0;
    if (t > n) t = n;
    return (int)t;
}

double grounding_box_score(const float *heat, int H, int W, const float box[4], double alpha) {
    double area = (double)box[2] * box[3];
    if (!(area > 0.0)) return -INFINITY;
    int y0 = slice_index(box[1], H), y1 = slice_index((double)box[1] + box[3], H);
    int x0 = slice_index(box[0], W), x1 = slice_index((double)box[0] + box[2], W);
    double s = 0.0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) s += heat[(size_t)y * W + x];
    return s / pow(area, alpha);
}

int grounding_best_box(const float *heat, int H, int W, const float *boxes, int n, double alpha) {
    int best = -1;
    double bs = -INFINITY;
    for (int i = 0; i < n; i++) {
        double s = grounding_box_score(heat, H, W, boxes + 4 * i, alpha);
        if (best < 0 || s > bs) best = i, bs = s;
    }
    return best;
}

// ---------------------------------------------------------------------------------------------
// Evaluation data: grounding JSON, or shards with proposals

static int ends_with_json(const char *p) {
    size_t n = strlen(p);
    return n >= 5 && !strcmp(p + n - 5, ".json");
}

typedef struct {
    char *image, *text;     // JSON: the image file; shards: image NULL, (shard, row) below
    float box[4];
    float *props;
    int n_props;
    int norm;               // shards: boxes are normalised (scaled to the decoded image's pixels)
    const Shard *shard;
    int64_t row;
} Ref;

typedef struct {
    Ref *r;
    int n;
    Shard **shards;
    int n_shards;
} RefSet;

static void refs_free(RefSet *s) {
    for (int i = 0; i < s->n; i++) free(s->r[i].image), free(s->r[i].text), free(s->r[i].props);
    free(s->r);
    for (int i = 0; i < s->n_shards; i++) shard_close(s->shards[i]);
    free(s->shards);
    memset(s, 0, sizeof(*s));
}

// Shards packed with `vlmae pack grounding`: the expression, its box and its proposals (the
// task table /texts/proposals), all normalised.
static int refs_load_shards(const char *pattern, RefSet *s, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    char **paths = NULL;
    int n = 0;
    const char *pats[1] = {pattern};
    if (loader_expand_shards(pats, 1, &paths, &n, err, errlen) != 0) return -1;
    s->shards = callocCheck((size_t)n, sizeof(Shard *));
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        Shard *sh = shard_open(paths[i], err, errlen);
        if (!sh) {
            loader_free_paths(paths, n);
            refs_free(s);
            return -1;
        }
        s->shards[s->n_shards++] = sh;
        if (!shard_has_proposals(sh)) {
            snprintf(err, errlen, "%s has no proposal boxes (/texts/proposals): pack it with `vlmae pack grounding`", paths[i]);
            loader_free_paths(paths, n);
            refs_free(s);
            return -1;
        }
        total += shard_num_texts(sh);
    }
    loader_free_paths(paths, n);
    s->r = callocCheck((size_t)(total ? total : 1), sizeof(Ref));
    for (int i = 0; i < s->n_shards; i++) {
        const Shard *sh = s->shards[i];
        for (int64_t t = 0; t < shard_num_texts(sh); t++) {
            Ref *r = &s->r[s->n++];
            const float *pb = NULL;
            r->n_props = shard_text_proposals(sh, t, &pb);
            r->props = mallocCheck((size_t)(r->n_props ? r->n_props : 1) * 4 * sizeof(float));
            if (r->n_props) memcpy(r->props, pb, (size_t)r->n_props * 4 * sizeof(float));
            shard_text_box(sh, t, r->box);
            r->text = strdup(shard_text_caption(sh, t, NULL));
            r->norm = 1, r->shard = sh, r->row = shard_text_image(sh, t);
        }
    }
    return 0;
}

static int read_ref_image(const Ref *r, Image *im, char *err, size_t errlen) {
    if (!r->shard) return image_read_file(r->image, im, err, errlen);
    size_t cap = shard_image_nbytes(r->shard, r->row);
    uint8_t *buf = mallocCheck(cap ? cap : 1);
    int64_t nb = shard_read_image(r->shard, r->row, buf, cap, err, errlen);
    int rc = nb < 0 ? -1 : image_decode(buf, (size_t)nb, im, err, errlen);
    free(buf);
    return rc;
}

// Box in the pixels of the decoded image (shards store normalised boxes).
static void ref_box_px(const Ref *r, const float *b, const Image *im, float out[4]) {
    if (!r->norm) {
        memcpy(out, b, 4 * sizeof(float));
        return;
    }
    out[0] = b[0] * im->w, out[1] = b[1] * im->h, out[2] = b[2] * im->w, out[3] = b[3] * im->h;
}

static int read_box(const JsonValue *v, float out[4]) {
    if (!v || v->type != JSON_ARRAY || v->n != 4) return 0;
    for (int k = 0; k < 4; k++) {
        double d;
        if (!json_number(json_at(v, (size_t)k), &d)) return 0;
        out[k] = (float)d;
    }
    return 1;
}

static int refs_load(const char *path, const char *root, RefSet *s, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    JsonDoc *doc = json_parse_file(path, 0, err, errlen);
    if (!doc) return -1;
    const JsonValue *a = json_root(doc);
    if (a->type != JSON_ARRAY) {
        snprintf(err, errlen, "%s: expected a JSON list of {\"image\", \"text\", \"bbox\", \"proposals\"}", path);
        json_free(doc);
        return -1;
    }
    s->r = callocCheck(a->n ? a->n : 1, sizeof(Ref));
    for (size_t i = 0; i < a->n; i++) {
        const JsonValue *e = json_at(a, i);
        const char *img = json_string(json_get(e, "image")), *txt = json_string(json_get(e, "text"));
        if (!txt) txt = json_string(json_get(e, "caption"));
        const JsonValue *pv = json_get(e, "proposals");
        Ref *r = &s->r[s->n];
        if (!img || !txt || !read_box(json_get(e, "bbox"), r->box) || !pv || pv->type != JSON_ARRAY) {
            snprintf(err, errlen, "%s: entry %zu: needs \"image\", \"text\", \"bbox\" [x, y, w, h] and \"proposals\"", path, i);
            refs_free(s);
            json_free(doc);
            return -1;
        }
        r->props = mallocCheck((pv->n ? pv->n : 1) * 4 * sizeof(float));
        for (size_t k = 0; k < pv->n; k++)
            if (read_box(json_at(pv, k), r->props + 4 * r->n_props)) r->n_props++;
        size_t need = strlen(root) + strlen(img) + 2;
        r->image = mallocCheck(need);
        if (img[0] == '/' || !root[0]) snprintf(r->image, need, "%s", img);
        else snprintf(r->image, need, "%s/%s", root, img);
        r->text = strdup(txt);
        s->n++;
    }
    json_free(doc);
    return 0;
}

// "dir/grounding_testA.json" -> "testA"; "shards/grounding_testB-*.h5" -> "testB"
static void set_name(const char *path, char *out, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (!strncmp(b, "grounding_", 10)) b += 10;
    snprintf(out, n, "%.*s", (int)strcspn(b, ends_with_json(path) ? "." : ".-*?["), b);
}

// ---------------------------------------------------------------------------------------------
// Grad-CAM

typedef struct {
    Arena arena;
    Graph g;
    int planned;
} Gc;

// A view of a parameter without its gradient: nothing is accumulated into the model's gradients.
static Tensor *ng(Graph *g, Tensor *p) {
    Tensor *t = arena_alloc(g->arena, sizeof(Tensor));
    *t = *p;
    t->grad = NULL;
    return t;
}

// Post-LN attention sub-layer as bert.c's; cap (q, k, v, attention output) when non-NULL.
static Tensor *attn_sub(Graph *g, const ModelConfig *c, const BertAttn *a, Tensor *x, Tensor *kv, const float *mask,
                        int B, int Tq, int Tk, Tensor **cap) {
    int Ct = c->text_width;
    Tensor *q = g_linear(g, x, ng(g, a->q.w), ng(g, a->q.b));
    Tensor *k = g_linear(g, kv, ng(g, a->k.w), ng(g, a->k.b));
    Tensor *v = g_linear(g, kv, ng(g, a->v.w), ng(g, a->v.b));
    Tensor *h = g_attention(g, q, 0, Ct, k, 0, Ct, v, 0, Ct, mask, B, Tq, Tk, Ct, c->text_heads, 0, 0.0f);
    if (cap) cap[0] = q, cap[1] = k, cap[2] = v, cap[3] = h;
    h = g_linear(g, h, ng(g, a->o.w), ng(g, a->o.b));
    return g_layernorm(g, g_add(g, h, x), ng(g, a->ln.w), ng(g, a->ln.b), c->text_ln_eps);
}

static Tensor *fusion_layer(Graph *g, const ModelConfig *c, const BertLayer *l, Tensor *x, Tensor *img,
                            const float *mask, int B, int T, int Ti, Tensor **cap) {
    x = attn_sub(g, c, &l->attn, x, x, mask, B, T, T, NULL);
    x = attn_sub(g, c, &l->cross, x, img, NULL, B, T, Ti, cap);
    Tensor *h = g_gelu(g, g_linear(g, x, ng(g, l->fc1.w), ng(g, l->fc1.b)));
    h = g_linear(g, h, ng(g, l->fc2.w), ng(g, l->fc2.b));
    return g_layernorm(g, g_add(g, h, x), ng(g, l->ln.w), ng(g, l->ln.b), c->text_ln_eps);
}

// cams (B, N): Grad-CAM over the patches (CLS column dropped) for B samples of images (B,3,S,S)
// and texts ids/mask (B,T). Returns the largest |P V - O| of the consistency check.
static float gradcam(Gc *gc, Model *m, const float *images, const int32_t *ids, const int32_t *tm, int B, int T,
                     int layer, float *cams) {
    const ModelConfig *c = &m->cfg;
    Graph *g = &gc->g;
    int N = model_num_patches(c), Ti = 1 + N, Ct = c->text_width, C = c->vision_width, H = c->text_heads;
    int P = 3 * c->patch_size * c->patch_size, S = c->image_size, L = c->text_layers + c->fusion_layers;
    arena_reset(&gc->arena);
    graph_clear(g);
    g->training = 0;
    g->grad_enabled = 0;
    float *mask = arena_alloc(&gc->arena, (size_t)B * T * sizeof(float));
    for (int i = 0; i < B * T; i++) mask[i] = tm[i] ? 0.0f : -10000.0f;
    Tensor *patches = g_tensor2(g, B * N, P, 0);
    patchify_conv(images, B, S, c->patch_size, patches->data);
    Tensor *v = vit_forward(g, m, &m->on, patches, NULL, B, N);  // (B*Ti, C)
    Tensor *x = bert_text(g, m, &m->on, ids, mask, B, T);
    for (int l = c->text_layers; l < layer; l++) x = fusion_layer(g, c, &m->on.bert[l], x, v, mask, B, T, Ti, NULL);
    g->grad_enabled = 1;
    Tensor *leaf = g_tensor2(g, B * T, Ct, 1);
    memcpy(leaf->data, x->data, leaf->n * sizeof(float));
    x = leaf;
    Tensor *cap[4] = {NULL};
    for (int l = layer; l < L; l++) x = fusion_layer(g, c, &m->on.bert[l], x, v, mask, B, T, Ti, l == layer ? cap : NULL);
    int32_t *cls = arena_alloc(&gc->arena, (size_t)B * sizeof(int32_t));
    for (int b = 0; b < B; b++) cls[b] = b * T;
    Tensor *logits = g_linear(g, g_gather_rows(g, x, Ct, cls, B), ng(g, m->itm_head.w), ng(g, m->itm_head.b));
    for (int b = 0; b < B; b++) logits->grad[2 * b + 1] = 1.0f;  // d(sum of match logits)
    graph_backward(g);
    g->grad_enabled = 0;

    const float *q = cap[0]->data, *k = cap[1]->data, *vv = cap[2]->data, *o = cap[3]->data, *dO = cap[3]->grad;
    int hd = Ct / H;
    float scale = 1.0f / sqrtf((float)hd), maxdiff = 0.0f;
    (void)C;
    memset(cams, 0, (size_t)B * N * sizeof(float));
#pragma omp parallel for reduction(max : maxdiff)
    for (int b = 0; b < B; b++) {
        float *p = mallocCheck((size_t)Ti * sizeof(float));
        float *cam = cams + (size_t)b * N;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                if (!tm[b * T + i]) continue;  // masked text positions contribute 0
                const float *qi = q + ((size_t)b * T + i) * Ct + h * hd, *gi = dO + ((size_t)b * T + i) * Ct + h * hd;
                float mx = -INFINITY;
                for (int j = 0; j < Ti; j++) {
                    const float *kj = k + ((size_t)b * Ti + j) * Ct + h * hd;
                    float s = 0.0f;
                    for (int d = 0; d < hd; d++) s += qi[d] * kj[d];
                    p[j] = s * scale;
                    mx = p[j] > mx ? p[j] : mx;
                }
                double se = 0.0;
                for (int j = 0; j < Ti; j++) se += p[j] = expf(p[j] - mx);
                for (int j = 0; j < Ti; j++) p[j] = (float)(p[j] / se);
                if (h == 0 && i == 0) {  // consistency: (P V)[0] == the graph's attention output
                    for (int d = 0; d < hd; d++) {
                        double acc = 0.0;
                        for (int j = 0; j < Ti; j++) acc += p[j] * vv[((size_t)b * Ti + j) * Ct + d];
                        float diff = fabsf((float)acc - o[((size_t)b * T) * Ct + d]);
                        maxdiff = diff > maxdiff ? diff : maxdiff;
                    }
                }
                for (int j = 1; j < Ti; j++) {
                    const float *vj = vv + ((size_t)b * Ti + j) * Ct + h * hd;
                    float dp = 0.0f;
                    for (int d = 0; d < hd; d++) dp += gi[d] * vj[d];
                    if (dp > 0.0f) cam[j - 1] += p[j] * dp;
                }
            }
        for (int j = 0; j < N; j++) cam[j] /= (float)(H * T);  // mean over heads and text positions
        free(p);
    }
    if (!gc->planned) {
        arena_plan_end(&gc->arena);
        gc->planned = 1;
    }
    return maxdiff;
}

// ---------------------------------------------------------------------------------------------
// Overlays

static void draw_rect(Image *im, const float box[4], const uint8_t rgb[3]) {
    int x0 = (int)box[0], y0 = (int)box[1], x1 = (int)(box[0] + box[2]) - 1, y1 = (int)(box[1] + box[3]) - 1;
    for (int t = 0; t < 2; t++)
        for (int y = y0 + t; y <= y1 - t; y++)
            for (int x = x0 + t; x <= x1 - t; x++) {
                if (y != y0 + t && y != y1 - t && x != x0 + t && x != x1 - t) continue;
                if (x < 0 || y < 0 || x >= im->w || y >= im->h) continue;
                memcpy(im->px + ((size_t)y * im->w + x) * 3, rgb, 3);
            }
}

static void write_overlay(const char *dir, const char *set, int index, const Image *img, const float *heat,
                          const float gt[4], const float pred[4]) {
    Image o;
    image_alloc(&o, img->h, img->w, 3);
    float mx = 1e-20f;
    for (size_t i = 0; i < (size_t)img->h * img->w; i++) mx = heat[i] > mx ? heat[i] : mx;
    for (size_t i = 0; i < (size_t)img->h * img->w; i++) {
        float a = heat[i] > 0.0f ? 0.7f * heat[i] / mx : 0.0f;
        const uint8_t *s = img->px + 3 * i;
        uint8_t *d = o.px + 3 * i;
        d[0] = (uint8_t)lrintf((1.0f - a) * s[0] + a * 255.0f);
        d[1] = (uint8_t)lrintf((1.0f - a) * s[1]);
        d[2] = (uint8_t)lrintf((1.0f - a) * s[2]);
    }
    const uint8_t green[3] = {0, 220, 0}, cyan[3] = {0, 200, 255};
    draw_rect(&o, gt, green);
    draw_rect(&o, pred, cyan);
    char path[2400];
    snprintf(path, sizeof(path), "%s/%s_%05d.png", dir, set, index);
    if (image_write_png(&o, path) != 0) fprintf(stderr, "vlmae: cannot write %s\n", path);
    image_free(&o);
}

// ---------------------------------------------------------------------------------------------
// The task

static int grounding_eval(FtContext *cx, Model *m, const char *split, int64_t step, FtMetrics *out, int max_out) {
    (void)step;
    const RunConfig *rc = &cx->rc;
    const ModelConfig *c = &m->cfg;
    const PathList *l = !strcmp(split, "val") ? &rc->task.val : &rc->task.test;
    int layer = rc->task.gradcam_layer, L = c->text_layers + c->fusion_layers;
    if (layer < c->text_layers || layer >= L) {
        if (cx->R0)
            fprintf(stderr, "vlmae: task.gradcam_layer %d is not a fusion layer (this model's fusion layers are %d..%d)\n",
                    layer, c->text_layers, L - 1);
        return -1;
    }
    int S = c->image_size, N = model_num_patches(c), G = S / c->patch_size, T = rc->task.text_max_len;
    int Bv = rc->train.batch_size;
    float *images = mallocCheck((size_t)Bv * 3 * S * S * sizeof(float));
    int32_t *ids = mallocCheck((size_t)Bv * T * sizeof(int32_t)), *tm = mallocCheck((size_t)Bv * T * sizeof(int32_t));
    float *cams = mallocCheck((size_t)Bv * N * sizeof(float));
    Image *imgs = callocCheck((size_t)Bv, sizeof(Image));
    int *which = mallocCheck((size_t)Bv * sizeof(int));
    Gc gc;
    memset(&gc, 0, sizeof(gc));
    arena_plan_begin(&gc.arena, NULL);
    graph_init(&gc.g, &ops_cpu, &gc.arena, NULL, 1 << 15);
    if (cx->overlays && cx->R0) mkdir(cx->overlays, 0755);
    int nsets = 0, rc_out = 0;
    float worst = 0.0f;
    for (int f = 0; f < l->n && nsets < max_out && rc_out == 0; f++) {
        char err[2048], root[2048], name[128];
        if (rc->task.image_root[0]) {
            snprintf(root, sizeof(root), "%s", rc->task.image_root);
        } else {
            const char *sl = strrchr(l->items[f], '/');
            snprintf(root, sizeof(root), "%.*s", sl ? (int)(sl - l->items[f]) : 1, sl ? l->items[f] : ".");
        }
        set_name(l->items[f], name, sizeof(name));
        RefSet rs;
        int bad = ends_with_json(l->items[f]) ? refs_load(l->items[f], root, &rs, err, sizeof(err))
                                              : refs_load_shards(l->items[f], &rs, err, sizeof(err));
        if (bad) {
            if (cx->R0) fprintf(stderr, "vlmae: task.%s: %s\n", split, err);
            rc_out = -1;
            break;
        }
        int r0 = (int)((int64_t)rs.n * cx->d.rank / cx->d.world), r1 = (int)((int64_t)rs.n * (cx->d.rank + 1) / cx->d.world);
        double correct = 0.0, bad_images = 0.0, chance = 0.0;
        int overlays = 0;
        for (int i0 = r0; i0 < r1; i0 += Bv) {
            int nb = MIN(Bv, r1 - i0);
            for (int s = 0; s < Bv; s++) {  // always a full batch (the arena is planned on one)
                int i = s < nb ? i0 + s : i0;
                which[s] = i;
                Ref *r = &rs.r[i];
                if (s < nb) {
                    if (read_ref_image(r, &imgs[s], err, sizeof(err)) != 0) {
                        fprintf(stderr, "vlmae: %s: %s (counted as a miss)\n", l->items[f], err);
                        bad_images += 1.0;
                        which[s] = -1;
                        image_alloc(&imgs[s], S, S, 3);
                        memset(imgs[s].px, 0, (size_t)S * S * 3);
                    }
                    augment_eval(&imgs[s], S, images + (size_t)s * 3 * S * S);
                } else {
                    memcpy(images + (size_t)s * 3 * S * S, images, (size_t)3 * S * S * sizeof(float));
                }
                char *cap = pre_caption(r->text, rc->data.max_words);
                tokenizer_encode_padded(cx->tok, cap, ids + (size_t)s * T, tm + (size_t)s * T, T);
                free(cap);
            }
            float diff = gradcam(&gc, m, images, ids, tm, Bv, T, layer, cams);
            worst = diff > worst ? diff : worst;
            for (int s = 0; s < nb; s++) {
                Ref *r = &rs.r[i0 + s];
                Image *im = &imgs[s];
                if (which[s] >= 0 && r->n_props > 0 && !isnan(r->box[0])) {
                    float *heat = mallocCheck((size_t)im->h * im->w * sizeof(float));
                    float *props = mallocCheck((size_t)r->n_props * 4 * sizeof(float)), gt[4];
                    for (int p = 0; p < r->n_props; p++) ref_box_px(r, r->props + 4 * p, im, props + 4 * p);
                    ref_box_px(r, r->box, im, gt);
                    pos_embed_resize_bicubic(cams + (size_t)s * N, G, G, heat, im->h, im->w, 1);
                    int best = grounding_best_box(heat, im->h, im->w, props, r->n_props, 0.5);
                    int ok = grounding_iou(props + 4 * best, gt) >= 0.5, hits = 0;
                    correct += ok;
                    for (int p = 0; p < r->n_props; p++) hits += grounding_iou(props + 4 * p, gt) >= 0.5;
                    chance += (double)hits / r->n_props;  // a uniformly random proposal
                    if (cx->overlays && cx->R0 && overlays < cx->max_overlays)
                        write_overlay(cx->overlays, name, i0 + s, im, heat, gt, props + 4 * best), overlays++;
                    free(heat), free(props);
                }
                image_free(im);
            }
        }
        correct = dist_sum(&cx->d, correct);
        chance = dist_sum(&cx->d, chance);
        bad_images = dist_sum(&cx->d, bad_images);
        FtMetrics *o = &out[nsets++];
        memset(o, 0, sizeof(*o));
        char tag[40];
        snprintf(tag, sizeof(tag), "set:%.27s", name);
        ft_metric(o, tag, 0.0);
        ft_metric(o, "acc", rs.n ? 100.0 * correct / rs.n : 0.0);
        ft_metric(o, "n", rs.n);
        ft_metric(o, "chance_acc", rs.n ? 100.0 * chance / rs.n : 0.0);
        if (bad_images > 0) ft_metric(o, "unreadable", bad_images);
        refs_free(&rs);
    }
    if (worst > 1e-3f) {
        fprintf(stderr, "vlmae: grounding: recomputed attention differs from the model's by %g\n", worst);
        rc_out = -1;
    }
    graph_free(&gc.g);
    arena_free(&gc.arena);
    free(images), free(ids), free(tm), free(cams), free(imgs), free(which);
    return rc_out ? -1 : nsets;
}

static int grounding_finetune(FtContext *cx) { return retrieval_ft_run(cx); }

const Task task_grounding = {
    .name = "grounding",
    .help = "weakly supervised visual grounding (RefCOCO+): retrieval fine-tuning; Grad-CAM proposal accuracy",
    .finetune = grounding_finetune,
    .eval = grounding_eval,
    .load = NULL,
};
