// flops.c: MAC counter of one training forward pass (see flops.h).
#include "model/flops.h"

typedef struct {
    int full;
    double macs;
} Counter;

static void lin(Counter *k, double tokens, double in, double out) { k->macs += tokens * in * out; }

static void attn(Counter *k, double Tq, double Tk, double C) {
    if (k->full) k->macs += 2.0 * Tq * Tk * C;  // Q K^T and P V
}

// ViT on S tokens (CLS + visible patches); the patch embedding runs over all N patches.
static void vit(Counter *k, const ModelConfig *c, double S) {
    double C = c->vision_width, N = model_num_patches(c), P = 3.0 * c->patch_size * c->patch_size;
    lin(k, N, P, C);
    for (int l = 0; l < c->vision_depth; l++) {
        lin(k, S, C, 3 * C), attn(k, S, S, C), lin(k, S, C, C);
        lin(k, S, C, c->vision_mlp), lin(k, S, c->vision_mlp, C);
    }
}

static void text(Counter *k, const ModelConfig *c, double T) {
    double C = c->text_width;
    for (int l = 0; l < c->text_layers; l++) {
        lin(k, T, C, 3 * C), attn(k, T, T, C), lin(k, T, C, C);
        lin(k, T, C, c->text_mlp), lin(k, T, c->text_mlp, C);
    }
}

// Fusion layers for T text tokens attending to Si image tokens.
static void fusion(Counter *k, const ModelConfig *c, double T, double Si) {
    double C = c->text_width, Cv = c->vision_width;
    for (int l = 0; l < c->fusion_layers; l++) {
        lin(k, T, C, 3 * C), attn(k, T, T, C), lin(k, T, C, C);
        lin(k, T, C, C), lin(k, Si, Cv, 2 * C), attn(k, T, Si, C), lin(k, T, C, C);
        lin(k, T, C, c->text_mlp), lin(k, T, c->text_mlp, C);
    }
}

static void mlm_vocab_head(Counter *k, const ModelConfig *c, double T) {
    lin(k, T, c->text_width, c->text_width), lin(k, T, c->text_width, c->vocab_size);
}

Macs macs_per_sample(const ModelConfig *c, int text_len, int full) {
    Counter on = {full, 0}, mo = {full, 0};
    double N = model_num_patches(c), K = model_num_visible(c), T = text_len;
    double E = c->embed_dim, Cv = c->vision_width, Ct = c->text_width, D = c->decoder_width;
    double Sv = 1 + K, Sf = 1 + N;  // online / momentum image tokens
    vit(&on, c, Sv), vit(&mo, c, Sf);
    text(&on, c, T), text(&mo, c, T);                      // ITC text features
    lin(&on, 1, Cv, E), lin(&on, 1, Ct, E), lin(&mo, 1, Cv, E), lin(&mo, 1, Ct, E);
    for (int i = 0; i < 3; i++) fusion(&on, c, T, Sv);     // ITM: positives + 2 negative sets
    lin(&on, 3, Ct, 2);
    text(&on, c, T), fusion(&on, c, T, Sv), mlm_vocab_head(&on, c, T);  // MLM student
    text(&mo, c, T), fusion(&mo, c, T, Sf), mlm_vocab_head(&mo, c, T);  // MLM teacher
    if (c->objective == OBJ_TCL) {
        // TCL's local features: vision_proj_m over every patch token of the second view and
        // text_proj_m over tokens 1..T-1 (the momentum encoders already ran for ITC; the pooling
        // and the in-batch / queue similarities are no Linear layers, like ITC's).
        lin(&mo, N, Cv, E), lin(&mo, T - 1, Ct, E);
    }
    if (c->objective == OBJ_VLMAE) {
        double S = 1 + N + T, P = 3.0 * c->patch_size * c->patch_size;
        lin(&on, Sv, Cv, D), lin(&on, T, Ct, D);
        for (int l = 0; l < c->decoder_depth; l++) {
            lin(&on, S, D, 3 * D), attn(&on, S, S, D), lin(&on, S, D, D);
            lin(&on, S, D, c->decoder_mlp), lin(&on, S, c->decoder_mlp, D);
        }
        lin(&on, 1 + N, D, P);  // MAE predicts every image token, CLS included
    }
    return (Macs){on.macs, mo.macs};
}

double train_flops_per_sample(const ModelConfig *c, int text_len) {
    Macs m = macs_per_sample(c, text_len, 1);
    return 2.0 * (3.0 * m.online + m.momentum);
}
