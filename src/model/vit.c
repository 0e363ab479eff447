// vit.c: the image encoder (ViT, pre-LN) with MAE's visible-patch selection, and the pre-LN
// transformer block it shares with the MAE decoder.
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "model/model.h"

// x (B*T, D) -> (B*T, D):  x + proj(attn(LN1(x)))  then  x + fc2(GELU(fc1(LN2(x))))
Tensor *block_forward(Graph *g, const Block *blk, Tensor *x, const float *mask, int B, int T,
                      int heads, float eps) {
    int D = blk->norm1.w->shape[0];
    Tensor *h = g_layernorm(g, x, blk->norm1.w, blk->norm1.b, eps);
    Tensor *qkv = g_linear(g, h, blk->qkv.w, blk->qkv.b);  // (B*T, 3D): q | k | v
    Tensor *a = g_attention(g, qkv, 0, 3 * D, qkv, D, 3 * D, qkv, 2 * D, 3 * D, mask, B, T, T, D,
                            heads, 0, 0.0f);
    x = g_add(g, x, g_linear(g, a, blk->proj.w, blk->proj.b));
    h = g_layernorm(g, x, blk->norm2.w, blk->norm2.b, eps);
    h = g_gelu(g, g_linear(g, h, blk->fc1.w, blk->fc1.b));
    return g_add(g, x, g_linear(g, h, blk->fc2.w, blk->fc2.b));
}

Tensor *vit_forward(Graph *g, const Model *m, const Tower *t, Tensor *patches, const int32_t *ids,
                    int B, int K) {
    const ModelConfig *c = &m->cfg;
    int C = c->vision_width, N = model_num_patches(c);
    // Patch embedding (the conv as a GEMM) plus the patch rows of pos_embed: (B*N, C).
    Tensor *x = g_linear(g, patches, t->patch_embed.w, t->patch_embed.b);
    x = g_add_bcast(g, x, g_view(g, t->pos_embed, C, N, C));
    // CLS + its position, as one extra row appended after all patch rows.
    Tensor *cls = g_add(g, g_view(g, t->cls_token, 0, 1, C), g_view(g, t->pos_embed, 0, 1, C));
    Tensor *parts[2] = {x, cls};
    Tensor *table = g_concat_rows(g, parts, 2, C);  // (B*N + 1, C)
    // Sequence per sample: CLS then the visible patches in keep order: (B*(1+K), C).
    int32_t *idx = g_host_alloc(g, (size_t)B * (1 + K) * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        idx[b * (1 + K)] = B * N;
        for (int k = 0; k < K; k++) idx[b * (1 + K) + 1 + k] = b * N + (ids ? ids[b * K + k] : k);
    }
    x = g_gather_rows(g, table, C, idx, B * (1 + K));
    for (int l = 0; l < c->vision_depth; l++)
        x = block_forward(g, &t->vit[l], x, NULL, B, 1 + K, c->vision_heads, c->vision_ln_eps);
    return g_layernorm(g, x, t->vit_norm.w, t->vit_norm.b, c->vision_ln_eps);
}
