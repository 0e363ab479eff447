// batch.h: one training batch as the data loader hands it to the model (host memory, fp32).
#ifndef VLMAE_BATCH_H
#define VLMAE_BATCH_H

#include <stdint.h>

typedef struct {
    int B;              // samples in this batch
    int T;              // text length (padded)
    int H, W;           // image size (square in practice)
    float *image;       // (B,3,H,W) augmented and normalised with the CLIP mean/std
    float *image2;      // (B,3,H,W) a second augmented view of the same images (objective tcl:
                        // the momentum image encoder's input); NULL when absent
    int32_t *text_ids;  // (B,T) [CLS] + WordPiece ids (no [SEP], as ALBEF), right-padded with [PAD]
    int32_t *text_mask; // (B,T) 1 = real token, 0 = padding
    float *box;         // (B,4) caption's region, normalised x,y,w,h after crop/flip; NaN = none
    int64_t *image_id;  // (B) global image identity (same image => same id), for retrieval positives
} Batch;

#endif
