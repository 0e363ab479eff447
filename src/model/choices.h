// choices.h: the random and data-derived choices of one pre-training step, made on the host:
// MAE patch masks, MLM masks, ITM hard negatives, the text-relevant region of each image, and
// the pixel targets. Kept apart from the step so a test can replay them in PyTorch.
#ifndef VLMAE_CHOICES_H
#define VLMAE_CHOICES_H

#include <stdint.h>

#include "data/batch.h"
#include "engine/rng.h"
#include "model/model.h"

typedef struct {
    int B, T, N, K;
    int32_t *ids_keep;     // (B,K) visible patches in the order the encoder sees them
    int32_t *ids_restore;  // (B,N) position of patch n in [kept; hidden]
    int32_t *mlm_ids;      // (B,T) masked text
    int32_t *mlm_labels;   // (B,T) original id at masked positions, -100 elsewhere
    int32_t *neg_image;    // (B) negative image of text b
    int32_t *neg_text;     // (B) negative text of image b
    float *region;         // (B,N) 1 where the patch centre lies in the caption's region
} StepChoices;

// MAE random masking: noise per patch, argsort, keep the first K. K == N keeps all in order.
// scratch: at least N * 8 bytes.
void choose_patch_mask(Rng *r, int B, int N, int K, int32_t *ids_keep, int32_t *ids_restore,
                       void *scratch);
// BERT/ALBEF MLM masking: each token except PAD and CLS masked with probability p; of those 80%
// [MASK], 10% random id, 10% kept. worst_case masks every eligible token (arena planning).
void choose_mlm_mask(Rng *r, const ModelConfig *c, const int32_t *ids, int B, int T,
                     int32_t *mlm_ids, int32_t *labels, int worst_case);
// ITM hard negatives: for row b, draw j != b with probability softmax(sims[b, :B]) without the
// diagonal; falls back to a uniform j != b when the weights vanish or are not finite.
// sims is (B, ld) with the in-batch similarities in its first B columns.
// scratch: at least B doubles.
void choose_hard_negatives(Rng *r, const float *sims, int ld, int B, int32_t *neg, double *scratch);
// region[b][n] = 1 when patch n's centre lies in box b (normalised x,y,w,h); NaN box or
// !regional => 1 everywhere.
void choose_region(const float *box, int B, int grid, int regional, float *region);

// Patch layouts of an image (B,3,H,W): conv order (c,r,s) for the patch embedding, MAE order
// (r,s,c) for the pixel target. Output (B*N, 3*p*p).
void patchify_conv(const float *image, int B, int H, int p, float *out);
void patchify_mae(const float *image, int B, int H, int p, float *out);
// Per-patch standardisation (t - mean) / sqrt(var + 1e-6), var unbiased (MAE's norm_pix_loss).
void normalize_patches(float *t, int rows, int P);

#endif
