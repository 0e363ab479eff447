// flops.h: multiply-accumulates of one training forward pass, counted from the model shapes.
//
// Two conventions:
// - thop: every Linear and Conv layer, as the `thop` profiler counts a PyTorch model (output
//   elements x input features). This is how the VLMAE paper's Table 8 counts: at 256px, 16 text
//   tokens, it gives ALBEF 60.5G, TCL 60.6G, VLMAE 49.6G per sample.
// - full: thop plus the attention products (Q K^T and P V).
// Counted as the reference model computes (ALBEF's code): MLM head over every text position,
// the decoder's prediction over every decoder token. Split by whether the computation gets a
// gradient (online) or not (momentum teacher passes), so training FLOPs = 2 * (3 * online + momentum).
#ifndef VLMAE_FLOPS_H
#define VLMAE_FLOPS_H

#include "model/model.h"

typedef struct {
    double online, momentum;  // MACs per sample
} Macs;

Macs macs_per_sample(const ModelConfig *c, int text_len, int full);
// Model FLOPs of one training step per sample (forward + backward of the online parts, forward
// of the momentum parts), full convention: the numerator of MFU.
double train_flops_per_sample(const ModelConfig *c, int text_len);

#endif
