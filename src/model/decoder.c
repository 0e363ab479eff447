// decoder.c: the MAE-style image decoder of VLMAE. Visible image tokens are embedded, mask tokens
// fill the hidden patches, the sequence is unshuffled and given fixed 2-D sin-cos positions, and
// the caption's text states are appended so the decoder reconstructs pixels from both.
#include <string.h>

#include "engine/common.h"
#include "model/model.h"

Tensor *decoder_forward(Graph *g, const Model *m, Tensor *v, Tensor *w, const int32_t *ids_restore,
                        const float *text_mask, int B, int K, int T) {
    const ModelConfig *c = &m->cfg;
    int D = c->decoder_width, N = model_num_patches(c), S = 1 + N + T;
    Tensor *dv = g_linear(g, v, m->dec_embed.w, m->dec_embed.b);            // (B*(1+K), D)
    Tensor *dt = g_linear(g, w, m->dec_text_embed.w, m->dec_text_embed.b);  // (B*T, D)
    Tensor *parts[3] = {dv, dt, g_view(g, m->dec_mask_token, 0, 1, D)};
    Tensor *table = g_concat_rows(g, parts, 3, D);  // (B*(1+K) + B*T + 1, D)
    int mask_row = B * (1 + K) + B * T;
    // Per sample: CLS, the N patches in image order (visible ones from dv, hidden ones the mask
    // token), then the T text tokens.
    int32_t *idx = g_host_alloc(g, (size_t)B * S * sizeof(int32_t));
    float *pos = g_host_alloc(g, (size_t)S * D * sizeof(float));
    float *keymask = g_host_alloc(g, (size_t)B * S * sizeof(float));
    memcpy(pos, m->dec_pos, (size_t)(1 + N) * D * sizeof(float));
    memset(pos + (size_t)(1 + N) * D, 0, (size_t)T * D * sizeof(float));  // text rows: no position
    memset(keymask, 0, (size_t)B * S * sizeof(float));
    for (int b = 0; b < B; b++) {
        int32_t *r = idx + (size_t)b * S;
        r[0] = b * (1 + K);
        for (int n = 0; n < N; n++) {
            int j = ids_restore[b * N + n];
            r[1 + n] = j < K ? b * (1 + K) + 1 + j : mask_row;
        }
        for (int t = 0; t < T; t++) {
            r[1 + N + t] = B * (1 + K) + b * T + t;
            keymask[(size_t)b * S + 1 + N + t] = text_mask[b * T + t];  // additive
        }
    }
    Tensor *x = g_gather_rows(g, table, D, idx, B * S);
    x = g_add_bcast(g, x, g_const(g, pos, S, D));
    const float *keymask_d = g_const(g, keymask, B, S)->data;
    for (int l = 0; l < c->decoder_depth; l++)
        x = block_forward(g, &m->dec[l], x, keymask_d, B, S, c->decoder_heads, c->vision_ln_eps);
    x = g_layernorm(g, x, m->dec_norm.w, m->dec_norm.b, c->vision_ln_eps);
    // Keep the N patch rows of each sample and predict their pixels: (B*N, P).
    int32_t *prow = g_host_alloc(g, (size_t)B * N * sizeof(int32_t));
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) prow[b * N + n] = b * S + 1 + n;
    x = g_gather_rows(g, x, D, prow, B * N);
    return g_linear(g, x, m->dec_pred.w, m->dec_pred.b);
}
