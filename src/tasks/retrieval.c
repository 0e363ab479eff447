// retrieval.c: image-text retrieval evaluation (see retrieval.h).
#include "tasks/retrieval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/graph.h"
#include "model/choices.h"

// One encoder pass without gradients on a private arena (sized by its first batch).
typedef struct {
    Arena arena;
    Graph g;
    int planned;
} Infer;

static void infer_begin(Infer *in) {
    arena_reset(&in->arena);
    graph_clear(&in->g);
}

static void infer_end(Infer *in) {
    if (!in->planned) {
        arena_plan_end(&in->arena);
        in->planned = 1;
    }
}

static void infer_init(Infer *in) {
    memset(in, 0, sizeof(*in));
    arena_plan_begin(&in->arena, NULL);
    graph_init(&in->g, &ops_cpu, &in->arena, NULL, 1 << 14);
    in->g.grad_enabled = 0;
    in->g.training = 0;
}

static void infer_free(Infer *in) {
    graph_free(&in->g);
    arena_free(&in->arena);
}

static Tensor *rows_every(Graph *g, Tensor *x, int n, int stride, int D) {
    int32_t *idx = arena_alloc(g->arena, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) idx[i] = i * stride;
    return g_gather_rows(g, x, D, idx, n);
}

void retrieval_encode(Model *m, Loader *L, const Dist *d, int keep_tokens, RetrievalSet *rs) {
    const ModelConfig *c = &m->cfg;
    int N = model_num_patches(c), C = c->vision_width, Ct = c->text_width, E = c->embed_dim;
    int P = 3 * c->patch_size * c->patch_size;
    memset(rs, 0, sizeof(*rs));
    rs->n_img = (int)loader_num_images(L), rs->n_txt = (int)loader_num_texts(L), rs->E = E;
    rs->txt_img = mallocCheck((size_t)rs->n_txt * sizeof(int64_t));
    for (int t = 0; t < rs->n_txt; t++) rs->txt_img[t] = loader_text_image(L, t);
    rs->img_feat = callocCheck((size_t)rs->n_img * E, sizeof(float));
    rs->txt_feat = callocCheck((size_t)rs->n_txt * E, sizeof(float));
    float *img_seen = callocCheck((size_t)rs->n_img, sizeof(float));  // which rank wrote each image
    Infer in;
    infer_init(&in);
    Graph *g = &in.g;
    Batch *b;
    int T = 0;
    loader_seek(L, 0, 0);
    while (loader_next(L, &b) == 1) {
        if (b->B == 0) continue;
        T = b->T;
        if (!rs->txt_mask) {
            rs->T = T;
            rs->txt_mask = callocCheck((size_t)rs->n_txt * T, sizeof(int32_t));
            if (keep_tokens) {
                rs->img_tokens = callocCheck((size_t)rs->n_img * (1 + N) * C, sizeof(float));
                rs->txt_states = callocCheck((size_t)rs->n_txt * T * Ct, sizeof(float));
            }
        }
        const int64_t *texts = loader_batch_texts(b);
        infer_begin(&in);
        float *mask = arena_alloc(&in.arena, (size_t)b->B * T * sizeof(float));
        for (int i = 0; i < b->B * T; i++) mask[i] = b->text_mask[i] ? 0.0f : -10000.0f;
        Tensor *patches = g_tensor2(g, b->B * N, P, 0);
        patchify_conv(b->image, b->B, b->H, c->patch_size, patches->data);
        Tensor *v = vit_forward(g, m, &m->on, patches, NULL, b->B, N);
        Tensor *w = bert_text(g, m, &m->on, b->text_ids, mask, b->B, T);
        Tensor *fi = g_l2norm(g, g_linear(g, rows_every(g, v, b->B, 1 + N, C), m->on.vision_proj.w, m->on.vision_proj.b));
        Tensor *ft = g_l2norm(g, g_linear(g, rows_every(g, w, b->B, T, Ct), m->on.text_proj.w, m->on.text_proj.b));
        for (int i = 0; i < b->B; i++) {
            int64_t t = texts[i], im = rs->txt_img[t];
            memcpy(rs->txt_feat + t * E, ft->data + (size_t)i * E, E * sizeof(float));
            memcpy(rs->txt_mask + t * T, b->text_mask + (size_t)i * T, T * sizeof(int32_t));
            if (keep_tokens) memcpy(rs->txt_states + t * T * Ct, w->data + (size_t)i * T * Ct, (size_t)T * Ct * sizeof(float));
            if (img_seen[im] == 0.0f) {  // an image with several captions is encoded once per rank
                img_seen[im] = 1.0f;
                memcpy(rs->img_feat + im * E, fi->data + (size_t)i * E, E * sizeof(float));
                if (keep_tokens)
                    memcpy(rs->img_tokens + im * (1 + N) * C, v->data + (size_t)i * (1 + N) * C, (size_t)(1 + N) * C * sizeof(float));
            }
        }
        infer_end(&in);
    }
    infer_free(&in);
    // Every text was encoded by exactly one rank, an image by one or more (identical values):
    // sum, then divide images by their count.
    if (d->world > 1) {
        int I = rs->n_img;
        float *mask_f = mallocCheck((size_t)rs->n_txt * rs->T * sizeof(float));
        for (size_t i = 0; i < (size_t)rs->n_txt * rs->T; i++) mask_f[i] = (float)rs->txt_mask[i];
        dist_allreduce_sum(d, rs->txt_feat, (size_t)rs->n_txt * E);
        dist_allreduce_sum(d, mask_f, (size_t)rs->n_txt * rs->T);
        dist_allreduce_sum(d, img_seen, (size_t)I);
        for (size_t i = 0; i < (size_t)rs->n_txt * rs->T; i++) rs->txt_mask[i] = mask_f[i] > 0.5f;
        free(mask_f);
        const float *cnt = img_seen;  // ranks that encoded each image
        dist_allreduce_sum(d, rs->img_feat, (size_t)I * E);
        for (int i = 0; i < I; i++)
            if (cnt[i] > 1.0f)
                for (int e = 0; e < E; e++) rs->img_feat[(size_t)i * E + e] /= cnt[i];
        if (keep_tokens) {
            dist_allreduce_sum(d, rs->txt_states, (size_t)rs->n_txt * rs->T * Ct);
            size_t per = (size_t)(1 + N) * C;
            dist_allreduce_sum(d, rs->img_tokens, (size_t)I * per);
            for (int i = 0; i < I; i++)
                if (cnt[i] > 1.0f)
                    for (size_t e = 0; e < per; e++) rs->img_tokens[(size_t)i * per + e] /= cnt[i];
        }
    }
    free(img_seen);
}

// Allocates the set's arrays once T is known.
static void set_alloc(RetrievalSet *rs, int T, int keep_tokens, int N, int C, int Ct) {
    rs->T = T;
    rs->txt_mask = callocCheck((size_t)rs->n_txt * T, sizeof(int32_t));
    if (keep_tokens) {
        rs->img_tokens = callocCheck((size_t)rs->n_img * (1 + N) * C, sizeof(float));
        rs->txt_states = callocCheck((size_t)rs->n_txt * T * Ct, sizeof(float));
    }
}

void retrieval_encode2(Model *m, Loader *images, Loader *texts, const Dist *d, int keep_tokens,
                       RetrievalSet *rs) {
    const ModelConfig *c = &m->cfg;
    int N = model_num_patches(c), C = c->vision_width, Ct = c->text_width, E = c->embed_dim;
    int P = 3 * c->patch_size * c->patch_size;
    memset(rs, 0, sizeof(*rs));
    rs->n_img = (int)loader_num_images(texts), rs->n_txt = (int)loader_num_texts(texts), rs->E = E;
    if (loader_num_images(images) != rs->n_img || loader_num_texts(images) != rs->n_txt)
        die("retrieval_encode2: the image and text loaders read different data");
    rs->txt_img = mallocCheck((size_t)rs->n_txt * sizeof(int64_t));
    for (int t = 0; t < rs->n_txt; t++) rs->txt_img[t] = loader_text_image(texts, t);
    rs->img_feat = callocCheck((size_t)rs->n_img * E, sizeof(float));
    rs->txt_feat = callocCheck((size_t)rs->n_txt * E, sizeof(float));
    Infer in;
    infer_init(&in);
    Graph *g = &in.g;
    Batch *b;
    // Texts: text encoder only.
    loader_seek(texts, 0, 0);
    while (loader_next(texts, &b) == 1) {
        int T = b->T;  // the loader's max_len, also in an empty batch: the same on every rank
        if (!rs->txt_mask) set_alloc(rs, T, keep_tokens, N, C, Ct);
        if (b->B == 0) continue;
        const int64_t *tx = loader_batch_texts(b);
        infer_begin(&in);
        float *mask = arena_alloc(&in.arena, (size_t)b->B * T * sizeof(float));
        for (int i = 0; i < b->B * T; i++) mask[i] = b->text_mask[i] ? 0.0f : -10000.0f;
        Tensor *w = bert_text(g, m, &m->on, b->text_ids, mask, b->B, T);
        Tensor *ft = g_l2norm(g, g_linear(g, rows_every(g, w, b->B, T, Ct), m->on.text_proj.w, m->on.text_proj.b));
        for (int i = 0; i < b->B; i++) {
            int64_t t = tx[i];
            memcpy(rs->txt_feat + t * E, ft->data + (size_t)i * E, E * sizeof(float));
            memcpy(rs->txt_mask + t * T, b->text_mask + (size_t)i * T, T * sizeof(int32_t));
            if (keep_tokens) memcpy(rs->txt_states + t * T * Ct, w->data + (size_t)i * T * Ct, (size_t)T * Ct * sizeof(float));
        }
        infer_end(&in);
    }
    infer_free(&in);
    if (!rs->txt_mask) die("retrieval_encode2: the text loader returned no batch");
    // Images: image encoder only, each image once.
    infer_init(&in);
    g = &in.g;
    loader_seek(images, 0, 0);
    while (loader_next(images, &b) == 1) {
        if (b->B == 0) continue;
        infer_begin(&in);
        Tensor *patches = g_tensor2(g, b->B * N, P, 0);
        patchify_conv(b->image, b->B, b->H, c->patch_size, patches->data);
        Tensor *v = vit_forward(g, m, &m->on, patches, NULL, b->B, N);
        Tensor *fi = g_l2norm(g, g_linear(g, rows_every(g, v, b->B, 1 + N, C), m->on.vision_proj.w, m->on.vision_proj.b));
        for (int i = 0; i < b->B; i++) {
            int64_t im = b->image_id[i];
            memcpy(rs->img_feat + im * E, fi->data + (size_t)i * E, E * sizeof(float));
            if (keep_tokens)
                memcpy(rs->img_tokens + im * (1 + N) * C, v->data + (size_t)i * (1 + N) * C, (size_t)(1 + N) * C * sizeof(float));
        }
        infer_end(&in);
    }
    infer_free(&in);
    if (d->world > 1) {  // every text and every image was encoded by exactly one rank
        float *mask_f = mallocCheck((size_t)rs->n_txt * rs->T * sizeof(float));
        for (size_t i = 0; i < (size_t)rs->n_txt * rs->T; i++) mask_f[i] = (float)rs->txt_mask[i];
        dist_allreduce_sum(d, rs->txt_feat, (size_t)rs->n_txt * E);
        dist_allreduce_sum(d, mask_f, (size_t)rs->n_txt * rs->T);
        for (size_t i = 0; i < (size_t)rs->n_txt * rs->T; i++) rs->txt_mask[i] = mask_f[i] > 0.5f;
        free(mask_f);
        dist_allreduce_sum(d, rs->img_feat, (size_t)rs->n_img * E);
        if (keep_tokens) {
            dist_allreduce_sum(d, rs->txt_states, (size_t)rs->n_txt * rs->T * Ct);
            dist_allreduce_sum(d, rs->img_tokens, (size_t)rs->n_img * (1 + N) * C);
        }
    }
}

void retrieval_set_free(RetrievalSet *rs) {
    free(rs->txt_img), free(rs->img_feat), free(rs->txt_feat), free(rs->img_tokens), free(rs->txt_states);
    free(rs->txt_mask);
    memset(rs, 0, sizeof(*rs));
}

// ITM match logit (class 1) of n (image, text) pairs.
static void itm_scores(Model *m, const RetrievalSet *rs, Infer *in, const int *img, const int *txt, int n,
                       float *out) {
    const ModelConfig *c = &m->cfg;
    int N = model_num_patches(c), C = c->vision_width, Ct = c->text_width, T = rs->T;
    Graph *g = &in->g;
    infer_begin(in);
    Tensor *vi = g_tensor2(g, n * (1 + N), C, 0), *wt = g_tensor2(g, n * T, Ct, 0);
    float *mask = arena_alloc(&in->arena, (size_t)n * T * sizeof(float));
    for (int p = 0; p < n; p++) {
        memcpy(vi->data + (size_t)p * (1 + N) * C, rs->img_tokens + (size_t)img[p] * (1 + N) * C, (size_t)(1 + N) * C * 4);
        memcpy(wt->data + (size_t)p * T * Ct, rs->txt_states + (size_t)txt[p] * T * Ct, (size_t)T * Ct * 4);
        for (int t = 0; t < T; t++) mask[p * T + t] = rs->txt_mask[(size_t)txt[p] * T + t] ? 0.0f : -10000.0f;
    }
    Tensor *x = bert_fusion(g, m, &m->on, wt, mask, vi, n, T, 1 + N);
    Tensor *logits = g_linear(g, rows_every(g, x, n, T, Ct), m->itm_head.w, m->itm_head.b);
    for (int p = 0; p < n; p++) out[p] = logits->data[2 * p + 1];
    infer_end(in);
}

typedef struct {
    float s;
    int j;
} ScoreIdx;

static int by_score_desc(const void *a, const void *b) {
    const ScoreIdx *x = a, *y = b;
    return x->s < y->s ? 1 : x->s > y->s ? -1 : x->j - y->j;
}

// ITM re-scoring of rows [r0, r1) of S (rows x cols): for each row its top k columns by score
// (ties: lower column first) and their ITM match logits, into col[(i)*k + r] / sc[i*k + r].
static void rescore_block(Model *m, const RetrievalSet *rs, const float *S, int cols, int k,
                          int rows_are_images, int r0, int r1, float *col, float *sc, int progress,
                          const char *what) {
    Infer inf, *in = &inf;  // its arena is sized by the first call: every call has k pairs
    infer_init(in);
    ScoreIdx *si = mallocCheck((size_t)cols * sizeof(ScoreIdx));
    int *ia = mallocCheck((size_t)k * sizeof(int)), *ta = mallocCheck((size_t)k * sizeof(int));
    int n = r1 - r0, next = 1;
    for (int i = r0; i < r1; i++) {
        const float *row = S + (size_t)i * cols;
        for (int j = 0; j < cols; j++) si[j] = (ScoreIdx){row[j], j};
        qsort(si, (size_t)cols, sizeof(ScoreIdx), by_score_desc);
        for (int r = 0; r < k; r++) {
            ia[r] = rows_are_images ? i : si[r].j;
            ta[r] = rows_are_images ? si[r].j : i;
            col[(size_t)i * k + r] = (float)si[r].j;
        }
        itm_scores(m, rs, in, ia, ta, k, sc + (size_t)i * k);
        // ALBEF (Retrieval.py evaluation): score = ITM match logit + the ITC similarity, so the
        // ITC order still counts inside the top k (an untrained ITM head no longer scrambles it).
        for (int r = 0; r < k; r++) sc[(size_t)i * k + r] += si[r].s;
        if (progress && n >= 20 && (i - r0 + 1) * 10 >= next * n) {
            printf("  ITM re-scoring %s: %d/%d rows of rank 0\n", what, i - r0 + 1, n);
            fflush(stdout);
            next++;
        }
    }
    infer_free(in);
    free(si), free(ia), free(ta);
}

// Re-scores the top k of every row of S, rows split over the ranks; -100 elsewhere.
static void rescore_rows(Model *m, const RetrievalSet *rs, float *S, int rows, int cols, int k,
                         int rows_are_images, const Dist *d, int progress) {
    if (cols >= (1 << 24)) die("retrieval: %d columns exceed the exact float range of the gather", cols);
    float *col = callocCheck((size_t)rows * k, sizeof(float)), *sc = callocCheck((size_t)rows * k, sizeof(float));
    int r0 = (int)((int64_t)rows * d->rank / d->world), r1 = (int)((int64_t)rows * (d->rank + 1) / d->world);
    rescore_block(m, rs, S, cols, k, rows_are_images, r0, r1, col, sc, progress && d->rank == 0,
                  rows_are_images ? "image->text" : "text->image");
    if (d->world > 1) {
        dist_allreduce_sum(d, col, (size_t)rows * k);
        dist_allreduce_sum(d, sc, (size_t)rows * k);
    }
    for (int i = 0; i < rows; i++) {
        float *row = S + (size_t)i * cols;
        for (int j = 0; j < cols; j++) row[j] = -100.0f;
        for (int r = 0; r < k; r++) row[(int)col[(size_t)i * k + r]] = sc[(size_t)i * k + r];
    }
    free(col), free(sc);
}

void retrieval_scores_dist(Model *m, const RetrievalSet *rs, int k, float *i2t, float *t2i,
                           const Dist *d, int progress) {
    int I = rs->n_img, Tn = rs->n_txt, E = rs->E;
    // ITC: i2t = img_feat @ txt_feat^T (one GEMM); t2i is its transpose.
    ops_cpu.linear_fwd(i2t, rs->img_feat, rs->txt_feat, NULL, I, E, Tn);
    for (int i = 0; i < I; i++)
        for (int t = 0; t < Tn; t++) t2i[(size_t)t * I + i] = i2t[(size_t)i * Tn + t];
    if (k <= 0 || !rs->img_tokens) return;
    rescore_rows(m, rs, i2t, I, Tn, MIN(k, Tn), 1, d, progress);
    rescore_rows(m, rs, t2i, Tn, I, MIN(k, I), 0, d, progress);
}

void retrieval_scores(Model *m, const RetrievalSet *rs, int k, float *i2t, float *t2i) {
    Dist one = {.rank = 0, .world = 1, .local_world = 1};
    retrieval_scores_dist(m, rs, k, i2t, t2i, &one, 0);
}

// TR: an image's rank is the number of texts scoring above its best caption; IR: a text's rank
// is the number of images scoring above its own. Ties go to the lower index.
void retrieval_recall(const float *i2t, const float *t2i, const int64_t *txt_img, int n_img, int n_txt,
                      Recall *out) {
    const int K[3] = {1, 5, 10};
    int hit_tr[3] = {0}, hit_ir[3] = {0};
    for (int i = 0; i < n_img; i++) {
        const float *row = i2t + (size_t)i * n_txt;
        // best positive: the highest-scoring caption of image i; its rank = #texts scoring higher
        float best = -INFINITY;
        int best_j = -1;
        for (int t = 0; t < n_txt; t++)
            if (txt_img[t] == i && (best_j < 0 || row[t] > best)) best = row[t], best_j = t;
        if (best_j < 0) continue;
        int rank = 0;
        for (int t = 0; t < n_txt; t++)
            if (row[t] > best || (row[t] == best && t < best_j)) rank++;
        for (int k = 0; k < 3; k++) hit_tr[k] += rank < K[k];
    }
    int with_caption = 0;
    for (int i = 0; i < n_img; i++)
        for (int t = 0; t < n_txt; t++)
            if (txt_img[t] == i) {
                with_caption++;
                break;
            }
    for (int t = 0; t < n_txt; t++) {
        const float *row = t2i + (size_t)t * n_img;
        int g = (int)txt_img[t], rank = 0;
        for (int i = 0; i < n_img; i++)
            if (row[i] > row[g] || (row[i] == row[g] && i < g)) rank++;
        for (int k = 0; k < 3; k++) hit_ir[k] += rank < K[k];
    }
    out->mean = 0.0;
    for (int k = 0; k < 3; k++) {
        out->tr[k] = with_caption ? 100.0 * hit_tr[k] / with_caption : 0.0;
        out->ir[k] = n_txt ? 100.0 * hit_ir[k] / n_txt : 0.0;
        out->mean += (out->tr[k] + out->ir[k]) / 6.0;
    }
}

void retrieval_group_recall(const float *i2t, const float *t2i, const int64_t *txt_img, const int *img_group,
                            int n_img, int n_txt, GroupRecall *out) {
    memset(out, 0, sizeof(*out));
    double ir = 0, ir_chance = 0;
    for (int t = 0; t < n_txt; t++) {  // text -> images of its group
        const float *row = t2i + (size_t)t * n_img;
        int g = (int)txt_img[t], above = 0, ties = 0, cand = 0;
        for (int i = 0; i < n_img; i++) {
            if (img_group[i] != img_group[g]) continue;
            cand++;
            if (i == g) continue;
            above += row[i] > row[g], ties += row[i] == row[g];
        }
        ir += above ? 0.0 : 1.0 / (1 + ties);
        ir_chance += 1.0 / cand;
    }
    double tr = 0, tr_chance = 0;
    int n_q = 0;
    for (int i = 0; i < n_img; i++) {  // image -> texts of images of its group
        const float *row = i2t + (size_t)i * n_txt;
        float best = -INFINITY;
        int own = 0, cand = 0;
        for (int t = 0; t < n_txt; t++) {
            if (img_group[txt_img[t]] != img_group[i]) continue;
            cand++;
            if (txt_img[t] == i) own++, best = fmaxf(best, row[t]);
        }
        if (!own) continue;
        // hit: the top-scoring candidate is one of the image's own texts (ties at random)
        int above = 0, ties_own = 0, ties_other = 0;
        for (int t = 0; t < n_txt; t++) {
            if (img_group[txt_img[t]] != img_group[i]) continue;
            if (row[t] > best) above++;
            else if (row[t] == best && txt_img[t] == i) ties_own++;
            else if (row[t] == best) ties_other++;
        }
        tr += above ? 0.0 : (double)ties_own / (ties_own + ties_other);
        tr_chance += (double)own / cand;
        n_q++;
    }
    out->ir1 = n_txt ? 100.0 * ir / n_txt : 0.0;
    out->chance_ir1 = n_txt ? 100.0 * ir_chance / n_txt : 0.0;
    out->tr1 = n_q ? 100.0 * tr / n_q : 0.0;
    out->chance_tr1 = n_q ? 100.0 * tr_chance / n_q : 0.0;
}
