// retrieval_ft.c: the `retrieval` task — ALBEF's image-text retrieval fine-tuning (ITC with image
// ids on the queue + momentum distillation, ITM with same-image-free hard negatives) and its
// evaluation (ITC ranking, ITM re-scoring of the top k_test, TR/IR R@1/5/10; retrieval.h).
// See retrieval_ft.h for the step. task.distill: false (ft_train then passes alpha 0) is ALBEF's
// distill False: the ITC targets are the positives alone; the momentum encoders still fill the
// queues.
#include "tasks/retrieval_ft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/graph.h"
#include "model/choices.h"
#include "tasks/retrieval.h"
#include "tasks/task.h"

typedef struct {
    FtContext *cx;
    Arena arena;
    Graph g;
    int B, T, E, Q, planned;
    float *img_m, *txt_m, *ids_f;        // this step's momentum features (B,E) and image ids (B)
    float *gat_img, *gat_txt, *gat_ids;  // gathered over ranks (W*B, ...)
    int64_t *idx_queue;                  // (Q) image id of each queue entry; -100 = none
} RetFt;

void retrieval_hard_negatives(Rng *r, const float *sims, int ld, const int64_t *ids, int B, int32_t *neg,
                              double *w) {
    if (B < 2) die("ITM hard negatives need at least 2 samples per rank, got %d", B);
    for (int b = 0; b < B; b++) {
        const float *s = sims + (size_t)b * ld;
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < B; j++)
            if (ids[j] != ids[b] && s[j] > mx) mx = s[j];
        for (int j = 0; j < B; j++) {
            w[j] = ids[j] == ids[b] ? 0.0 : exp((double)s[j] - mx);  // the +1e-4 of ALBEF cancels
            sum += w[j];
        }
        int pick = -1;
        if (sum > 0.0 && isfinite(sum)) {
            double u = rng_uniform(r) * sum, acc = 0.0;
            for (int j = 0; j < B && pick < 0; j++) {
                acc += w[j];
                if (w[j] > 0.0 && u < acc) pick = j;
            }
            for (int j = B - 1; j >= 0 && pick < 0; j--)
                if (w[j] > 0.0) pick = j;
        }
        if (pick < 0) {  // no other image in the batch (or weights vanished): uniform j != b
            pick = (int)rng_randint(r, B - 1);
            if (pick >= b) pick++;
        }
        neg[b] = pick;
    }
}

static Tensor *cls_rows(Graph *g, Tensor *x, int n, int stride, int D) {
    int32_t *idx = arena_alloc(g->arena, (size_t)n * sizeof(int32_t));
    for (int b = 0; b < n; b++) idx[b] = b * stride;
    return g_gather_rows(g, x, D, idx, n);
}

static Tensor *itc_keys(Graph *g, const Tensor *feat_m, const float *queue, int B, int Q, int E) {
    Tensor *k = g_tensor2(g, B + Q, E, 0);
    memcpy(k->data, feat_m->data, (size_t)B * E * sizeof(float));
    memcpy(k->data + (size_t)B * E, queue, (size_t)Q * E * sizeof(float));
    return k;
}

// alpha * softmax(teacher sims) + (1 - alpha) * positives / count, rows (B, B+Q).
static float *itc_targets(Graph *g, Tensor *feat_m, Tensor *keys, Tensor *temp_const, const int64_t *ids,
                          const int64_t *idx_queue, int B, int Q, float alpha) {
    Tensor *sim = g_div_scalar(g, g_linear(g, feat_m, keys, NULL), temp_const);
    int V = B + Q;
    float *p = arena_alloc(g->arena, (size_t)B * V * sizeof(float));
    g->ops->softmax_rows(p, sim->data, B, V);
    for (int r = 0; r < B; r++) {
        float *row = p + (size_t)r * V;
        int npos = 0;
        for (int j = 0; j < V; j++) npos += (j < B ? ids[j] : idx_queue[j - B]) == ids[r];
        float pw = (1.0f - alpha) / (float)npos;  // npos >= 1: the sample itself
        for (int j = 0; j < V; j++) {
            int pos = (j < B ? ids[j] : idx_queue[j - B]) == ids[r];
            row[j] = alpha * row[j] + (pos ? pw : 0.0f);
        }
    }
    return p;
}

static void rft_step(void *state, Model *m, const Batch *bt, float alpha, Rng *rng, float *losses) {
    RetFt *s = state;
    const ModelConfig *c = &m->cfg;
    Graph *g = &s->g;
    int B = bt->B, T = bt->T, H = bt->H, N = model_num_patches(c);
    int C = c->vision_width, Ct = c->text_width, E = c->embed_dim, Q = c->queue_size;
    int P = 3 * c->patch_size * c->patch_size;
    if (B != s->B || T != s->T) die("batch %dx%d does not match the planned %dx%d", B, T, s->B, s->T);
    if (H != c->image_size || bt->W != c->image_size) die("image %dx%d, model expects %d", H, bt->W, c->image_size);
    arena_reset(&s->arena);
    graph_clear(g);
    rng_seed(&g->rng, rng_u64(rng));  // dropout masks of this step

    float *tmask = arena_alloc(&s->arena, (size_t)B * T * sizeof(float));
    for (int i = 0; i < B * T; i++) tmask[i] = bt->text_mask[i] ? 0.0f : -10000.0f;
    Tensor *patches = g_tensor2(g, B * N, P, 0);
    patchify_conv(bt->image, B, H, c->patch_size, patches->data);
    Tensor *temp_const = g_const(g, m->temp->data, 1, 1);
    const int64_t *ids = bt->image_id;

    // Encoders (whole image: no masking when fine-tuning), online and momentum.
    Tensor *v = vit_forward(g, m, &m->on, patches, NULL, B, N);      // (B*(1+N), C)
    Tensor *v_hat = vit_forward(g, m, &m->mo, patches, NULL, B, N);
    Tensor *w = bert_text(g, m, &m->on, bt->text_ids, tmask, B, T);  // (B*T, Ct)
    Tensor *w_hat = bert_text(g, m, &m->mo, bt->text_ids, tmask, B, T);

    // ITC: all captions of the same image are positives (image ids ride the queue).
    Tensor *img = g_l2norm(g, g_linear(g, cls_rows(g, v, B, 1 + N, C), m->on.vision_proj.w, m->on.vision_proj.b));
    Tensor *txt = g_l2norm(g, g_linear(g, cls_rows(g, w, B, T, Ct), m->on.text_proj.w, m->on.text_proj.b));
    Tensor *img_m = g_l2norm(g, g_linear(g, cls_rows(g, v_hat, B, 1 + N, C), m->mo.vision_proj.w, m->mo.vision_proj.b));
    Tensor *txt_m = g_l2norm(g, g_linear(g, cls_rows(g, w_hat, B, T, Ct), m->mo.text_proj.w, m->mo.text_proj.b));
    memcpy(s->img_m, img_m->data, (size_t)B * E * sizeof(float));
    memcpy(s->txt_m, txt_m->data, (size_t)B * E * sizeof(float));
    for (int b = 0; b < B; b++) s->ids_f[b] = (float)ids[b];
    Tensor *keys_t = itc_keys(g, txt_m, m->text_queue, B, Q, E);
    Tensor *keys_i = itc_keys(g, img_m, m->image_queue, B, Q, E);
    Tensor *s_i2t = g_div_scalar(g, g_linear(g, img, keys_t, NULL), m->temp);  // (B, B+Q)
    Tensor *s_t2i = g_div_scalar(g, g_linear(g, txt, keys_i, NULL), m->temp);
    float *tg_i2t = itc_targets(g, img_m, keys_t, temp_const, ids, s->idx_queue, B, Q, alpha);
    float *tg_t2i = itc_targets(g, txt_m, keys_i, temp_const, ids, s->idx_queue, B, Q, alpha);
    Tensor *l_i2t = g_xent(g, s_i2t, NULL, tg_i2t, 1.0f);
    Tensor *l_t2i = g_xent(g, s_t2i, NULL, tg_t2i, 1.0f);

    // ITM: B positives + 2B hard negatives, never a caption of the same image.
    int32_t *neg_image = arena_alloc(&s->arena, (size_t)B * 4), *neg_text = arena_alloc(&s->arena, (size_t)B * 4);
    double *scratch = arena_alloc(&s->arena, (size_t)B * sizeof(double));
    retrieval_hard_negatives(rng, s_t2i->data, B + Q, ids, B, neg_image, scratch);
    retrieval_hard_negatives(rng, s_i2t->data, B + Q, ids, B, neg_text, scratch);
    int32_t *pick_img = arena_alloc(&s->arena, (size_t)3 * B * 4), *pick_txt = arena_alloc(&s->arena, (size_t)3 * B * 4);
    int32_t *labels = arena_alloc(&s->arena, (size_t)3 * B * 4);
    float *mask_all = arena_alloc(&s->arena, (size_t)3 * B * T * sizeof(float));
    for (int b = 0; b < B; b++) {
        pick_img[b] = b, pick_txt[b] = b;
        pick_img[B + b] = neg_image[b], pick_txt[B + b] = b;
        pick_img[2 * B + b] = b, pick_txt[2 * B + b] = neg_text[b];
        labels[b] = 1, labels[B + b] = 0, labels[2 * B + b] = 0;
    }
    for (int r = 0; r < 3 * B; r++) memcpy(mask_all + (size_t)r * T, tmask + (size_t)pick_txt[r] * T, (size_t)T * 4);
    Tensor *img_all = g_gather_rows(g, v, (1 + N) * C, pick_img, 3 * B);
    Tensor *txt_all = g_gather_rows(g, w, T * Ct, pick_txt, 3 * B);
    Tensor *fused = bert_fusion(g, m, &m->on, txt_all, mask_all, img_all, 3 * B, T, 1 + N);
    Tensor *itm_logits = g_linear(g, cls_rows(g, fused, 3 * B, T, Ct), m->itm_head.w, m->itm_head.b);
    Tensor *l_itm = g_xent(g, itm_logits, labels, NULL, 0.0f);

    losses[0] = 0.5f * (l_i2t->data[0] + l_t2i->data[0]);
    losses[1] = l_itm->data[0];
    for (int i = 0; i < B * E; i++)
        if (!isfinite(s->img_m[i]) || !isfinite(s->txt_m[i])) {
            losses[0] = NAN;  // non-finite queue features: the harness stops or skips the step
            break;
        }
    if (g->grad_enabled) {
        l_i2t->grad[0] = 0.5f * c->w_itc;
        l_t2i->grad[0] = 0.5f * c->w_itc;
        l_itm->grad[0] = c->w_itm;
        graph_backward(g);
    }
}

static void rft_init(void *state, Model *m, const Batch *shape, FtContext *cx) {
    RetFt *s = state;
    s->cx = cx;
    s->B = shape->B, s->T = shape->T, s->E = m->cfg.embed_dim, s->Q = m->cfg.queue_size;
    int W = cx->d.world;
    s->img_m = mallocCheck((size_t)s->B * s->E * sizeof(float));
    s->txt_m = mallocCheck((size_t)s->B * s->E * sizeof(float));
    s->ids_f = mallocCheck((size_t)s->B * sizeof(float));
    s->gat_img = mallocCheck((size_t)W * s->B * s->E * sizeof(float));
    s->gat_txt = mallocCheck((size_t)W * s->B * s->E * sizeof(float));
    s->gat_ids = mallocCheck((size_t)W * s->B * sizeof(float));
    s->idx_queue = mallocCheck((size_t)s->Q * sizeof(int64_t));
    for (int i = 0; i < s->Q; i++) s->idx_queue[i] = -100;
    arena_plan_begin(&s->arena, NULL);
    graph_init(&s->g, &ops_cpu, &s->arena, NULL, 1 << 16);
    Rng r;
    rng_seed(&r, 0x5eed);
    float l[2];
    rft_step(s, m, shape, 0.0f, &r, l);
    arena_plan_end(&s->arena);
    s->planned = 1;
}

static void rft_after_step(void *state, Model *m, const Dist *d) {
    RetFt *s = state;
    size_t n = (size_t)s->B * s->E;
    dist_allgather(d, s->img_m, s->gat_img, n);
    dist_allgather(d, s->txt_m, s->gat_txt, n);
    dist_allgather(d, s->ids_f, s->gat_ids, (size_t)s->B);
    int nb = s->B * d->world, ptr = m->queue_ptr;  // model_enqueue advances it
    for (int i = 0; i < nb; i++) s->idx_queue[(ptr + i) % s->Q] = (int64_t)s->gat_ids[i];
    model_enqueue(m, s->gat_img, s->gat_txt, nb);
}

static int rft_save_extra(void *state, const char *path, char *err, size_t errlen) {
    RetFt *s = state;
    FtBlobs b = {0};
    ft_blobs_add(&b, "idx_queue", s->idx_queue, (size_t)s->Q * sizeof(int64_t));
    int rc = ft_blobs_write(&b, path, err, errlen);
    ft_blobs_free(&b);
    return rc;
}

static int rft_load_extra(void *state, const char *path, char *err, size_t errlen) {
    RetFt *s = state;
    FtBlobs b;
    if (ft_blobs_read(&b, path, err, errlen) != 0) return -1;
    size_t n = 0;
    const void *q = ft_blobs_get(&b, "idx_queue", &n);
    int rc = 0;
    if (!q || n != (size_t)s->Q * sizeof(int64_t)) {
        snprintf(err, errlen, "%s: no idx_queue of %d entries", path, s->Q);
        rc = -1;
    } else {
        memcpy(s->idx_queue, q, n);
    }
    ft_blobs_free(&b);
    return rc;
}

static void rft_free(void *state) {
    RetFt *s = state;
    graph_free(&s->g);
    arena_free(&s->arena);
    free(s->img_m), free(s->txt_m), free(s->ids_f), free(s->gat_img), free(s->gat_txt), free(s->gat_ids);
    free(s->idx_queue);
    memset(s, 0, sizeof(*s));
}

int retrieval_ft_run(FtContext *cx) {
    if (cx->rc.train.batch_size > 0 && cx->rc.train.batch_size * cx->d.world >= (1 << 24)) die("batch too large");
    RetFt s;
    memset(&s, 0, sizeof(s));
    FtHooks h = {.state = &s,
                 .n_losses = 2,
                 .loss_names = {"itc", "itm"},
                 .momentum = 1,
                 .clamp_temp = 1,
                 .init = rft_init,
                 .step = rft_step,
                 .after_step = rft_after_step,
                 .save_extra = rft_save_extra,
                 .load_extra = rft_load_extra,
                 .free = rft_free};
    return ft_train(cx, &h);
}

// ---------------------------------------------------------------------------------------------
// Evaluation

static int retrieval_eval(FtContext *cx, Model *m, const char *split, int64_t step, FtMetrics *out, int max_out) {
    (void)step;
    if (max_out < 1) return -1;
    const PathList *l = !strcmp(split, "val") ? &cx->rc.task.val : &cx->rc.task.test;
    char err[2048];
    int batch = cx->rc.train.batch_size;
    Loader *Li = ft_open_loader(cx, l, FT_EVAL_IMAGES, batch, err, sizeof(err));
    Loader *Lt = Li ? ft_open_loader(cx, l, FT_EVAL_TEXTS, batch, err, sizeof(err)) : NULL;
    if (!Li || !Lt) {
        if (cx->R0) fprintf(stderr, "vlmae: task.%s: %s\n", split, err);
        if (Li) loader_close(Li);
        return -1;
    }
    int k = cx->rc.task.k_test;
    RetrievalSet rs;
    retrieval_encode2(m, Li, Lt, &cx->d, k > 0, &rs);
    loader_close(Li);
    loader_close(Lt);
    if (cx->R0) {
        printf("%s: %d images, %d texts; ITC ranking, ITM re-scoring of the top %d\n", split, rs.n_img, rs.n_txt, k);
        fflush(stdout);
    }
    float *i2t = mallocCheck((size_t)rs.n_img * rs.n_txt * sizeof(float));
    float *t2i = mallocCheck((size_t)rs.n_img * rs.n_txt * sizeof(float));
    Recall itc, r;
    retrieval_scores_dist(m, &rs, 0, i2t, t2i, &cx->d, 0);
    retrieval_recall(i2t, t2i, rs.txt_img, rs.n_img, rs.n_txt, &itc);
    if (k > 0) {
        retrieval_scores_dist(m, &rs, k, i2t, t2i, &cx->d, cx->R0);
        retrieval_recall(i2t, t2i, rs.txt_img, rs.n_img, rs.n_txt, &r);
    } else {
        r = itc;
    }
    FtMetrics *o = &out[0];
    memset(o, 0, sizeof(*o));
    ft_metric(o, "txt_r1", r.tr[0]), ft_metric(o, "txt_r5", r.tr[1]), ft_metric(o, "txt_r10", r.tr[2]);
    ft_metric(o, "img_r1", r.ir[0]), ft_metric(o, "img_r5", r.ir[1]), ft_metric(o, "img_r10", r.ir[2]);
    ft_metric(o, "r_mean", r.mean);
    ft_metric(o, "itc_r_mean", itc.mean);
    // chance level of the mean recall (R@K of a random ranking: K / candidates)
    double chance = 0.0;
    const int K[3] = {1, 5, 10};
    for (int i = 0; i < 3; i++) {
        double per_img = rs.n_img ? (double)rs.n_txt / rs.n_img : 1.0;  // an image's captions
        chance += 100.0 * MIN(1.0, K[i] * per_img / rs.n_txt) / 6.0 + 100.0 * MIN(1.0, (double)K[i] / rs.n_img) / 6.0;
    }
    ft_metric(o, "chance_r_mean", chance);
    free(i2t), free(t2i);
    retrieval_set_free(&rs);
    return 1;
}

static int retrieval_finetune(FtContext *cx) { return retrieval_ft_run(cx); }

const Task task_retrieval = {
    .name = "retrieval",
    .help = "image-text retrieval (COCO, Flickr30K): ITC + ITM fine-tuning; TR/IR R@1/5/10, ITM re-scoring of the top k_test",
    .finetune = retrieval_finetune,
    .eval = retrieval_eval,
    .load = NULL,
};
