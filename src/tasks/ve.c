// ve.c: SNLI-VE (visual entailment), ALBEF's protocol: the fused [CLS] state of (image,
// hypothesis) through an MLP head Linear(768, 768) - ReLU - Linear(768, 3), cross-entropy over
// entailment / neutral / contradiction (labels 2 / 1 / 0 as ALBEF's ve_dataset, from the shards'
// /texts/label written by `vlmae pack ve`); evaluation: accuracy.
//
// Momentum distillation (ALBEF's models/model_ve.py, configs/VE.yaml: distill True, alpha 0.4,
// warm_up False; task.distill, train.alpha, train.alpha_ramp here): the image encoder, the text
// encoder + fusion layers and the head have momentum copies (visual_encoder_m, text_encoder_m,
// cls_head_m). The encoders' copies are the Model's momentum tower, as loaded from the checkpoint
// (VE.py loads the pre-trained *_m weights); the head's starts as a copy of the fresh head
// (copy_params). Before each step every copy moves by EMA (model.momentum, 0.995), then
// loss = (1 - alpha) CE(label) + alpha x cross-entropy against the softmax of the momentum
// model's logits. The logged "ce" is that mixed loss (ALBEF logs it too). task.distill: false
// trains with plain cross-entropy and no momentum copies.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"
#include "engine/common.h"
#include "tasks/task.h"
#include "tasks/tasklib.h"

#define VE_CLASSES 3

typedef struct {
    TlTask t;               // context, the head's parameters, distill (task.distill), data, graph
    Linear fc1, fc2;
    Linear fc1_m, fc2_m;    // momentum copies (distill)
} VeState;

static VeState *g_ve;  // the task state eval uses (set by finetune or load)

static void ve_register(VeState *s, const Model *m, uint64_t seed) {
    int Ct = m->cfg.text_width;
    tl_extra_init(&s->t.x);
    s->fc1 = tl_reg_linear(&s->t.x, "ve.head.", "fc1", Ct, Ct);
    s->fc2 = tl_reg_linear(&s->t.x, "ve.head.", "fc2", VE_CLASSES, Ct);
    tl_extra_alloc(&s->t.x, seed);
    s->t.registered = 1;
}

// (B, 3) logits of B (image, text) pairs: online (teacher 0) or momentum model (teacher 1).
static Tensor *ve_logits(Graph *g, const VeState *s, const Model *m, int teacher, const float *images,
                         const int32_t *ids, const int32_t *mask, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const Tower *tw = teacher ? &m->mo : &m->on;
    int N = model_num_patches(c), Ct = c->text_width;
    float *tmask = arena_alloc(g->arena, (size_t)B * T * sizeof(float));
    tl_additive_mask(mask, (size_t)B * T, tmask);
    Tensor *v = tl_encode_images(g, m, tw, images, B);
    Tensor *w = bert_text(g, m, tw, ids, tmask, B, T);
    Tensor *f = bert_fusion(g, m, tw, w, tmask, v, B, T, 1 + N);
    return tl_mlp_head(g, teacher ? &s->fc1_m : &s->fc1, teacher ? &s->fc2_m : &s->fc2, tl_rows(g, f, B, T, Ct));
}

typedef struct {
    const VeState *s;
    const Model *m;
    const Batch *b;
} VePass;

static Tensor *ve_pass_logits(Graph *g, void *ctx, int teacher) {
    const VePass *p = ctx;
    return ve_logits(g, p->s, p->m, teacher, p->b->image, p->b->text_ids, p->b->text_mask, p->b->B, p->b->T);
}

static float ve_train_pass(VeState *s, Model *m, const Batch *b, const int32_t *labels, float alpha, Rng *rng) {
    VePass p = {s, m, b};
    return tl_cls_train_pass(&s->t.tr, rng, ve_pass_logits, &p, labels, s->t.distill, alpha);
}

// ---- ft_train hooks

static void ve_ensure(VeState *s, const Model *m, FtContext *cx);

static void ve_init(void *state, Model *m, const Batch *shape, FtContext *cx) {
    VeState *s = state;
    ve_ensure(s, m, cx);
    if (s->t.distill) {  // cls_head_m = cls_head (copy_params); the towers' copies are the Model's
        tl_extra_momentum(&s->t.x);
        s->fc1_m = tl_mo_linear(&s->t.x, s->fc1), s->fc2_m = tl_mo_linear(&s->t.x, s->fc2);
    }
    tl_extra_optim(&s->t.x, cx, s->t.train.n_texts);
    if (tl_extra_from_init(&s->t.x, cx, "ve") < 0) dist_abort(&cx->d, 2);
    int32_t *lab = callocCheck((size_t)shape->B, sizeof(int32_t));
    Rng r;
    tl_task_plan_begin(&s->t, &r);
    ve_train_pass(s, m, shape, lab, 0.0f, &r);  // planning: sizes the arena (the teacher too)
    tl_task_plan_end(&s->t);
    free(lab);
}

static void ve_step(void *state, Model *m, const Batch *b, float alpha, Rng *rng, float *losses) {
    VeState *s = state;
    tl_task_begin_step(&s->t, m);  // EMA of the head's copy; ft_train moved the towers' (h.momentum)
    const int64_t *texts = loader_batch_texts(b);
    int32_t lab[4096];
    if (b->B > 4096) die("batch of %d exceeds 4096", b->B);
    for (int i = 0; i < b->B; i++) {
        lab[i] = tl_data_label(&s->t.train, texts[i]);
        if (lab[i] < 0 || lab[i] >= VE_CLASSES)
            die("task.train text %lld has no SNLI-VE label (pack the data with `vlmae pack ve`)", (long long)texts[i]);
    }
    losses[0] = ve_train_pass(s, m, b, lab, alpha, rng);
    if (!tl_extra_grads_finite(&s->t.x)) losses[0] = NAN;  // the harness skips / stops on it
}

// ---- task entry points

static int ve_finetune(FtContext *cx) {
    VeState *s = callocCheck(1, sizeof(VeState));
    if (tl_task_open_train(&s->t, cx) != 0) return 2;
    s->t.distill = cx->rc.task.distill;
    g_ve = s;  // the head stays for an evaluation after training (tl_task_free keeps it)
    FtHooks h = tl_task_hooks(&s->t, "ce");
    h.init = ve_init;  // registers the head (it needs the model's widths)
    h.step = ve_step;
    return ft_train(cx, &h);
}

// Registers the head on first use (finetune: in init; eval: in load).
static void ve_ensure(VeState *s, const Model *m, FtContext *cx) {
    if (!s->t.registered) ve_register(s, m, cx->seed);
}

static int ve_eval(FtContext *cx, Model *m, const char *split, int64_t step, FtMetrics *out, int max_out) {
    (void)step;
    if (max_out < 1) return 0;
    VeState *s = g_ve;
    if (!s || !s->t.registered) {
        if (cx->R0) fprintf(stderr, "vlmae: ve: no task head loaded\n");
        return -1;
    }
    const PathList *pl = !strcmp(split, "val") ? &cx->rc.task.val : &cx->rc.task.test;
    char err[2048];
    TlData d;
    if (tl_data_open(&d, pl, err, sizeof(err)) != 0) {
        if (cx->R0) fprintf(stderr, "vlmae: ve: task.%s: %s\n", split, err);
        return -1;
    }
    int T = cx->rc.task.text_max_len, S = m->cfg.image_size, Bm = MAX(1, cx->rc.train.batch_size);
    int64_t lo, hi;
    tl_rank_slice(&cx->d, d.n_texts, &lo, &hi);
    TlBatch b;
    tl_batch_alloc(&b, Bm, T, S, 0);
    TlInfer in;
    tl_infer_init(&in);
    double correct = 0, total = 0, per_class[VE_CLASSES][2] = {{0}};
    int fail = 0;
    for (int64_t i = lo; i < hi && !fail; i += Bm) {
        int n = (int)MIN((int64_t)Bm, hi - i);
        if (tl_data_eval_batch(&d, cx->tok, i, n, &b, err, sizeof(err)) != 0) {
            fprintf(stderr, "vlmae: ve (rank %d): %s\n", cx->d.rank, err);
            fail = 1;
            break;
        }
        tl_infer_begin(&in);
        Tensor *logits = ve_logits(&in.g, s, m, 0, b.image, b.ids, b.mask, n, T);
        for (int k = 0; k < n; k++) {
            int lab = tl_data_label(&d, b.text[k]);
            if (lab < 0 || lab >= VE_CLASSES) continue;
            const float *l = logits->data + (size_t)k * VE_CLASSES;
            int pred = 0;
            for (int c = 1; c < VE_CLASSES; c++)
                if (l[c] > l[pred]) pred = c;
            correct += pred == lab;
            total += 1;
            per_class[lab][0] += pred == lab;
            per_class[lab][1] += 1;
        }
        tl_infer_end(&in);
    }
    tl_infer_free(&in);
    tl_batch_free(&b);
    tl_data_close(&d);
    if (dist_any(&cx->d, fail)) return -1;
    correct = dist_sum(&cx->d, correct);
    total = dist_sum(&cx->d, total);
    static const char *names[VE_CLASSES] = {"acc_contradiction", "acc_neutral", "acc_entailment"};
    FtMetrics *o = &out[0];
    memset(o, 0, sizeof(*o));
    ft_metric(o, "acc", total > 0 ? 100.0 * correct / total : 0.0);
    for (int c = 0; c < VE_CLASSES; c++) {
        double a = dist_sum(&cx->d, per_class[c][0]), n = dist_sum(&cx->d, per_class[c][1]);
        ft_metric(o, names[c], n > 0 ? 100.0 * a / n : 0.0);
    }
    ft_metric(o, "n", total);
    return 1;
}

static int ve_load(FtContext *cx, Model *m, const char *ckpt, char *err, size_t errlen) {
    VeState *s = callocCheck(1, sizeof(VeState));
    s->t.cx = cx;
    ve_ensure(s, m, cx);
    if (tl_task_load(&s->t, ckpt, err, errlen) != 0) return -1;
    g_ve = s;
    return 0;
}

const Task task_ve = {
    .name = "ve",
    .help = "SNLI-VE visual entailment: MLP head on the fused [CLS], accuracy (ALBEF protocol)",
    .finetune = ve_finetune,
    .eval = ve_eval,
    .load = ve_load,
};
