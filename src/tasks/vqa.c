// vqa.c: VQA as ALBEF does it (model_vqa.py, VQA.py, vqa_dataset.py): answers are generated, not
// classified.
//
// Model. The question is encoded with the image like any fused text (text encoder + fusion
// layers with cross-attention to the image tokens) -> question states (B, T, 768). An answer
// decoder of fusion_layers (6) BERT layers -- causal self-attention over the answer so far,
// cross-attention to the question states (question padding masked), FFN, all post-LN -- with its
// own embeddings and an LM head (dense, GELU, LayerNorm, decoder tied to its word embeddings,
// bias). It starts as a copy of the pre-trained model: embeddings from the text embeddings, layer
// l from fusion layer l (self-attention, cross-attention, FFN), the LM head from the MLM head
// (VQA.py's checkpoint mapping). The decoder's cross-attention reads text states, so its key/value
// projections (pre-trained on image tokens of width vision_width) need vision_width == text_width,
// as in the base model (otherwise they start fresh, said at start-up).
//
// Answers are "[CLS] answer [SEP]" (the tokenizer of `answer + "[SEP]"`, ALBEF's eos). Training:
// every distinct answer of a question is a target sequence; loss = sum over answers of weight x
// (summed token cross-entropy of the answer, [SEP] included, shifted as an LM) / #questions,
// weight = the answer's share of the annotators (vqa) or 0.5 (vg), as ALBEF.
//
// Evaluation (rank_answer): the decoder's first step ([CLS] only) gives each candidate of
// task.answer_list the probability of its first token; the k = task.k_test best are scored
// again by the whole sequence: log p(first token) - (summed cross-entropy of the answer, which
// counts the first token once more: ALBEF's formula, kept); the best is the prediction. Results
// go to RUN_DIR/vqa_result_SPLIT.json as [{"question_id": id, "answer": "..."}] (ALBEF's and the
// evaluation server's format; the id is a JSON number when it is an integer). Questions with
// ground truth (val, or a test split with answers) are scored with vqa_accuracy (vqa.h; it and
// the ranking's pure pieces are vqa_answers.c).
//
// Momentum distillation (ALBEF's models/model_vqa.py, configs/VQA.yaml: distill True, alpha 0.4,
// warm_up True; task.distill, train.alpha, train.alpha_ramp here): the image encoder, the text
// encoder + fusion layers and the answer decoder have momentum copies (visual_encoder_m,
// text_encoder_m, text_decoder_m). The encoders' copies are the Model's momentum tower as loaded
// from the checkpoint; the decoder's copy starts from that tower as the decoder starts from the
// online one (VQA.py maps text_encoder_m.* onto text_decoder_m.* like text_encoder.* onto
// text_decoder.*). Before each step every copy moves by EMA (model.momentum, 0.995); the momentum
// model then decodes the same answers from its own question states, and each answer token's loss
// becomes (1 - alpha) CE(token) + alpha x cross-entropy against the softmax of the momentum
// decoder's logits at that position (xbert's BertLMHeadModel with soft_labels), summed and
// weighted as above; alpha ramps up from 0 over the first epoch. The logged "answer" is that
// mixed loss. task.distill: false trains the plain weighted answer loss.
#include "tasks/vqa.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/json.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "engine/common.h"
#include "tasks/task.h"
#include "tasks/tasklib.h"

// =============================================================================================
// The model

// The answer decoder (its online parameters, or views of their momentum copies).
typedef struct {
    Tensor *word, *position, *type;
    Norm emb_ln;
    BertLayer *layers;
    int n_layers;
    Linear lm_dense;
    Norm lm_ln;
    Tensor *lm_bias;
} VqaDecoder;

typedef struct {
    TlTask t;                 // context, the decoder's parameters, distill (task.distill), data, graph
    VqaDecoder dec;
    VqaDecoder dec_m;         // momentum copy (distill)
    int cross_fresh;          // vision_width != text_width: cross k/v started fresh
    int TA;                   // answer length in tokens ([CLS] answer [SEP], padded)
    int kmax;                 // most answers of one training question
} VqaState;

static VqaState *g_vqa;

// The decoder's values from a tower of the pre-trained model (VQA.py's mapping): text
// embeddings, fusion layers (cross-attention keys/values unless they start fresh), MLM head.
static void vqa_decoder_from(VqaDecoder *d, const Tower *t, const ModelConfig *c, int cross_fresh) {
    tl_copy(d->word, t->word), tl_copy(d->position, t->position), tl_copy(d->type, t->token_type);
    tl_copy(d->emb_ln.w, t->emb_ln.w), tl_copy(d->emb_ln.b, t->emb_ln.b);
    for (int l = 0; l < d->n_layers; l++) {
        const BertLayer *src = &t->bert[c->text_layers + l];
        tl_copy_attn(&d->layers[l].attn, &src->attn, 1);
        tl_copy_attn(&d->layers[l].cross, &src->cross, !cross_fresh);
        tl_copy_ffn(&d->layers[l], src);
    }
    tl_copy(d->lm_dense.w, t->mlm_dense.w), tl_copy(d->lm_dense.b, t->mlm_dense.b);
    tl_copy(d->lm_ln.w, t->mlm_ln.w), tl_copy(d->lm_ln.b, t->mlm_ln.b);
    tl_copy(d->lm_bias, t->mlm_bias);
}

static void vqa_register(VqaState *s, const Model *m, uint64_t seed) {
    const ModelConfig *c = &m->cfg;
    int Ct = c->text_width, V = c->vocab_size, L = c->fusion_layers;
    VqaDecoder *d = &s->dec;
    tl_extra_init(&s->t.x);
    d->word = params_add2(&s->t.x.ps, "vqa.dec.embeddings.word", V, Ct, 1);
    d->position = params_add2(&s->t.x.ps, "vqa.dec.embeddings.position", c->max_text_len, Ct, 1);
    d->type = params_add2(&s->t.x.ps, "vqa.dec.embeddings.token_type", 2, Ct, 1);
    d->emb_ln = tl_reg_norm(&s->t.x, "vqa.dec.embeddings.", "ln", Ct);
    d->n_layers = L;
    d->layers = callocCheck((size_t)L, sizeof(BertLayer));
    char p[128];
    for (int l = 0; l < L; l++) {
        BertLayer *bl = &d->layers[l];
        snprintf(p, sizeof(p), "vqa.dec.layers.%d.attn.", l);
        bl->attn = tl_reg_attn(&s->t.x, p, Ct, Ct, NULL);
        snprintf(p, sizeof(p), "vqa.dec.layers.%d.cross.", l);
        bl->cross = tl_reg_attn(&s->t.x, p, Ct, Ct, NULL);  // keys: question states (text width)
        bl->has_cross = 1;
        snprintf(p, sizeof(p), "vqa.dec.layers.%d.ffn.", l);
        tl_reg_ffn(&s->t.x, bl, p, Ct, c->text_mlp);
    }
    d->lm_dense = tl_reg_linear(&s->t.x, "vqa.dec.lm.", "dense", Ct, Ct);
    d->lm_ln = tl_reg_norm(&s->t.x, "vqa.dec.lm.", "ln", Ct);
    d->lm_bias = params_add1(&s->t.x.ps, "vqa.dec.lm.bias", V, 0);
    tl_extra_alloc(&s->t.x, seed);
    s->cross_fresh = c->vision_width != c->text_width;
    vqa_decoder_from(d, &m->on, c, s->cross_fresh);
    s->t.registered = 1;
}

// The momentum decoder (distill): views of the momentum copies, started as a copy of the online
// decoder (so fresh cross-attention keys/values match) and then from the momentum tower.
static void vqa_register_momentum(VqaState *s, const Model *m) {
    const VqaDecoder *d = &s->dec;
    VqaDecoder *e = &s->dec_m;
    tl_extra_momentum(&s->t.x);
    e->word = tl_mo(&s->t.x, d->word), e->position = tl_mo(&s->t.x, d->position), e->type = tl_mo(&s->t.x, d->type);
    e->emb_ln = tl_mo_norm(&s->t.x, d->emb_ln);
    e->n_layers = d->n_layers;
    e->layers = callocCheck((size_t)d->n_layers, sizeof(BertLayer));
    for (int l = 0; l < d->n_layers; l++) e->layers[l] = tl_mo_layer(&s->t.x, &d->layers[l]);
    e->lm_dense = tl_mo_linear(&s->t.x, d->lm_dense), e->lm_ln = tl_mo_norm(&s->t.x, d->lm_ln);
    e->lm_bias = tl_mo(&s->t.x, d->lm_bias);
    vqa_decoder_from(e, &m->mo, &m->cfg, s->cross_fresh);
}

// Question states (B*T, Ct) by tower tw: text encoder + fusion with the image.
static Tensor *vqa_question(Graph *g, const Model *m, const Tower *tw, const float *images, const int32_t *ids,
                            const float *tmask, int B, int T) {
    int N = model_num_patches(&m->cfg);
    Tensor *v = tl_encode_images(g, m, tw, images, B);
    Tensor *w = bert_text(g, m, tw, ids, tmask, B, T);
    return bert_fusion(g, m, tw, w, tmask, v, B, T, 1 + N);
}

// Decoder d over answers ids (R, TA) with key mask amask (R, TA) (additive), cross-attending to
// question states qs (R*T, Ct) with mask qmask (R, T). -> (R*TA, Ct)
static Tensor *vqa_decode(Graph *g, const VqaDecoder *d, const ModelConfig *c, const int32_t *ids, const float *amask,
                          Tensor *qs, const float *qmask, int R, int TA, int T) {
    Tensor *x = tl_embed(g, c, d->word, d->position, d->type, &d->emb_ln, ids, R, TA);
    for (int l = 0; l < d->n_layers; l++) {
        const BertLayer *bl = &d->layers[l];
        x = tl_attn(g, c, &bl->attn, x, x, amask, R, TA, TA, 1);
        x = tl_attn(g, c, &bl->cross, x, qs, qmask, R, TA, T, 0);
        x = tl_ffn(g, c, bl, x);
    }
    return x;
}

static Tensor *vqa_lm(Graph *g, const VqaDecoder *d, const ModelConfig *c, Tensor *h) {
    h = g_gelu(g, g_linear(g, h, d->lm_dense.w, d->lm_dense.b));
    h = g_layernorm(g, h, d->lm_ln.w, d->lm_ln.b, c->text_ln_eps);
    return g_linear(g, h, d->word, d->lm_bias);  // tied to the decoder's word embeddings
}

// "[CLS] answer [SEP]" padded to TA (ALBEF: tokenizer(answer + '[SEP]')).
static void vqa_tokenize_answer(const Tokenizer *tok, const char *answer, int32_t *ids, int32_t *mask, int TA) {
    char buf[VQA_ANSWER_MAX + 8];
    snprintf(buf, sizeof(buf), "%s[SEP]", answer);
    tokenizer_encode_padded(tok, buf, ids, mask, TA);
}

static int vqa_answer_len(const Tokenizer *tok, const char *answer) {
    char buf[VQA_ANSWER_MAX + 8];
    int32_t ids[256];
    snprintf(buf, sizeof(buf), "%s[SEP]", answer);
    return tokenizer_encode(tok, buf, ids, 256);
}

// One training pass on B questions; answers of question b are ans[b]. plan: every answer of
// length TA with its own weight (the arena's worst case). alpha: the distillation weight.
static float vqa_train_pass(VqaState *s, Model *m, const Batch *b, const VqaAnswers *ans, float alpha, Rng *rng) {
    const ModelConfig *c = &m->cfg;
    int B = b->B, T = b->T, TA = s->TA, Ct = c->text_width, V = c->vocab_size;
    tl_train_begin(&s->t.tr, rng);
    Graph *g = &s->t.tr.g;
    Arena *A = &s->t.tr.arena;
    int R = 0;
    for (int q = 0; q < B; q++) R += ans[q].n;
    int32_t *aids = arena_alloc(A, (size_t)R * TA * sizeof(int32_t)), *amk = arena_alloc(A, (size_t)R * TA * sizeof(int32_t));
    int32_t *qidx = arena_alloc(A, (size_t)R * sizeof(int32_t));
    float *w = arena_alloc(A, (size_t)R * sizeof(float));
    const FtContext *cx = s->t.cx;
    int r = 0;
    for (int q = 0; q < B; q++)
        for (int k = 0; k < ans[q].n; k++, r++) {
            vqa_tokenize_answer(cx->tok, ans[q].text[k], aids + (size_t)r * TA, amk + (size_t)r * TA, TA);
            qidx[r] = q;
            w[r] = ans[q].weight[k];
        }
    float *tmask = arena_alloc(A, (size_t)B * T * sizeof(float));
    tl_additive_mask(b->text_mask, (size_t)B * T, tmask);
    float *amask = arena_alloc(A, (size_t)R * TA * sizeof(float));
    tl_additive_mask(amk, (size_t)R * TA, amask);
    float *qmask = arena_alloc(A, (size_t)R * T * sizeof(float));
    for (int i = 0; i < R; i++) memcpy(qmask + (size_t)i * T, tmask + (size_t)qidx[i] * T, (size_t)T * sizeof(float));

    Tensor *qs = vqa_question(g, m, &m->on, b->image, b->text_ids, tmask, B, T);
    Tensor *qrep = g_gather_rows(g, qs, T * Ct, qidx, R);
    Tensor *x = vqa_decode(g, &s->dec, c, aids, amask, qrep, qmask, R, TA, T);  // (R*TA, Ct)

    // The momentum model's decoder states of the same answers, from its own question states (no
    // gradient; after the student's forward, so its dropout masks do not depend on distill).
    Tensor *x_m = NULL;
    if (s->t.distill) {
        x_m = g_tensor2(g, R * TA, Ct, 0);
        GraphScope sc = g_scope_begin(g);
        Tensor *qs_m = vqa_question(g, m, &m->mo, b->image, b->text_ids, tmask, B, T);
        Tensor *y = vqa_decode(g, &s->dec_m, c, aids, amask, g_gather_rows(g, qs_m, T * Ct, qidx, R), qmask, R, TA, T);
        memcpy(x_m->data, y->data, x_m->n * sizeof(float));
        g_scope_end(g, sc);
    }

    // Targets: position i predicts token i+1 (not padding). Rows grouped by their answer's
    // weight: one cross-entropy per group, its gradient seeded with weight x rows / B, so the
    // total is sum_rows weight x CE / B (ALBEF's weights * answer_loss summed, / batch).
    int32_t *pos = arena_alloc(A, (size_t)R * TA * sizeof(int32_t)), *lab = arena_alloc(A, (size_t)R * TA * sizeof(int32_t));
    unsigned char *done = arena_calloc(A, (size_t)R);
    double total = 0.0;
    for (int r0 = 0; r0 < R; r0++) {
        if (done[r0]) continue;
        int n = 0;
        for (int r1 = r0; r1 < R; r1++) {
            if (done[r1] || w[r1] != w[r0]) continue;
            done[r1] = 1;
            for (int i = 0; i + 1 < TA; i++)
                if (amk[(size_t)r1 * TA + i + 1]) pos[n] = r1 * TA + i, lab[n++] = aids[(size_t)r1 * TA + i + 1];
        }
        if (n == 0) continue;
        Tensor *logits = vqa_lm(g, &s->dec, c, g_gather_rows(g, x, Ct, pos, n));  // (n, V)
        float *soft = NULL;  // distill: softmax of the momentum decoder's logits, kept until backward
        if (x_m) {
            soft = arena_alloc(A, (size_t)n * V * sizeof(float));
            GraphScope sc = g_scope_begin(g);
            Tensor *lm = vqa_lm(g, &s->dec_m, c, g_gather_rows(g, x_m, Ct, pos, n));
            g->ops->softmax_rows(soft, lm->data, n, V);
            g_scope_end(g, sc);
        }
        Tensor *l = g_xent(g, logits, lab, soft, alpha);  // per token (1-alpha) CE + alpha soft CE
        float seed = w[r0] * (float)n / (float)B;
        if (l->grad) l->grad[0] = seed;
        total += (double)seed * l->data[0];
    }
    graph_backward(g);
    return (float)total;
}

// ---- ft_train hooks

static void vqa_ensure(VqaState *s, const Model *m, FtContext *cx) {
    if (s->t.registered) return;
    vqa_register(s, m, cx->seed);
    if (s->cross_fresh && cx->R0)
        printf("vqa: vision_width %d != text_width %d: the decoder's cross-attention keys/values start fresh\n",
               m->cfg.vision_width, m->cfg.text_width);
}

// Answers of every training question: the longest (in tokens) and the most per question.
static void vqa_scan_train(VqaState *s, const FtContext *cx) {
    int maxlen = 3, kmax = 1;
    VqaAnswers *a = mallocCheck(sizeof(VqaAnswers));
    for (int64_t t = 0; t < s->t.train.n_texts; t++) {
        vqa_parse_answers(tl_data_answers(&s->t.train, t), a);
        if (a->n > kmax) kmax = a->n;
        for (int k = 0; k < a->n; k++) {
            int n = vqa_answer_len(cx->tok, a->text[k]);
            if (n > maxlen) maxlen = n;
        }
    }
    free(a);
    s->kmax = kmax;
    s->TA = MIN(maxlen, cx->rc.task.text_max_len);
}

static void vqa_init(void *state, Model *m, const Batch *shape, FtContext *cx) {
    VqaState *s = state;
    vqa_ensure(s, m, cx);
    if (s->t.distill) vqa_register_momentum(s, m);
    tl_extra_optim(&s->t.x, cx, s->t.train.n_texts);
    if (tl_extra_from_init(&s->t.x, cx, "vqa") < 0) dist_abort(&cx->d, 2);
    vqa_scan_train(s, cx);
    if (cx->R0)
        printf("vqa: answers of up to %d tokens ([CLS] answer [SEP]), up to %d answers per question\n", s->TA, s->kmax);
    // planning: kmax answers per question, each full length ("x" repeated) and its own weight
    int B = shape->B;
    VqaAnswers *ans = callocCheck((size_t)B, sizeof(VqaAnswers));
    char longest[VQA_ANSWER_MAX];
    int nw = MAX(1, s->TA - 2);
    for (int i = 0; i < nw && 2 * i + 1 < VQA_ANSWER_MAX; i++) longest[2 * i] = 'x', longest[2 * i + 1] = ' ';
    longest[MIN(2 * nw - 1, VQA_ANSWER_MAX - 1)] = 0;
    for (int q = 0; q < B; q++) {
        ans[q].n = s->kmax;
        for (int k = 0; k < s->kmax; k++) {
            snprintf(ans[q].text[k], VQA_ANSWER_MAX, "%s", longest);
            ans[q].weight[k] = 1.0f + (float)(q * s->kmax + k);
            ans[q].count[k] = 1;
        }
    }
    Rng r;
    tl_task_plan_begin(&s->t, &r);
    vqa_train_pass(s, m, shape, ans, 0.0f, &r);  // (the teacher too)
    tl_task_plan_end(&s->t);
    free(ans);
}

static void vqa_step(void *state, Model *m, const Batch *b, float alpha, Rng *rng, float *losses) {
    VqaState *s = state;
    tl_task_begin_step(&s->t, m);  // EMA of the decoder's copy; ft_train moved the tower's (h.momentum)
    const int64_t *texts = loader_batch_texts(b);
    VqaAnswers *ans = mallocCheck((size_t)b->B * sizeof(VqaAnswers));
    for (int q = 0; q < b->B; q++) {
        if (vqa_parse_answers(tl_data_answers(&s->t.train, texts[q]), &ans[q]) == 0)
            die("task.train question %lld has no answers (pack the data with `vlmae pack vqa`; test splits have none)",
                (long long)texts[q]);
        if (ans[q].n > s->kmax) ans[q].n = s->kmax;
    }
    losses[0] = vqa_train_pass(s, m, b, ans, alpha, rng);
    free(ans);
    if (!tl_extra_grads_finite(&s->t.x)) losses[0] = NAN;
}

static void vqa_free(void *state) {
    VqaState *s = state;
    tl_task_free(&s->t);
    free(s->dec_m.layers);  // views into the task parameters, which stay for the evaluation
    s->dec_m.layers = NULL;
}

static int vqa_finetune(FtContext *cx) {
    VqaState *s = callocCheck(1, sizeof(VqaState));
    if (tl_task_open_train(&s->t, cx) != 0) return 2;
    s->t.distill = cx->rc.task.distill;
    g_vqa = s;
    FtHooks h = tl_task_hooks(&s->t, "answer");
    h.init = vqa_init;
    h.step = vqa_step;
    h.free = vqa_free;
    return ft_train(cx, &h);
}

// =============================================================================================
// Evaluation

typedef struct {
    int n, TA;
    char **text;
    int32_t *ids, *mask;   // (n, TA)
} AnswerList;

static void answer_list_free(AnswerList *al) {
    for (int i = 0; i < al->n; i++) free(al->text[i]);
    free(al->text), free(al->ids), free(al->mask);
    memset(al, 0, sizeof(*al));
}

static int answer_list_load(const FtContext *cx, AnswerList *al, char *err, size_t errlen) {
    memset(al, 0, sizeof(*al));
    const char *path = cx->rc.task.answer_list;
    if (!path[0]) {
        snprintf(err, errlen, "task.answer_list is not set (the candidate answers, a JSON list of strings)");
        return -1;
    }
    JsonDoc *d = json_parse_file(path, 0, err, errlen);
    if (!d) return -1;
    const JsonValue *r = json_root(d);
    if (r->type != JSON_ARRAY || r->n == 0) {
        snprintf(err, errlen, "%s: expected a non-empty JSON list of answer strings", path);
        json_free(d);
        return -1;
    }
    al->text = callocCheck(r->n, sizeof(char *));
    int maxlen = 3;  // [CLS] answer [SEP] at least
    for (size_t i = 0; i < r->n; i++) {
        const char *a = json_string(json_at(r, i));
        if (!a) {
            snprintf(err, errlen, "%s: entry %zu is not a string", path, i);
            json_free(d);
            answer_list_free(al);
            return -1;
        }
        al->text[al->n++] = strdup(a);
        int n = vqa_answer_len(cx->tok, a);
        if (n > maxlen) maxlen = n;
    }
    json_free(d);
    al->TA = MIN(maxlen, cx->rc.task.text_max_len);
    al->ids = mallocCheck((size_t)al->n * al->TA * sizeof(int32_t));
    al->mask = mallocCheck((size_t)al->n * al->TA * sizeof(int32_t));
    for (int i = 0; i < al->n; i++)
        vqa_tokenize_answer(cx->tok, al->text[i], al->ids + (size_t)i * al->TA, al->mask + (size_t)i * al->TA, al->TA);
    return 0;
}

static void json_string_out(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static int is_integer(const char *s) {
    if (*s == '-') s++;
    if (!*s || strlen(s) > 18) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

static int vqa_eval(FtContext *cx, Model *m, const char *split, int64_t step, FtMetrics *out, int max_out) {
    (void)step;
    if (max_out < 1) return 0;
    VqaState *s = g_vqa;
    if (!s || !s->t.registered) {
        if (cx->R0) fprintf(stderr, "vlmae: vqa: no answer decoder loaded\n");
        return -1;
    }
    const ModelConfig *c = &m->cfg;
    const PathList *pl = !strcmp(split, "val") ? &cx->rc.task.val : &cx->rc.task.test;
    char err[2048];
    AnswerList al;
    if (answer_list_load(cx, &al, err, sizeof(err)) != 0) {
        if (cx->R0) fprintf(stderr, "vlmae: vqa: %s\n", err);
        return -1;
    }
    TlData d;
    if (tl_data_open(&d, pl, err, sizeof(err)) != 0) {
        if (cx->R0) fprintf(stderr, "vlmae: vqa: task.%s: %s\n", split, err);
        answer_list_free(&al);
        return -1;
    }
    int T = cx->rc.task.text_max_len, S = c->image_size, Ct = c->text_width, V = c->vocab_size;
    int Bm = MAX(1, cx->rc.train.batch_size), TA = al.TA;
    int k = MIN(cx->rc.task.k_test > 0 ? cx->rc.task.k_test : 128, al.n);
    int64_t n_q = d.n_texts, lo, hi;
    tl_rank_slice(&cx->d, n_q, &lo, &hi);
    float *pred = callocCheck((size_t)(n_q ? n_q : 1), sizeof(float));  // answer index + 1
    TlBatch b;
    tl_batch_alloc(&b, Bm, T, S, 0);
    TlInfer iq, ia;
    tl_infer_init(&iq);
    tl_infer_init(&ia);
    int *top = mallocCheck((size_t)k * sizeof(int));
    float *pfirst = mallocCheck((size_t)al.n * sizeof(float)), *ptop = mallocCheck((size_t)k * sizeof(float));
    float *sloss = mallocCheck((size_t)k * sizeof(float));
    int32_t *cand_ids = mallocCheck((size_t)k * TA * sizeof(int32_t)), *cand_mask = mallocCheck((size_t)k * TA * sizeof(int32_t));
    float *amask = mallocCheck((size_t)k * TA * sizeof(float)), *qmask = mallocCheck((size_t)k * T * sizeof(float));
    int fail = 0;
    for (int64_t i0 = lo; i0 < hi && !fail; i0 += Bm) {
        int n = (int)MIN((int64_t)Bm, hi - i0);
        if (tl_data_eval_batch(&d, cx->tok, i0, n, &b, err, sizeof(err)) != 0) {
            fprintf(stderr, "vlmae: vqa (rank %d): %s\n", cx->d.rank, err);
            fail = 1;
            break;
        }
        // question states and the decoder's first step ([CLS] alone)
        tl_infer_begin(&iq);
        Graph *g = &iq.g;
        float *tmask = arena_alloc(&iq.arena, (size_t)n * T * sizeof(float));
        tl_additive_mask(b.mask, (size_t)n * T, tmask);
        Tensor *qs = vqa_question(g, m, &m->on, b.image, b.ids, tmask, n, T);
        int32_t *start = arena_alloc(&iq.arena, (size_t)n * sizeof(int32_t));
        for (int q = 0; q < n; q++) start[q] = al.ids[0];  // [CLS]
        Tensor *x0 = vqa_decode(g, &s->dec, c, start, NULL, qs, tmask, n, 1, T);
        Tensor *l0 = vqa_lm(g, &s->dec, c, x0);  // (n, V)
        float *prob = arena_alloc(&iq.arena, (size_t)n * V * sizeof(float));
        g->ops->softmax_rows(prob, l0->data, n, V);
        for (int q = 0; q < n; q++) {
            const float *pr = prob + (size_t)q * V;
            for (int a = 0; a < al.n; a++) pfirst[a] = pr[al.ids[(size_t)a * TA + 1]];
            vqa_topk(pfirst, al.n, k, top);
            for (int r = 0; r < k; r++) {
                ptop[r] = pfirst[top[r]];
                memcpy(cand_ids + (size_t)r * TA, al.ids + (size_t)top[r] * TA, (size_t)TA * sizeof(int32_t));
                memcpy(cand_mask + (size_t)r * TA, al.mask + (size_t)top[r] * TA, (size_t)TA * sizeof(int32_t));
                memcpy(qmask + (size_t)r * T, tmask + (size_t)q * T, (size_t)T * sizeof(float));
            }
            tl_additive_mask(cand_mask, (size_t)k * TA, amask);
            // the k candidates in full: summed cross-entropy of tokens 1.. (shifted)
            tl_infer_begin(&ia);
            Graph *ga = &ia.g;
            Tensor *qrep = g_tensor2(ga, k * T, Ct, 0);
            for (int r = 0; r < k; r++)
                memcpy(qrep->data + (size_t)r * T * Ct, qs->data + (size_t)q * T * Ct, (size_t)T * Ct * sizeof(float));
            Tensor *xa = vqa_decode(ga, &s->dec, c, cand_ids, amask, qrep, qmask, k, TA, T);
            // Position 0 ([CLS]) sees the same input as the first step: its cross-entropy is
            // -log p_first, known; the LM head runs on positions 1 .. TA-2 only.
            int W = TA - 2;
            int32_t *rows = arena_alloc(&ia.arena, (size_t)k * W * sizeof(int32_t));
            for (int r = 0; r < k; r++)
                for (int i = 0; i < W; i++) rows[r * W + i] = r * TA + 1 + i;
            Tensor *la = vqa_lm(ga, &s->dec, c, g_gather_rows(ga, xa, Ct, rows, k * W));  // (k*W, V)
#pragma omp parallel for schedule(static)
            for (int r = 0; r < k; r++) {
                double loss = -log(fmax((double)ptop[r], 1e-30));
                for (int i = 1; i + 1 < TA; i++) {
                    if (!cand_mask[(size_t)r * TA + i + 1]) continue;
                    const float *lr = la->data + ((size_t)r * W + i - 1) * V;
                    float mx = lr[0];
                    for (int v = 1; v < V; v++) mx = lr[v] > mx ? lr[v] : mx;
                    float se = 0.0f;
                    for (int v = 0; v < V; v++) se += expf(lr[v] - mx);
                    loss += (double)mx + log((double)se) - lr[cand_ids[(size_t)r * TA + i + 1]];
                }
                sloss[r] = (float)loss;
            }
            tl_infer_end(&ia);
            int best = vqa_rerank(ptop, sloss, k);
            pred[i0 + q] = (float)(top[best] + 1);
        }
        tl_infer_end(&iq);  // (the first pass sizes the arena: its buffers live until here)
    }
    free(top), free(pfirst), free(ptop), free(sloss), free(cand_ids), free(cand_mask), free(amask), free(qmask);
    tl_infer_free(&iq);
    tl_infer_free(&ia);
    tl_batch_free(&b);
    int rc = 1;
    if (dist_any(&cx->d, fail)) {
        rc = -1;
        goto out;
    }
    dist_allreduce_sum(&cx->d, pred, (size_t)n_q);
    // Accuracy where the split has ground truth (every rank: cheap), the result file on rank 0.
    double acc = 0.0, any = 0.0, n_gt = 0.0;
    VqaAnswers *gt = mallocCheck(sizeof(VqaAnswers));
    for (int64_t q = 0; q < n_q; q++) {
        int a = (int)pred[q] - 1;
        if (a < 0 || a >= al.n) continue;
        if (vqa_parse_answers(tl_data_answers(&d, q), gt) == 0) continue;
        n_gt += 1;
        double v = vqa_accuracy(al.text[a], gt);
        acc += v;
        any += v > 0.0;
    }
    free(gt);
    if (cx->R0) {
        char path[2400];
        snprintf(path, sizeof(path), "%s/vqa_result_%s.json", cx->run_dir, split);
        FILE *f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "vlmae: vqa: cannot write %s: %s\n", path, strerror(errno));
        } else {
            fprintf(f, "[");
            for (int64_t q = 0; q < n_q; q++) {
                int a = (int)pred[q] - 1;
                const char *id = tl_data_key(&d, q);
                fprintf(f, "%s\n{\"question_id\": ", q ? "," : "");
                if (id[0] && is_integer(id)) fprintf(f, "%s", id);
                else if (id[0]) json_string_out(f, id);
                else fprintf(f, "%lld", (long long)q);
                fprintf(f, ", \"answer\": ");
                json_string_out(f, a >= 0 && a < al.n ? al.text[a] : "");
                fprintf(f, "}");
            }
            fprintf(f, "\n]\n");
            fclose(f);
            printf("vqa: %lld answers of task.%s -> %s\n", (long long)n_q, split, path);
        }
    }
    memset(&out[0], 0, sizeof(out[0]));
    if (n_gt > 0) {
        ft_metric(&out[0], "vqa_acc", 100.0 * acc / n_gt);
        ft_metric(&out[0], "any_match", 100.0 * any / n_gt);
    }
    ft_metric(&out[0], "n", (double)n_q);
    ft_metric(&out[0], "n_gt", n_gt);
    ft_metric(&out[0], "k", (double)k);
out:
    free(pred);
    tl_data_close(&d);
    answer_list_free(&al);
    return rc;
}

static int vqa_load(FtContext *cx, Model *m, const char *ckpt, char *err, size_t errlen) {
    VqaState *s = callocCheck(1, sizeof(VqaState));
    s->t.cx = cx;
    vqa_ensure(s, m, cx);
    if (tl_task_load(&s->t, ckpt, err, errlen) != 0) return -1;
    g_vqa = s;
    return 0;
}

const Task task_vqa = {
    .name = "vqa",
    .help = "VQA: answer decoder from the fusion layers, k-candidate ranking, result JSON + VQA accuracy",
    .finetune = vqa_finetune,
    .eval = vqa_eval,
    .load = vqa_load,
};
