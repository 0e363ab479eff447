// nlvr2.c: NLVR2 (is the statement true of the image pair?), ALBEF's protocol (model_nlvr.py,
// xbert.py, NLVR.py):
//
//   - both images through the image encoder; the statement through the text encoder;
//   - the fusion part doubled: 2 x fusion_layers BERT layers (self-attention, cross-attention,
//     FFN). Layer j's cross-attention attends to image (j mod 2): the left image in even layers,
//     the right in odd ones (xbert: encoder_hidden_states[(layer - fusion_layer) % 2]). The two
//     layers of each pair share their cross-attention key and value projections
//     (share_cross_attention); everything else is per layer. Both layers of pair p start from
//     pre-trained fusion layer p (NLVR.py's checkpoint mapping), the shared key/value too;
//   - MLP head Linear(768, 768) - ReLU - Linear(768, 2) on the [CLS] state, cross-entropy; label
//     1 = True (the shards' /texts/label, `vlmae pack nlvr`); evaluation: accuracy.
// The doubled layers and the head are task parameters (tasklib.h), saved in ckpt.extra.
//
// Text-assignment pre-training (ALBEF's Pretrain_nlvr.py: a 3-way head says whether a caption
// belongs to the left image, the right one, or neither, on pairs drawn from the pre-training
// data) is the separate task `nlvr2_ta` below: fine-tune it on caption shards, then start NLVR2
// from its checkpoint (--init): its doubled layers carry over through the .extra file.
//
// Momentum distillation (ALBEF's models/model_nlvr.py, configs/NLVR.yaml: distill True, alpha
// 0.4, warm_up True; task.distill, train.alpha, train.alpha_ramp here): the image encoder, the
// text encoder with its doubled fusion layers and the head have momentum copies (visual_encoder_m,
// text_encoder_m, cls_head_m); before each step every copy moves by EMA (model.momentum, 0.995),
// then loss = (1 - alpha) CE(label) + alpha x cross-entropy against the softmax of the momentum
// model's logits, alpha ramping up from 0 over the first epoch. The copies start as copies of
// the online model as it stands after loading (the Model's tower included: ALBEF's text
// assignment stage has no momentum model, and NLVR.py calls copy_params() to make them; it does
// so before load_state_dict, which would start the teacher from the un-loaded BERT and a random
// ViT -- an ordering slip we do not reproduce). The logged "ce" is the mixed loss.
// task.distill: false trains with plain cross-entropy. The text-assignment stage (nlvr2_ta)
// never distils (Pretrain_nlvr.py has no momentum model); it ignores task.distill.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"
#include "engine/common.h"
#include "tasks/task.h"
#include "tasks/tasklib.h"

#define NLVR_CLASSES 2
#define TA_CLASSES 3

typedef struct {
    TlTask t;               // context, task parameters, distill (nlvr2 with task.distill; never
                            // nlvr2_ta, never evaluation), training data and graph
    int ta;                 // the text-assignment stage (task nlvr2_ta)
    BertLayer *layers;      // 2 * fusion_layers
    int n_layers;
    Linear fc1, fc2;        // NLVR2 head
    BertLayer *layers_m;    // momentum copies of layers, fc1, fc2 (distill)
    Linear fc1_m, fc2_m;
    Linear ta_head;         // text-assignment head (Linear(768, 3) as ALBEF's ta_head)
    AugmentOptions aug;
    float *image2;          // (B, 3, S, S) the decoded right images of a training batch
    int cap_b;
} NlvrState;

static NlvrState *g_nlvr;

static void nlvr_register(NlvrState *s, const Model *m, uint64_t seed) {
    const ModelConfig *c = &m->cfg;
    int Ct = c->text_width, C = c->vision_width, F = c->fusion_layers;
    tl_extra_init(&s->t.x);
    s->n_layers = 2 * F;
    s->layers = callocCheck((size_t)s->n_layers, sizeof(BertLayer));
    char p[128];
    for (int j = 0; j < s->n_layers; j++) {
        BertLayer *l = &s->layers[j];
        snprintf(p, sizeof(p), "nlvr.layers.%d.attn.", j);
        l->attn = tl_reg_attn(&s->t.x, p, Ct, Ct, NULL);
        snprintf(p, sizeof(p), "nlvr.layers.%d.cross.", j);
        l->cross = tl_reg_attn(&s->t.x, p, Ct, C, j % 2 ? &s->layers[j - 1].cross : NULL);  // shared k/v
        l->has_cross = 1;
        snprintf(p, sizeof(p), "nlvr.layers.%d.ffn.", j);
        tl_reg_ffn(&s->t.x, l, p, Ct, c->text_mlp);
    }
    s->fc1 = tl_reg_linear(&s->t.x, "nlvr.head.", "fc1", Ct, Ct);
    s->fc2 = tl_reg_linear(&s->t.x, "nlvr.head.", "fc2", NLVR_CLASSES, Ct);
    s->ta_head = tl_reg_linear(&s->t.x, "nlvr.", "ta_head", TA_CLASSES, Ct);
    tl_extra_alloc(&s->t.x, seed);
    // Pair p of the doubled layers starts as pre-trained fusion layer p (both layers).
    for (int j = 0; j < s->n_layers; j++) {
        const BertLayer *src = &m->on.bert[c->text_layers + j / 2];
        tl_copy_attn(&s->layers[j].attn, &src->attn, 1);
        tl_copy_attn(&s->layers[j].cross, &src->cross, j % 2 == 0);
        tl_copy_ffn(&s->layers[j], src);
    }
    s->t.registered = 1;
}

// [CLS] states (B, Ct) of statements over image pairs (left, right: (B, 3, S, S) each), by the
// online model (teacher 0) or the momentum model (teacher 1).
static Tensor *nlvr_cls(Graph *g, const NlvrState *s, const Model *m, int teacher, const float *left,
                        const float *right, const int32_t *ids, const int32_t *mask, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const Tower *tw = teacher ? &m->mo : &m->on;
    const BertLayer *layers = teacher ? s->layers_m : s->layers;
    int N = model_num_patches(c), Ct = c->text_width;
    float *tmask = arena_alloc(g->arena, (size_t)B * T * sizeof(float));
    tl_additive_mask(mask, (size_t)B * T, tmask);
    Tensor *img[2] = {tl_encode_images(g, m, tw, left, B), tl_encode_images(g, m, tw, right, B)};
    Tensor *x = bert_text(g, m, tw, ids, tmask, B, T);
    for (int j = 0; j < s->n_layers; j++) {
        const BertLayer *l = &layers[j];
        x = tl_attn(g, c, &l->attn, x, x, tmask, B, T, T, 0);
        x = tl_attn(g, c, &l->cross, x, img[j % 2], NULL, B, T, 1 + N, 0);
        x = tl_ffn(g, c, l, x);
    }
    return tl_rows(g, x, B, T, Ct);
}

static Tensor *nlvr_logits(Graph *g, const NlvrState *s, const Model *m, int teacher, const float *left,
                           const float *right, const int32_t *ids, const int32_t *mask, int B, int T) {
    Tensor *cls = nlvr_cls(g, s, m, teacher, left, right, ids, mask, B, T);
    if (s->ta) return g_linear(g, cls, s->ta_head.w, s->ta_head.b);
    return tl_mlp_head(g, teacher ? &s->fc1_m : &s->fc1, teacher ? &s->fc2_m : &s->fc2, cls);
}

typedef struct {
    const NlvrState *s;
    const Model *m;
    const float *left, *right;
    const Batch *b;
} NlvrPass;

static Tensor *nlvr_pass_logits(Graph *g, void *ctx, int teacher) {
    const NlvrPass *p = ctx;
    return nlvr_logits(g, p->s, p->m, teacher, p->left, p->right, p->b->text_ids, p->b->text_mask, p->b->B, p->b->T);
}

static float nlvr_train_pass(NlvrState *s, Model *m, const float *left, const float *right, const Batch *b,
                             const int32_t *labels, float alpha, Rng *rng) {
    NlvrPass p = {s, m, left, right, b};
    return tl_cls_train_pass(&s->t.tr, rng, nlvr_pass_logits, &p, labels, s->t.distill, alpha);
}

// ---- text assignment (ALBEF model_pretrain_nlvr.py): the caption of image b; with probability
// 2/3 the pair (b, hard negative) or (hard negative, b) -> label 0 / 1 (the caption's image is on
// the left / right), else two hard negatives -> 2. Hard negatives are drawn from the softmax of
// the in-batch image-image similarities of the ITC features (temperature 0.07, self excluded).
static void ta_make_pairs(const Model *m, const Batch *b, Rng *rng, float *left, float *right, int32_t *labels) {
    const ModelConfig *c = &m->cfg;
    int B = b->B, S = b->H, N = model_num_patches(c), C = c->vision_width, E = c->embed_dim;
    size_t per = (size_t)3 * S * S;
    // ITC image features, no gradients (ALBEF: torch.no_grad)
    TlInfer in;
    tl_infer_init(&in);
    tl_infer_begin(&in);
    Tensor *v = tl_encode_images(&in.g, m, &m->on, b->image, B);
    Tensor *f = g_l2norm(&in.g, g_linear(&in.g, tl_rows(&in.g, v, B, 1 + N, C), m->on.vision_proj.w, m->on.vision_proj.b));
    double *w = mallocCheck((size_t)B * sizeof(double));
    for (int i = 0; i < B; i++) {
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < B; j++) {
            double d = 0.0;
            for (int e = 0; e < E; e++) d += (double)f->data[(size_t)i * E + e] * f->data[(size_t)j * E + e];
            w[j] = j == i ? -INFINITY : d / 0.07;
            if (w[j] > mx) mx = w[j];
        }
        for (int j = 0; j < B; j++) sum += (w[j] = j == i ? 0.0 : exp(w[j] - mx));
        int pick[2];
        for (int t = 0; t < 2; t++) {  // multinomial without replacement
            double r = rng_uniform(rng) * sum, acc = 0.0;
            int k = -1;
            for (int j = 0; j < B; j++) {
                if (w[j] <= 0.0) continue;
                acc += w[j];
                k = j;
                if (acc > r) break;
            }
            if (k < 0) k = (i + 1 + t) % B;  // degenerate weights: any other image
            pick[t] = k;
            sum -= w[k];
            w[k] = 0.0;
            if (!(sum > 0.0)) sum = 0.0;
        }
        int a, bb, lab;
        if (rng_uniform(rng) > 1.0 / 3.0) {
            if (rng_uniform(rng) > 0.5) a = i, bb = pick[0], lab = 0;
            else a = pick[0], bb = i, lab = 1;
        } else {
            a = pick[0], bb = pick[1], lab = 2;
        }
        memcpy(left + (size_t)i * per, b->image + (size_t)a * per, per * sizeof(float));
        memcpy(right + (size_t)i * per, b->image + (size_t)bb * per, per * sizeof(float));
        labels[i] = lab;
    }
    free(w);
    tl_infer_free(&in);
}

// ---- ft_train hooks

static void nlvr_ensure(NlvrState *s, const Model *m, FtContext *cx) {
    if (!s->t.registered) nlvr_register(s, m, cx->seed);
}

static void nlvr_init(void *state, Model *m, const Batch *shape, FtContext *cx) {
    NlvrState *s = state;
    nlvr_ensure(s, m, cx);
    if (s->t.distill) {
        // Every momentum copy starts as the online model as loaded (ALBEF's copy_params): the
        // task's (layers, head) here and tl_extra_from_init below, the Model's tower by an EMA
        // with mu 0 (a copy on whatever backend holds it). A resumed run loads them all after.
        model_momentum_update(m, 0.0f);
        tl_extra_momentum(&s->t.x);
        s->layers_m = callocCheck((size_t)s->n_layers, sizeof(BertLayer));
        for (int j = 0; j < s->n_layers; j++) s->layers_m[j] = tl_mo_layer(&s->t.x, &s->layers[j]);
        s->fc1_m = tl_mo_linear(&s->t.x, s->fc1), s->fc2_m = tl_mo_linear(&s->t.x, s->fc2);
    }
    tl_extra_optim(&s->t.x, cx, s->t.train.n_texts);
    if (tl_extra_from_init(&s->t.x, cx, s->ta ? "nlvr2_ta" : "nlvr2") < 0) dist_abort(&cx->d, 2);
    tl_train_augment(cx, &s->aug);
    s->cap_b = shape->B;
    size_t per = (size_t)3 * shape->H * shape->W;
    s->image2 = callocCheck((size_t)2 * shape->B * per, sizeof(float));  // (right; TA: left too)
    int32_t *lab = callocCheck((size_t)shape->B, sizeof(int32_t));
    Rng r;
    tl_task_plan_begin(&s->t, &r);
    nlvr_train_pass(s, m, shape->image, s->image2, shape, lab, 0.0f, &r);  // planning (the teacher too)
    tl_task_plan_end(&s->t);
    free(lab);
}

static void nlvr_step(void *state, Model *m, const Batch *b, float alpha, Rng *rng, float *losses) {
    NlvrState *s = state;
    tl_task_begin_step(&s->t, m);  // EMA of layers and head; ft_train moved the tower's (h.momentum)
    if (b->B > s->cap_b) die("batch of %d exceeds the planned %d", b->B, s->cap_b);
    int32_t *lab = mallocCheck((size_t)b->B * sizeof(int32_t));
    size_t per = (size_t)3 * b->H * b->W;
    const float *left = b->image, *right = s->image2;
    if (s->ta) {
        float *l2 = s->image2 + (size_t)s->cap_b * per;
        ta_make_pairs(m, b, rng, l2, s->image2, lab);
        left = l2;
    } else {
        const int64_t *texts = loader_batch_texts(b);
        int64_t ep, st;
        loader_batch_position(b, &ep, &st);
        int failed = 0;
        char msg[600] = "";
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < b->B; i++) {
            char e[512];
            // the right image: the training transform with its own per-sample stream
            if (tl_data_image(&s->t.train, texts[i], 1, b->H, &s->aug, s->t.cx->seed ^ 0x6e6c767232ULL, (uint64_t)ep,
                              (uint64_t)texts[i], s->image2 + (size_t)i * per, e, sizeof(e)) != 0) {
#pragma omp critical(nlvr_img2)
                if (!failed) failed = 1, snprintf(msg, sizeof(msg), "%s", e);
            }
        }
        if (failed) die("task.train: the right image of a statement cannot be read: %s", msg);
        for (int i = 0; i < b->B; i++) {
            lab[i] = tl_data_label(&s->t.train, texts[i]);
            if (lab[i] < 0 || lab[i] >= NLVR_CLASSES)
                die("task.train text %lld has no NLVR2 label (pack the data with `vlmae pack nlvr`)", (long long)texts[i]);
        }
    }
    losses[0] = nlvr_train_pass(s, m, left, right, b, lab, alpha, rng);
    free(lab);
    if (!tl_extra_grads_finite(&s->t.x)) losses[0] = NAN;
}

static void nlvr_free(void *state) {
    NlvrState *s = state;
    tl_task_free(&s->t);
    free(s->image2);
    s->image2 = NULL;
    free(s->layers_m);  // views into the task parameters, which stay for the evaluation
    s->layers_m = NULL;
}

static int nlvr_finetune_common(FtContext *cx, int ta) {
    NlvrState *s = callocCheck(1, sizeof(NlvrState));
    s->ta = ta;
    // labels and right images (nlvr2); the number of training texts (both: the lr schedule)
    if (tl_task_open_train(&s->t, cx) != 0) return 2;
    if (ta && cx->rc.train.batch_size < 3) {
        if (cx->R0) fprintf(stderr, "vlmae finetune: nlvr2_ta draws two hard negatives per caption: train.batch_size must be >= 3\n");
        return 2;
    }
    s->t.distill = !ta && cx->rc.task.distill;
    g_nlvr = s;
    FtHooks h = tl_task_hooks(&s->t, ta ? "ta" : "ce");
    h.init = nlvr_init;
    h.step = nlvr_step;
    h.free = nlvr_free;
    return ft_train(cx, &h);
}

static int nlvr_finetune(FtContext *cx) { return nlvr_finetune_common(cx, 0); }
static int nlvr_ta_finetune(FtContext *cx) { return nlvr_finetune_common(cx, 1); }

static int nlvr_eval_common(FtContext *cx, Model *m, const char *split, FtMetrics *out, int max_out, int ta) {
    if (max_out < 1) return 0;
    NlvrState *s = g_nlvr;
    if (!s || !s->t.registered) {
        if (cx->R0) fprintf(stderr, "vlmae: nlvr2: no task parameters loaded\n");
        return -1;
    }
    s->ta = ta;
    const PathList *pl = !strcmp(split, "val") ? &cx->rc.task.val : &cx->rc.task.test;
    char err[2048];
    TlData d;
    if (tl_data_open(&d, pl, err, sizeof(err)) != 0) {
        if (cx->R0) fprintf(stderr, "vlmae: nlvr2: task.%s: %s\n", split, err);
        return -1;
    }
    int T = cx->rc.task.text_max_len, S = m->cfg.image_size, Bm = MAX(1, cx->rc.train.batch_size);
    int64_t lo, hi;
    tl_rank_slice(&cx->d, d.n_texts, &lo, &hi);
    TlBatch b;
    tl_batch_alloc(&b, Bm, T, S, 1);
    TlInfer in;
    tl_infer_init(&in);
    double correct = 0, total = 0, trues = 0;
    int fail = 0;
    for (int64_t i = lo; i < hi && !fail; i += Bm) {
        int n = (int)MIN((int64_t)Bm, hi - i);
        if (tl_data_eval_batch(&d, cx->tok, i, n, &b, err, sizeof(err)) != 0) {
            fprintf(stderr, "vlmae: nlvr2 (rank %d): %s\n", cx->d.rank, err);
            fail = 1;
            break;
        }
        tl_infer_begin(&in);
        Tensor *logits = nlvr_logits(&in.g, s, m, 0, b.image, b.image2, b.ids, b.mask, n, T);
        for (int k = 0; k < n; k++) {
            int lab = tl_data_label(&d, b.text[k]);
            if (lab < 0 || lab >= NLVR_CLASSES) continue;
            const float *l = logits->data + (size_t)k * NLVR_CLASSES;
            int pred = l[1] > l[0];
            correct += pred == lab;
            trues += lab == 1;
            total += 1;
        }
        tl_infer_end(&in);
    }
    tl_infer_free(&in);
    tl_batch_free(&b);
    tl_data_close(&d);
    if (dist_any(&cx->d, fail)) return -1;
    correct = dist_sum(&cx->d, correct);
    total = dist_sum(&cx->d, total);
    trues = dist_sum(&cx->d, trues);
    memset(&out[0], 0, sizeof(out[0]));
    ft_metric(&out[0], "acc", total > 0 ? 100.0 * correct / total : 0.0);
    ft_metric(&out[0], "true_share", total > 0 ? 100.0 * trues / total : 0.0);  // majority baseline
    ft_metric(&out[0], "n", total);
    return 1;
}

static int nlvr_eval(FtContext *cx, Model *m, const char *split, int64_t step, FtMetrics *out, int max_out) {
    (void)step;
    return nlvr_eval_common(cx, m, split, out, max_out, 0);
}

// The text-assignment stage has no evaluation of its own: its val/test lists (if any) are NLVR2
// shards, evaluated with the NLVR2 head as it stands (not trained yet: near chance) so that the
// harness's epoch-end evaluation does something meaningful; leave task.val/test empty to skip.
static int nlvr_ta_eval(FtContext *cx, Model *m, const char *split, int64_t step, FtMetrics *out, int max_out) {
    (void)step;
    int n = nlvr_eval_common(cx, m, split, out, max_out, 0);
    if (g_nlvr) g_nlvr->ta = 1;
    return n;
}

static int nlvr_load(FtContext *cx, Model *m, const char *ckpt, char *err, size_t errlen) {
    NlvrState *s = callocCheck(1, sizeof(NlvrState));
    s->t.cx = cx;
    nlvr_ensure(s, m, cx);
    if (tl_task_load(&s->t, ckpt, err, errlen) != 0) return -1;
    g_nlvr = s;
    return 0;
}

const Task task_nlvr2 = {
    .name = "nlvr2",
    .help = "NLVR2: doubled fusion layers over the image pair, MLP head, accuracy (ALBEF protocol)",
    .finetune = nlvr_finetune,
    .eval = nlvr_eval,
    .load = nlvr_load,
};

const Task task_nlvr2_ta = {
    .name = "nlvr2_ta",
    .help = "NLVR2's text-assignment pre-training on caption shards (then: nlvr2 --init its checkpoint)",
    .finetune = nlvr_ta_finetune,
    .eval = nlvr_ta_eval,
    .load = nlvr_load,
};
