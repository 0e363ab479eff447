// bert.c: the text encoder (BERT layers 0..text_layers-1, post-LN), the fusion layers (self-
// attention, cross-attention to image tokens, FFN) and the MLM prediction head.
#include "engine/common.h"
#include "model/model.h"

// Post-LN attention sub-layer: LN(x + dropout(o(attn(q(x), k(kv), v(kv)))))
static Tensor *attn_sublayer(Graph *g, const ModelConfig *c, const BertAttn *a, Tensor *x,
                             Tensor *kv, const float *mask, int B, int Tq, int Tk) {
    int Ct = c->text_width;
    Tensor *q = g_linear(g, x, a->q.w, a->q.b);
    Tensor *k = g_linear(g, kv, a->k.w, a->k.b);
    Tensor *v = g_linear(g, kv, a->v.w, a->v.b);
    Tensor *h = g_attention(g, q, 0, Ct, k, 0, Ct, v, 0, Ct, mask, B, Tq, Tk, Ct, c->text_heads, 0,
                            c->attn_dropout);
    h = g_dropout(g, g_linear(g, h, a->o.w, a->o.b), c->hidden_dropout);
    return g_layernorm(g, g_add(g, h, x), a->ln.w, a->ln.b, c->text_ln_eps);
}

static Tensor *ffn_sublayer(Graph *g, const ModelConfig *c, const BertLayer *l, Tensor *x) {
    Tensor *h = g_gelu(g, g_linear(g, x, l->fc1.w, l->fc1.b));
    h = g_dropout(g, g_linear(g, h, l->fc2.w, l->fc2.b), c->hidden_dropout);
    return g_layernorm(g, g_add(g, h, x), l->ln.w, l->ln.b, c->text_ln_eps);
}

Tensor *bert_text(Graph *g, const Model *m, const Tower *t, const int32_t *ids, const float *mask,
                  int B, int T) {
    const ModelConfig *c = &m->cfg;
    int Ct = c->text_width;
    if (T > c->max_text_len) die("text length %d exceeds max_text_len %d", T, c->max_text_len);
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) die("token id %d outside the vocabulary (%d)", ids[i], c->vocab_size);
    Tensor *x = g_gather_rows(g, t->word, Ct, ids, B * T);            // (B*T, Ct)
    x = g_add_bcast(g, x, g_view(g, t->position, 0, T, Ct));          // positions 0..T-1
    x = g_add_bcast(g, x, g_view(g, t->token_type, 0, 1, Ct));        // token type 0
    x = g_dropout(g, g_layernorm(g, x, t->emb_ln.w, t->emb_ln.b, c->text_ln_eps), c->hidden_dropout);
    for (int l = 0; l < c->text_layers; l++) {
        x = attn_sublayer(g, c, &t->bert[l].attn, x, x, mask, B, T, T);
        x = ffn_sublayer(g, c, &t->bert[l], x);
    }
    return x;
}

Tensor *bert_fusion(Graph *g, const Model *m, const Tower *t, Tensor *x, const float *mask,
                    Tensor *img, int B, int T, int Ti) {
    const ModelConfig *c = &m->cfg;
    for (int l = c->text_layers; l < c->text_layers + c->fusion_layers; l++) {
        x = attn_sublayer(g, c, &t->bert[l].attn, x, x, mask, B, T, T);
        x = attn_sublayer(g, c, &t->bert[l].cross, x, img, NULL, B, T, Ti);
        x = ffn_sublayer(g, c, &t->bert[l], x);
    }
    return x;
}

Tensor *mlm_head(Graph *g, const Model *m, const Tower *t, Tensor *x) {
    const ModelConfig *c = &m->cfg;
    Tensor *h = g_gelu(g, g_linear(g, x, t->mlm_dense.w, t->mlm_dense.b));
    h = g_layernorm(g, h, t->mlm_ln.w, t->mlm_ln.b, c->text_ln_eps);
    return g_linear(g, h, t->word, t->mlm_bias);  // decoder tied to the word embeddings
}
