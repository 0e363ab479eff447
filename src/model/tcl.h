// tcl.h: the extra contrastive terms of the objective `tcl` (TCL, Yang et al., CVPR 2022: "Vision-
// Language Pre-Training with Triple Contrastive Learning"), added to ALBEF's step by step.c.
//
// TCL runs the momentum image encoder on a second augmented view of each image (Batch.image2); the
// online encoder sees the first. Besides ALBEF's cross-modal ITC (i2t, t2i) it adds:
// - intra-modal contrastive (IMC): i2i = CE(img . [img_m; image_queue]^T / temp, diagonal) and
//   t2t likewise with the text features: hard targets (no distillation), against the queues;
// - local mutual information (LMI, TCL's "in-batch g2l" loss): the global online feature of each
//   sample against local momentum features, in-batch. Image locals: vision_proj_m of every patch
//   token of v_hat, L2-normalised, average-pooled over a (g/c x g/c) grid of c x c regions,
//   c = floor(sqrt(g)) for g = image_size/patch_size patches a side (16 regions at 256px/16; not
//   re-normalised after pooling). Text locals: text_proj_m of tokens 1..T-1 of the momentum text
//   encoder's states, L2-normalised; padding tokens are no locals. For sample i and its local k
//   the logits are [g_i . l_ik; g_i . l_jk' for every local k' of every other sample j] / temp and
//   the loss is -log_softmax at the first; per sample the mean over its locals, then the mean over
//   the samples that have locals (TCL divides by zero for a caption with no token but [CLS]; such a
//   sample is left out here).
// The contrastive part of the loss is the mean of the six terms (i2t, t2i, i2i, t2t, lmi_img,
// lmi_txt), weighted by w_itc. Gradients reach the online features and the temperature.
//
// Everything is built from graph ops (graph.h), so the tape differentiates it; shapes do not
// depend on the data (padding rows are kept and weighted out), so the arena plan covers them.
#ifndef VLMAE_TCL_H
#define VLMAE_TCL_H

#include <stdint.h>

#include "engine/graph.h"
#include "model/model.h"

typedef struct {
    Tensor *img, *txt;        // (B,E) online normalised global features (with gradient)
    Tensor *keys_i, *keys_t;  // (B+Q,E) [momentum features of this batch; queue] (constants)
    Tensor *v_hat;            // (B*(1+N),C) momentum image tokens of the second view
    Tensor *w_hat;            // (B*T,Ct) momentum text states
    const int32_t *text_mask; // (B,T) 1 = real token
    int B, T;
} TclInputs;

typedef struct {
    Tensor *i2i, *t2t;       // scalar losses (mean CE over the batch)
    float lmi_img, lmi_txt;  // loss values
    // The LMI losses are sums of per-sample cross-entropies: part[k] with share[k] (the loss's
    // gradient seed is weight * share[k]).
    Tensor **part;
    float *share;
    int n_part;
    int n_img_parts;         // part[0, n_img_parts) are image terms, the rest text terms
} TclTerms;

// Number of pooled image regions (the image locals) of a config.
int tcl_num_regions(const ModelConfig *c);
// Builds the four extra terms on the graph (temperature: m->temp, with gradient).
void tcl_terms(Graph *g, const Model *m, const TclInputs *in, TclTerms *out);
// Seeds the gradients of the four terms, each with weight w (call before graph_backward).
void tcl_seed(const TclTerms *t, float w);

#endif
