// model.c: model configuration presets, parameter registration, initialisation, the momentum
// EMA and the feature queues.
#include "model/model.h"

#include <math.h>
#include <string.h>

#include "engine/common.h"
#include "engine/rng.h"

void model_config_base(ModelConfig *c) {
    memset(c, 0, sizeof(*c));
    c->image_size = 256, c->patch_size = 16;
    c->vision_width = 768, c->vision_depth = 12, c->vision_heads = 12, c->vision_mlp = 3072;
    c->vision_ln_eps = 1e-6f;
    c->vocab_size = 30522, c->text_width = 768, c->text_heads = 12, c->text_mlp = 3072;
    c->text_layers = 6, c->fusion_layers = 6, c->max_text_len = 512;
    c->text_ln_eps = 1e-12f, c->hidden_dropout = 0.1f, c->attn_dropout = 0.1f;
    c->decoder_width = 512, c->decoder_depth = 4, c->decoder_heads = 8, c->decoder_mlp = 2048;
    c->embed_dim = 256, c->queue_size = 65536;
    c->pad_id = 0, c->cls_id = 101, c->mask_id = 103;  // bert-base-uncased
    c->mask_ratio = 0.5f, c->mlm_prob = 0.15f, c->momentum = 0.995f, c->temp_init = 0.07f;
    c->init_std = 0.02f;
    c->norm_pix_loss = 1, c->mim_regional = 1;
    c->objective = OBJ_VLMAE;
    c->w_itc = c->w_itm = c->w_mlm = c->w_rmim = c->w_ifr = 1.0f;
}

void model_config_tiny(ModelConfig *c) {
    model_config_base(c);
    c->image_size = 32, c->patch_size = 8;
    c->vision_width = 32, c->vision_depth = 2, c->vision_heads = 4, c->vision_mlp = 64;
    c->text_width = 32, c->text_heads = 4, c->text_mlp = 64;
    c->text_layers = 2, c->fusion_layers = 2, c->max_text_len = 32;
    c->decoder_width = 24, c->decoder_depth = 2, c->decoder_heads = 4, c->decoder_mlp = 48;
    c->embed_dim = 16, c->queue_size = 64;
}

int model_num_patches(const ModelConfig *c) {
    int g = c->image_size / c->patch_size;
    return g * g;
}

int model_num_visible(const ModelConfig *c) {
    int N = model_num_patches(c);
    if (c->objective != OBJ_VLMAE) return N;  // albef, tcl: no masking
    return (int)(N * (1.0 - c->mask_ratio));  // MAE: int(L * (1 - mask_ratio))
}

const char *objective_name(Objective o) { return o == OBJ_ALBEF ? "albef" : o == OBJ_TCL ? "tcl" : "vlmae"; }

// ---------------------------------------------------------------------------------------------
// Registration

static Linear reg_linear(ParamSet *ps, const char *prefix, const char *name, int out, int in) {
    char buf[128];
    Linear l;
    snprintf(buf, sizeof(buf), "%s%s.weight", prefix, name);
    l.w = params_add2(ps, buf, out, in, 1);
    snprintf(buf, sizeof(buf), "%s%s.bias", prefix, name);
    l.b = params_add1(ps, buf, out, 0);
    return l;
}

static Norm reg_norm(ParamSet *ps, const char *prefix, const char *name, int C) {
    char buf[128];
    Norm n;
    snprintf(buf, sizeof(buf), "%s%s.weight", prefix, name);
    n.w = params_add1(ps, buf, C, 0);
    snprintf(buf, sizeof(buf), "%s%s.bias", prefix, name);
    n.b = params_add1(ps, buf, C, 0);
    return n;
}

static void reg_block(ParamSet *ps, Block *b, const char *prefix, int C, int F) {
    b->norm1 = reg_norm(ps, prefix, "norm1", C);
    b->qkv = reg_linear(ps, prefix, "attn.qkv", 3 * C, C);
    b->proj = reg_linear(ps, prefix, "attn.proj", C, C);
    b->norm2 = reg_norm(ps, prefix, "norm2", C);
    b->fc1 = reg_linear(ps, prefix, "mlp.fc1", F, C);
    b->fc2 = reg_linear(ps, prefix, "mlp.fc2", C, F);
}

static void reg_attn(ParamSet *ps, BertAttn *a, const char *prefix, int C, int Ckv) {
    a->q = reg_linear(ps, prefix, "q", C, C);
    a->k = reg_linear(ps, prefix, "k", C, Ckv);
    a->v = reg_linear(ps, prefix, "v", C, Ckv);
    a->o = reg_linear(ps, prefix, "o", C, C);
    a->ln = reg_norm(ps, prefix, "ln", C);
}

static void reg_tower(ParamSet *ps, Tower *t, const ModelConfig *c, const char *pfx) {
    char p[128];
    int C = c->vision_width, Ct = c->text_width, N = model_num_patches(c);
    int pp3 = c->patch_size * c->patch_size * 3;
    snprintf(p, sizeof(p), "%svit.", pfx);
    t->patch_embed = reg_linear(ps, p, "patch_embed", C, pp3);
    snprintf(p, sizeof(p), "%svit.cls_token", pfx);
    t->cls_token = params_add1(ps, p, C, 1);  // (1,1,C) in timm: decayed like ALBEF
    snprintf(p, sizeof(p), "%svit.pos_embed", pfx);
    t->pos_embed = params_add2(ps, p, N + 1, C, 1);
    t->vit = callocCheck((size_t)c->vision_depth, sizeof(Block));
    for (int l = 0; l < c->vision_depth; l++) {
        snprintf(p, sizeof(p), "%svit.blocks.%d.", pfx, l);
        reg_block(ps, &t->vit[l], p, C, c->vision_mlp);
    }
    snprintf(p, sizeof(p), "%svit.", pfx);
    t->vit_norm = reg_norm(ps, p, "norm", C);

    snprintf(p, sizeof(p), "%sbert.embeddings.word", pfx);
    t->word = params_add2(ps, p, c->vocab_size, Ct, 1);
    snprintf(p, sizeof(p), "%sbert.embeddings.position", pfx);
    t->position = params_add2(ps, p, c->max_text_len, Ct, 1);
    snprintf(p, sizeof(p), "%sbert.embeddings.token_type", pfx);
    t->token_type = params_add2(ps, p, 2, Ct, 1);
    snprintf(p, sizeof(p), "%sbert.embeddings.", pfx);
    t->emb_ln = reg_norm(ps, p, "ln", Ct);
    int L = c->text_layers + c->fusion_layers;
    t->bert = callocCheck((size_t)L, sizeof(BertLayer));
    for (int l = 0; l < L; l++) {
        BertLayer *bl = &t->bert[l];
        snprintf(p, sizeof(p), "%sbert.layers.%d.attn.", pfx, l);
        reg_attn(ps, &bl->attn, p, Ct, Ct);
        bl->has_cross = l >= c->text_layers;
        if (bl->has_cross) {
            snprintf(p, sizeof(p), "%sbert.layers.%d.cross.", pfx, l);
            reg_attn(ps, &bl->cross, p, Ct, C);
        }
        snprintf(p, sizeof(p), "%sbert.layers.%d.ffn.", pfx, l);
        bl->fc1 = reg_linear(ps, p, "fc1", c->text_mlp, Ct);
        bl->fc2 = reg_linear(ps, p, "fc2", Ct, c->text_mlp);
        bl->ln = reg_norm(ps, p, "ln", Ct);
    }
    snprintf(p, sizeof(p), "%smlm.", pfx);
    t->mlm_dense = reg_linear(ps, p, "dense", Ct, Ct);
    t->mlm_ln = reg_norm(ps, p, "ln", Ct);
    snprintf(p, sizeof(p), "%smlm.bias", pfx);
    t->mlm_bias = params_add1(ps, p, c->vocab_size, 0);
    t->vision_proj = reg_linear(ps, pfx, "vision_proj", c->embed_dim, C);
    t->text_proj = reg_linear(ps, pfx, "text_proj", c->embed_dim, Ct);
}

// MAE's 2-D sin-cos table: half the width encodes one grid axis, half the other; for each axis,
// omega_k = 1 / 10000^(k / (D/4)), emb = [sin(pos * omega), cos(pos * omega)]. MAE builds the grid
// with meshgrid(w, h), so the first half encodes the column and the second the row.
static void sincos_2d(float *out, int D, int grid) {
    int q = D / 4;
    memset(out, 0, (size_t)D * sizeof(float));  // row 0: CLS
    for (int i = 0; i < grid; i++) {
        for (int j = 0; j < grid; j++) {
            float *row = out + (size_t)(1 + i * grid + j) * D;
            for (int k = 0; k < q; k++) {
                double omega = 1.0 / pow(10000.0, (double)k / q);
                row[k] = (float)sin(j * omega);
                row[q + k] = (float)cos(j * omega);
                row[2 * q + k] = (float)sin(i * omega);
                row[3 * q + k] = (float)cos(i * omega);
            }
        }
    }
}

static void check_config(const ModelConfig *c) {
    if (c->image_size % c->patch_size) die("image_size %d is not a multiple of patch_size %d", c->image_size, c->patch_size);
    if (c->vision_width % c->vision_heads) die("vision_width %d is not a multiple of vision_heads %d", c->vision_width, c->vision_heads);
    if (c->text_width % c->text_heads) die("text_width %d is not a multiple of text_heads %d", c->text_width, c->text_heads);
    if (c->decoder_width % c->decoder_heads) die("decoder_width %d is not a multiple of decoder_heads %d", c->decoder_width, c->decoder_heads);
    if (c->decoder_width % 4) die("decoder_width %d must be a multiple of 4 (2-D sin-cos position table)", c->decoder_width);
    if (!(c->mask_ratio >= 0.0f && c->mask_ratio < 1.0f)) die("mask_ratio %g must be in [0, 1)", c->mask_ratio);
    if (model_num_visible(c) < 1) die("mask_ratio %g leaves no visible patch", c->mask_ratio);
}

void model_create(Model *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    const ModelConfig *c = &m->cfg;
    check_config(c);
    int C = c->vision_width, Ct = c->text_width, D = c->decoder_width;
    int N = model_num_patches(c), P = c->patch_size * c->patch_size * 3;
    params_init(&m->params);
    reg_tower(&m->params, &m->on, c, "");
    m->tower_n = m->params.total;
    m->temp = params_add1(&m->params, "temp", 1, 0);
    m->itm_head = reg_linear(&m->params, "", "itm_head", 2, Ct);
    m->dec_embed = reg_linear(&m->params, "dec.", "embed", D, C);
    m->dec_text_embed = reg_linear(&m->params, "dec.", "text_embed", D, Ct);
    m->dec_mask_token = params_add1(&m->params, "dec.mask_token", D, 1);  // (1,1,D) in MAE
    m->dec = callocCheck((size_t)c->decoder_depth, sizeof(Block));
    for (int l = 0; l < c->decoder_depth; l++) {
        char p[64];
        snprintf(p, sizeof(p), "dec.blocks.%d.", l);
        reg_block(&m->params, &m->dec[l], p, D, c->decoder_mlp);
    }
    m->dec_norm = reg_norm(&m->params, "dec.", "norm", D);
    m->dec_pred = reg_linear(&m->params, "dec.", "pred", P, D);
    params_alloc(&m->params, 1);

    params_init(&m->momentum);
    reg_tower(&m->momentum, &m->mo, c, "m.");
    if (m->momentum.total != m->tower_n) die("momentum tower has %zu values, online %zu", m->momentum.total, m->tower_n);
    params_alloc(&m->momentum, 0);

    m->dec_pos = mallocCheck((size_t)(N + 1) * D * sizeof(float));
    sincos_2d(m->dec_pos, D, c->image_size / c->patch_size);
    m->image_queue = mallocCheck((size_t)c->queue_size * c->embed_dim * sizeof(float));
    m->text_queue = mallocCheck((size_t)c->queue_size * c->embed_dim * sizeof(float));
    m->dev = (ModelDevice){.ops = &ops_cpu, .params = m->params.data, .grad = m->params.grad,
                           .momentum = m->momentum.data, .image_queue = m->image_queue,
                           .text_queue = m->text_queue};
}

static void fill_normal(Rng *r, Tensor *t, float std) {
    for (size_t i = 0; i < t->n; i++) t->data[i] = std * (float)rng_normal(r);
}

static void fill_const(Tensor *t, float v) {
    for (size_t i = 0; i < t->n; i++) t->data[i] = v;
}

static void random_unit_rows(Rng *r, float *q, int rows, int E) {
    for (int i = 0; i < rows; i++) {
        double ss = 0;
        for (int k = 0; k < E; k++) {
            q[(size_t)i * E + k] = (float)rng_normal(r);
            ss += (double)q[(size_t)i * E + k] * q[(size_t)i * E + k];
        }
        float inv = (float)(1.0 / sqrt(ss > 1e-24 ? ss : 1e-24));
        for (int k = 0; k < E; k++) q[(size_t)i * E + k] *= inv;
    }
}

void model_init_weights(Model *m, uint64_t seed) {
    Rng r;
    rng_seed_stream(&r, seed, 0x1417, 0);
    // Every matrix N(0, init_std), by default 0.02 (BERT/ALBEF and timm's trunc_normal(.02)
    // alike; the truncation at 2 std is immaterial at this std), biases 0, LayerNorm weight 1
    // bias 0. In practice the image and text towers are initialised from DeiT / BERT checkpoints
    // (train issue); a tiny model trained from scratch needs a larger init_std (README).
    for (int i = 0; i < m->params.count; i++) {
        ParamInfo *pi = &m->params.p[i];
        const char *n = pi->name;
        size_t len = strlen(n);
        int is_bias = len > 5 && strcmp(n + len - 5, ".bias") == 0;
        int is_norm = strstr(n, "norm") || strstr(n, ".ln.");
        if (is_norm && !is_bias) fill_const(pi->t, 1.0f);
        else if (is_bias) fill_const(pi->t, 0.0f);
        else fill_normal(&r, pi->t, m->cfg.init_std);
    }
    m->temp->data[0] = m->cfg.temp_init;
    memcpy(m->momentum.data, m->params.data, m->tower_n * sizeof(float));
    random_unit_rows(&r, m->image_queue, m->cfg.queue_size, m->cfg.embed_dim);
    random_unit_rows(&r, m->text_queue, m->cfg.queue_size, m->cfg.embed_dim);
    m->queue_ptr = 0;
}

void model_free(Model *m) {
    model_release_device(m);
    free(m->on.vit), free(m->on.bert), free(m->mo.vit), free(m->mo.bert), free(m->dec);
    params_free(&m->params);
    params_free(&m->momentum);
    free(m->dec_pos), free(m->image_queue), free(m->text_queue);
    memset(m, 0, sizeof(*m));
}

void model_momentum_update(Model *m, float mu) {
    m->dev.ops->ema(m->dev.momentum, m->dev.params, m->tower_n, mu);
}

void model_enqueue(Model *m, const float *image_feats, const float *text_feats, int n) {
    int Q = m->cfg.queue_size, E = m->cfg.embed_dim;
    if (Q % n != 0) die("queue_size %d is not a multiple of the gathered batch %d", Q, n);
    size_t off = (size_t)m->queue_ptr * E, bytes = (size_t)n * E * sizeof(float);
    m->dev.ops->copy_h2d(m->dev.image_queue + off, image_feats, bytes);
    m->dev.ops->copy_h2d(m->dev.text_queue + off, text_feats, bytes);
    m->queue_ptr = (m->queue_ptr + n) % Q;
}

void model_clamp_temp(Model *m) { m->dev.ops->clamp_scalar(m->temp->data, 0.001f, 0.5f); }
