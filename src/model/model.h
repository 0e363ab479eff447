// model.h: the VLMAE model — configuration, parameter modules, momentum copies and feature queues,
// and the forward builders of each part (vit.c, bert.c, decoder.c). The pre-training step that
// composes them with the losses is in step.h.
#ifndef VLMAE_MODEL_H
#define VLMAE_MODEL_H

#include <stdint.h>

#include "engine/graph.h"
#include "model/params.h"

// vlmae: the paper's five losses; albef: ITC + ITM + MLM on unmasked images; tcl: albef + a second
// augmented view for the momentum image encoder + TCL's intra-modal and local MI terms (tcl.h).
typedef enum { OBJ_VLMAE = 0, OBJ_ALBEF = 1, OBJ_TCL = 2 } Objective;

typedef struct {
    // image encoder (ViT)
    int image_size, patch_size;
    int vision_width, vision_depth, vision_heads, vision_mlp;
    float vision_ln_eps;
    // text encoder + fusion (BERT)
    int vocab_size, text_width, text_heads, text_mlp;
    int text_layers, fusion_layers, max_text_len;
    float text_ln_eps, hidden_dropout, attn_dropout;
    // MAE decoder
    int decoder_width, decoder_depth, decoder_heads, decoder_mlp;
    // heads, queues, objective
    int embed_dim, queue_size;
    int pad_id, cls_id, mask_id;  // special token ids of the vocabulary (MLM masking)
    float mask_ratio, mlm_prob, momentum, temp_init;
    float init_std;  // std of the N(0, std) random init of every matrix (0.02: BERT / timm)
    int norm_pix_loss, mim_regional;
    Objective objective;
    float w_itc, w_itm, w_mlm, w_rmim, w_ifr;
} ModelConfig;

void model_config_base(ModelConfig *c);  // the paper's base model (ViT-B/16 256px, BERT 6+6, ...)
void model_config_tiny(ModelConfig *c);  // seconds per step on a CPU; used by tests and the demo
int model_num_patches(const ModelConfig *c);
int model_num_visible(const ModelConfig *c);  // K: patches the online encoder sees
const char *objective_name(Objective o);

typedef struct { Tensor *w, *b; } Linear;
typedef struct { Tensor *w, *b; } Norm;

typedef struct {  // pre-LN transformer block (ViT and MAE decoder)
    Norm norm1, norm2;
    Linear qkv, proj, fc1, fc2;
} Block;

typedef struct {  // one BERT attention sub-layer (post-LN)
    Linear q, k, v, o;
    Norm ln;
} BertAttn;

typedef struct {
    BertAttn attn, cross;
    int has_cross;
    Linear fc1, fc2;
    Norm ln;
} BertLayer;

// The part of the model that has a momentum copy: image encoder, text encoder + fusion, MLM head
// and the two projections. Registered in this order so the copy is one contiguous range.
typedef struct {
    Linear patch_embed;
    Tensor *cls_token, *pos_embed;
    Block *vit;
    Norm vit_norm;
    Tensor *word, *position, *token_type;
    Norm emb_ln;
    BertLayer *bert;
    Linear mlm_dense;
    Norm mlm_ln;
    Tensor *mlm_bias;
    Linear vision_proj, text_proj;
} Tower;

// The buffers the step and the trainer compute on. On a host-memory backend (ops_cpu) they are
// the host buffers of the Model itself; on a device backend (ops_cuda) they are device copies and
// the host buffers are a mirror: model_to_host() refreshes it (checkpoints, sync checks),
// model_to_device() pushes it (after loading a checkpoint). Parameter tensor views (Tower,
// heads, ...) point into `params` / `momentum` here, so graph code sees device pointers.
typedef struct {
    const Ops *ops;
    float *params, *grad;             // (params.total)
    float *momentum;                  // (tower_n)
    float *image_queue, *text_queue;  // (Q, E)
} ModelDevice;

typedef struct {
    ModelConfig cfg;
    ModelDevice dev;
    ParamSet params;    // online parameters (with gradients)
    ParamSet momentum;  // momentum copy of the tower (no gradients)
    size_t tower_n;     // the tower's values: params.data[0, tower_n) <-> momentum.data
    Tower on, mo;
    Tensor *temp;
    Linear itm_head;
    Linear dec_embed, dec_text_embed, dec_pred;
    Tensor *dec_mask_token;
    Block *dec;
    Norm dec_norm;
    float *dec_pos;     // (1+N, D) fixed 2-D sin-cos table, row 0 zero
    float *image_queue; // (Q, E) unit rows, momentum image features
    float *text_queue;  // (Q, E)
    int queue_ptr;
} Model;

void model_create(Model *m, const ModelConfig *cfg);  // on ops_cpu
// Move the compute buffers to ops' memory (model_device.c), copying the host values; parameter
// views are re-pointed. Once per model, before the first step; ops_cpu is the default.
void model_use_backend(Model *m, const Ops *ops);
void model_to_host(Model *m);    // parameters, momentum copies, queues: device -> host mirror
void model_to_device(Model *m);  // host -> device (after the host buffers were loaded)
float model_temp(const Model *m);  // the current temperature (a host copy of the parameter)
void model_release_device(Model *m);  // back to ops_cpu on the host buffers (model_free calls it)
// Random init (ALBEF/timm/MAE conventions); momentum = online; queues random unit vectors.
void model_init_weights(Model *m, uint64_t seed);
void model_free(Model *m);
// theta_m <- mu * theta_m + (1 - mu) * theta over the tower's flat range (compute buffers).
void model_momentum_update(Model *m, float mu);
// Write HOST feats (n, E) of each modality at the queue pointer of the compute queues and advance
// it (n divides Q).
void model_enqueue(Model *m, const float *image_feats, const float *text_feats, int n);
void model_clamp_temp(Model *m);

// Forward builders (graph ops).
// Image encoder on patches (B*N, 3*p*p) conv-ordered; ids (B, K) visible patch indices, or NULL
// for all N in order. Returns (B*(1+K), C).
Tensor *vit_forward(Graph *g, const Model *m, const Tower *t, Tensor *patches, const int32_t *ids,
                    int B, int K);
// Masks (B, T) below are additive key masks in DEVICE memory (graph.h's pointer rule), except
// decoder_forward's text_mask, which is read on the host to build the decoder's own mask.
// Text encoder (layers [0, text_layers)) on ids (B, T) -> (B*T, Ct).
Tensor *bert_text(Graph *g, const Model *m, const Tower *t, const int32_t *ids, const float *mask,
                  int B, int T);
// Fusion layers with cross-attention to image tokens img (B*Ti, C) -> (B*T, Ct).
Tensor *bert_fusion(Graph *g, const Model *m, const Tower *t, Tensor *x, const float *mask,
                    Tensor *img, int B, int T, int Ti);
// MLM head on rows x (M, Ct) -> logits (M, V).
Tensor *mlm_head(Graph *g, const Model *m, const Tower *t, Tensor *x);
// Pre-LN block over x (B*T, D) with an additive key mask (B, T) or NULL.
Tensor *block_forward(Graph *g, const Block *blk, Tensor *x, const float *mask, int B, int T,
                      int heads, float eps);
// MAE decoder: v (B*(1+K), C) visible tokens, w (B*T, Ct) text states, ids_restore (B, N),
// additive text key mask (B, T) -> pixel predictions (B*N, P).
Tensor *decoder_forward(Graph *g, const Model *m, Tensor *v, Tensor *w, const int32_t *ids_restore,
                        const float *text_mask, int B, int K, int T);

#endif
