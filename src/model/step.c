// step.c: the VLMAE / ALBEF / TCL pre-training step: five losses on one engine (DESIGN.md section
// 4, tests/reference/SPEC.md for the exact contract); TCL's extra terms are built by tcl.c.
#include "model/step.h"

#include <string.h>

#include "engine/common.h"
#include "model/tcl.h"

// Host lists and masks (built here, uploaded by the graph calls) and device scratch.
static void *ints(Step *s, int n) { return arena_alloc(&s->host, (size_t)n * sizeof(int32_t)); }
static float *floats(Step *s, size_t n) { return arena_alloc(&s->host, n * sizeof(float)); }
static float *dev_floats(Step *s, size_t n) { return arena_alloc(&s->arena, n * sizeof(float)); }

static void make_choices(Step *s, const Model *m, const Batch *bt, Rng *rng, const StepChoices *pre,
                         int worst_case) {
    const ModelConfig *c = &m->cfg;
    StepChoices *ch = &s->ch;
    int B = bt->B, T = bt->T, N = model_num_patches(c), K = model_num_visible(c);
    ch->B = B, ch->T = T, ch->N = N, ch->K = K;
    ch->ids_keep = ints(s, B * K);
    ch->ids_restore = ints(s, B * N);
    ch->mlm_ids = ints(s, B * T);
    ch->mlm_labels = ints(s, B * T);
    ch->neg_image = ints(s, B);
    ch->neg_text = ints(s, B);
    ch->region = floats(s, (size_t)B * N);
    if (pre) {
        if (pre->B != B || pre->T != T || pre->N != N || pre->K != K) die("preset choices do not match the batch");
        memcpy(ch->ids_keep, pre->ids_keep, (size_t)B * K * 4);
        memcpy(ch->ids_restore, pre->ids_restore, (size_t)B * N * 4);
        memcpy(ch->mlm_ids, pre->mlm_ids, (size_t)B * T * 4);
        memcpy(ch->mlm_labels, pre->mlm_labels, (size_t)B * T * 4);
        memcpy(ch->region, pre->region, (size_t)B * N * 4);
        return;  // negatives are copied after the similarities exist (pretrain_step)
    }
    choose_patch_mask(rng, B, N, K, ch->ids_keep, ch->ids_restore, ints(s, 2 * N));
    choose_mlm_mask(rng, c, bt->text_ids, B, T, ch->mlm_ids, ch->mlm_labels, worst_case);
    choose_region(bt->box, B, c->image_size / c->patch_size, c->mim_regional, ch->region);
}

// rows b*stride of x (n rows) -> (n, D): the CLS token of each sequence
static Tensor *cls_rows(Step *s, Tensor *x, int n, int stride, int D) {
    int32_t *idx = ints(s, n);
    for (int b = 0; b < n; b++) idx[b] = b * stride;
    return g_gather_rows(&s->g, x, D, idx, n);
}

// keys (B+Q, E) = [this batch's momentum features; the queue] as a constant
static Tensor *itc_keys(Step *s, const Tensor *feat_m, const float *queue, int B, int Q, int E) {
    const Ops *o = s->g.ops;
    Tensor *k = g_tensor2(&s->g, B + Q, E, 0);
    o->copy_d2d(k->data, feat_m->data, (size_t)B * E * sizeof(float));
    o->copy_d2d(k->data + (size_t)B * E, queue, (size_t)Q * E * sizeof(float));
    return k;
}

// An (R, P) host buffer as a device constant.
static Tensor *upload(Step *s, const float *host, int R, int P) { return g_const(&s->g, host, R, P); }

// The momentum (teacher) forwards need no gradient, so only their results are kept: each runs in
// a graph scope whose intermediates are released once the result is copied out (the momentum
// ViT alone would otherwise hold all of its activations to the end of the step).
static void keep(Graph *g, Tensor *out, const Tensor *result, GraphScope sc) {
    if (result->n != out->n) die("teacher result of %zu values, %zu expected", result->n, out->n);
    g->ops->copy_d2d(out->data, result->data, out->n * sizeof(float));
    g_scope_end(g, sc);
}

// soft targets: softmax of the teacher similarities (B, B+Q) at the current temperature
static float *teacher_probs(Step *s, Tensor *feat_m, Tensor *keys, Tensor *temp_const) {
    Graph *g = &s->g;
    int R = feat_m->shape[0], V = keys->shape[0];
    float *p = dev_floats(s, (size_t)R * V);
    GraphScope sc = g_scope_begin(g);
    Tensor *sim = g_div_scalar(g, g_linear(g, feat_m, keys, NULL), temp_const);
    g->ops->softmax_rows(p, sim->data, R, V);
    g_scope_end(g, sc);
    return p;
}

void pretrain_step(Step *s, Model *m, const Batch *bt, float alpha, Rng *rng,
                   const StepChoices *preset, Losses *out) {
    const ModelConfig *c = &m->cfg;
    Graph *g = &s->g;
    int B = bt->B, T = bt->T, H = bt->H, N = model_num_patches(c), K = model_num_visible(c);
    int C = c->vision_width, Ct = c->text_width, E = c->embed_dim, Q = c->queue_size;
    int P = 3 * c->patch_size * c->patch_size, vlmae = c->objective == OBJ_VLMAE, tcl = c->objective == OBJ_TCL;
    if (B != s->B || T != s->T) die("batch %dx%d does not match the planned %dx%d", B, T, s->B, s->T);
    if (H != c->image_size || bt->W != c->image_size) die("image %dx%d, model expects %d", H, bt->W, c->image_size);
    if (tcl && !bt->image2)
        die("objective tcl needs a second augmented view of every image (Batch.image2; the data loader's two_views)");

    arena_reset(&s->arena);
    arena_reset(&s->host);
    graph_clear(g);
    if (rng) rng_seed(&g->rng, rng_u64(rng));  // dropout masks of this step
    make_choices(s, m, bt, rng, preset, !s->planned);
    StepChoices *ch = &s->ch;

    float *tmask = floats(s, (size_t)B * T);  // additive key mask of the captions (host)
    for (int i = 0; i < B * T; i++) tmask[i] = bt->text_mask[i] ? 0.0f : -10000.0f;
    const float *tmask_d = upload(s, tmask, B, T)->data;
    float *host_patches = floats(s, (size_t)B * N * P);
    patchify_conv(bt->image, B, H, c->patch_size, host_patches);
    Tensor *patches = upload(s, host_patches, B * N, P);
    Tensor *patches_m = patches;  // the momentum image encoder's input: tcl gives it the second view
    if (tcl) {
        patchify_conv(bt->image2, B, H, c->patch_size, host_patches);
        patches_m = upload(s, host_patches, B * N, P);
    }
    Tensor *temp_const = g_copy(g, m->temp);  // the teacher's temperature: no gradient

    // 1-2. Encoders: online image on the visible patches, momentum image on all; text both.
    Tensor *v = vit_forward(g, m, &m->on, patches, ch->ids_keep, B, K);  // (B*(1+K), C)
    Tensor *v_hat = g_tensor2(g, B * (1 + N), C, 0);                     // (B*(1+N), C)
    GraphScope sc = g_scope_begin(g);
    keep(g, v_hat, vit_forward(g, m, &m->mo, patches_m, NULL, B, N), sc);
    Tensor *w = bert_text(g, m, &m->on, bt->text_ids, tmask_d, B, T);    // (B*T, Ct)
    Tensor *w_hat = g_tensor2(g, B * T, Ct, 0);
    sc = g_scope_begin(g);
    keep(g, w_hat, bert_text(g, m, &m->mo, bt->text_ids, tmask_d, B, T), sc);

    // 3. ITC with momentum distillation against [batch; queue].
    Tensor *v_cls = cls_rows(s, v, B, 1 + K, C);
    Tensor *img = g_l2norm(g, g_linear(g, v_cls, m->on.vision_proj.w, m->on.vision_proj.b));
    Tensor *txt = g_l2norm(g, g_linear(g, cls_rows(s, w, B, T, Ct), m->on.text_proj.w, m->on.text_proj.b));
    Tensor *vhat_cls = cls_rows(s, v_hat, B, 1 + N, C);
    Tensor *img_m = g_l2norm(g, g_linear(g, vhat_cls, m->mo.vision_proj.w, m->mo.vision_proj.b));
    Tensor *txt_m = g_l2norm(g, g_linear(g, cls_rows(s, w_hat, B, T, Ct), m->mo.text_proj.w, m->mo.text_proj.b));
    g->ops->copy_d2h(s->img_m, img_m->data, (size_t)B * E * sizeof(float));
    g->ops->copy_d2h(s->txt_m, txt_m->data, (size_t)B * E * sizeof(float));
    Tensor *keys_t = itc_keys(s, txt_m, m->dev.text_queue, B, Q, E);
    Tensor *keys_i = itc_keys(s, img_m, m->dev.image_queue, B, Q, E);
    int32_t *diag = ints(s, B);
    for (int b = 0; b < B; b++) diag[b] = b;
    Tensor *s_i2t = g_div_scalar(g, g_linear(g, img, keys_t, NULL), m->temp);  // (B, B+Q)
    Tensor *s_t2i = g_div_scalar(g, g_linear(g, txt, keys_i, NULL), m->temp);
    Tensor *l_i2t = g_xent(g, s_i2t, diag, teacher_probs(s, img_m, keys_t, temp_const), alpha);
    Tensor *l_t2i = g_xent(g, s_t2i, diag, teacher_probs(s, txt_m, keys_i, temp_const), alpha);
    TclTerms tt;  // tcl: intra-modal (i2i, t2t) and local MI terms (tcl.h)
    if (tcl) {
        TclInputs ti = {.img = img, .txt = txt, .keys_i = keys_i, .keys_t = keys_t, .v_hat = v_hat,
                        .w_hat = w_hat, .text_mask = bt->text_mask, .B = B, .T = T};
        tcl_terms(g, m, &ti, &tt);
    }

    // 4. ITM: B positives + 2B hard negatives drawn from the in-batch similarities.
    if (preset) {
        memcpy(ch->neg_image, preset->neg_image, (size_t)B * 4);
        memcpy(ch->neg_text, preset->neg_text, (size_t)B * 4);
    } else {
        // Only the in-batch (B, B) block of the similarities is sampled from: copy it to the host.
        double *scratch = arena_alloc(&s->host, (size_t)B * sizeof(double));
        float *block = floats(s, (size_t)B * B);
        size_t row = (size_t)B * sizeof(float), ld = (size_t)(B + Q) * sizeof(float);
        g->ops->copy_d2h_2d(block, row, s_t2i->data, ld, row, (size_t)B);
        choose_hard_negatives(rng, block, B, B, ch->neg_image, scratch);
        g->ops->copy_d2h_2d(block, row, s_i2t->data, ld, row, (size_t)B);
        choose_hard_negatives(rng, block, B, B, ch->neg_text, scratch);
    }
    int32_t *pick_img = ints(s, 3 * B), *pick_txt = ints(s, 3 * B), *itm_labels = ints(s, 3 * B);
    float *mask_all = floats(s, (size_t)3 * B * T);
    for (int b = 0; b < B; b++) {
        pick_img[b] = b, pick_txt[b] = b;                             // positives
        pick_img[B + b] = ch->neg_image[b], pick_txt[B + b] = b;      // text b, negative image
        pick_img[2 * B + b] = b, pick_txt[2 * B + b] = ch->neg_text[b];  // image b, negative text
        itm_labels[b] = 1, itm_labels[B + b] = 0, itm_labels[2 * B + b] = 0;
    }
    for (int r = 0; r < 3 * B; r++) memcpy(mask_all + (size_t)r * T, tmask + (size_t)pick_txt[r] * T, (size_t)T * 4);
    Tensor *img_all = g_gather_rows(g, v, (1 + K) * C, pick_img, 3 * B);
    Tensor *txt_all = g_gather_rows(g, w, T * Ct, pick_txt, 3 * B);
    Tensor *fused = bert_fusion(g, m, &m->on, txt_all, upload(s, mask_all, 3 * B, T)->data, img_all,
                                3 * B, T, 1 + K);
    Tensor *itm_logits = g_linear(g, cls_rows(s, fused, 3 * B, T, Ct), m->itm_head.w, m->itm_head.b);
    Tensor *l_itm = g_xent(g, itm_logits, itm_labels, NULL, 0.0f);

    // 5. MLM: student with the masked image tokens, teacher with the momentum ones.
    int32_t *mpos = ints(s, B * T), *mlab = ints(s, B * T);
    int Mm = 0;
    for (int i = 0; i < B * T; i++)
        if (ch->mlm_labels[i] != -100) mpos[Mm] = i, mlab[Mm++] = ch->mlm_labels[i];
    Tensor *l_mlm = NULL;
    if (Mm > 0) {
        Tensor *xs = bert_text(g, m, &m->on, ch->mlm_ids, tmask_d, B, T);
        xs = bert_fusion(g, m, &m->on, xs, tmask_d, v, B, T, 1 + K);
        Tensor *logits = mlm_head(g, m, &m->on, g_gather_rows(g, xs, Ct, mpos, Mm));
        float *soft = dev_floats(s, (size_t)Mm * c->vocab_size);  // the teacher's (Mm, V)
        sc = g_scope_begin(g);
        Tensor *xt = bert_text(g, m, &m->mo, ch->mlm_ids, tmask_d, B, T);
        xt = bert_fusion(g, m, &m->mo, xt, tmask_d, v_hat, B, T, 1 + N);
        Tensor *tl = mlm_head(g, m, &m->mo, g_gather_rows(g, xt, Ct, mpos, Mm));
        g->ops->softmax_rows(soft, tl->data, Mm, c->vocab_size);
        g_scope_end(g, sc);
        l_mlm = g_xent(g, logits, mlab, soft, alpha);
    }

    // 6-7. RMIM over hidden patches in the text-relevant region; IFR on the CLS features.
    Tensor *l_rmim = NULL, *l_ifr = NULL;
    if (vlmae) {
        Tensor *pred = decoder_forward(g, m, v, w, ch->ids_restore, tmask, B, K, T);  // (B*N, P)
        float *target = floats(s, (size_t)B * N * P), *weight = floats(s, (size_t)B * N);
        patchify_mae(bt->image, B, H, c->patch_size, target);
        if (c->norm_pix_loss) normalize_patches(target, B * N, P);
        for (int i = 0; i < B * N; i++) weight[i] = ch->region[i];
        for (int b = 0; b < B; b++)
            for (int k = 0; k < K; k++) weight[b * N + ch->ids_keep[b * K + k]] = 0.0f;  // visible
        l_rmim = g_mse_rows(g, pred, upload(s, target, B * N, P)->data, upload(s, weight, B * N, 1)->data);
        l_ifr = g_l1(g, v_cls, vhat_cls->data);
    }

    // 8. Weighted sum: seed each loss's gradient with its weight, then backpropagate. The
    // contrastive part is the mean of i2t and t2i, for tcl the mean of six terms.
    out->itc = 0.5f * (l_i2t->data[0] + l_t2i->data[0]);
    out->imc = out->lmi = 0.0f;
    if (tcl) {
        out->imc = 0.5f * (tt.i2i->data[0] + tt.t2t->data[0]);
        out->lmi = 0.5f * (tt.lmi_img + tt.lmi_txt);
        out->itc = (out->itc + out->imc + out->lmi) / 3.0f;
    }
    float w_term = tcl ? c->w_itc / 6.0f : 0.5f * c->w_itc;  // each contrastive term's weight
    out->itm = l_itm->data[0];
    out->mlm = l_mlm ? l_mlm->data[0] : 0.0f;
    out->rmim = l_rmim ? l_rmim->data[0] : 0.0f;
    out->ifr = l_ifr ? l_ifr->data[0] : 0.0f;
    out->total = c->w_itc * out->itc + c->w_itm * out->itm + c->w_mlm * out->mlm +
                 c->w_rmim * out->rmim + c->w_ifr * out->ifr;
    if (g->grad_enabled) {
        l_i2t->grad[0] = w_term;
        l_t2i->grad[0] = w_term;
        if (tcl) tcl_seed(&tt, w_term);
        l_itm->grad[0] = c->w_itm;
        if (l_mlm && l_mlm->grad) l_mlm->grad[0] = c->w_mlm;
        if (l_rmim) l_rmim->grad[0] = c->w_rmim;
        if (l_ifr) l_ifr->grad[0] = c->w_ifr;
        graph_backward(g);
    }
}

void step_create(Step *s, Model *m, const Batch *bt) {
    memset(s, 0, sizeof(*s));
    const Ops *o = m->dev.ops;
    s->B = bt->B, s->T = bt->T;
    s->img_m = mallocCheck((size_t)bt->B * m->cfg.embed_dim * sizeof(float));
    s->txt_m = mallocCheck((size_t)bt->B * m->cfg.embed_dim * sizeof(float));
    arena_plan_begin(&s->arena, o);
    arena_plan_begin(&s->host, NULL);
    graph_init(&s->g, o, &s->arena, &s->host, 1 << 16);
    s->g.release_grads = 1;  // only parameter and loss gradients are read after backward
    Rng r;
    rng_seed(&r, 0x91a7);
    Losses l;
    pretrain_step(s, m, bt, 0.0f, &r, NULL, &l);  // worst-case shapes (planned == 0)
    arena_plan_end(&s->arena);
    arena_plan_end(&s->host);
    o->mem_zero(m->dev.grad, m->params.total * sizeof(float));
    s->planned = 1;
}

void step_free(Step *s) {
    graph_free(&s->g);
    arena_free(&s->arena);
    arena_free(&s->host);
    free(s->img_m);
    free(s->txt_m);
    memset(s, 0, sizeof(*s));
}
