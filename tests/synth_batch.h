// synth_batch.h: small in-memory image-text batches for engine tests (no files, no decoder).
// Each sample is a (colour, quadrant) pair: the image is noise with a bright square of that
// colour in that quadrant, the caption is [CLS] colour-word quadrant-word filler... so image and
// text carry the same information and every objective has something to learn.
#ifndef VLMAE_TEST_SYNTH_BATCH_H
#define VLMAE_TEST_SYNTH_BATCH_H

#include <math.h>
#include <stdlib.h>

#include "data/batch.h"
#include "engine/rng.h"
#include "model/model.h"

static const float synth_colours[4][3] = {{1.5f, -1, -1}, {-1, 1.5f, -1}, {-1, -1, 1.5f}, {1.5f, 1.5f, -1}};

// Fills bt (allocating its arrays) with B samples drawn from rng; vocab ids: CLS 1, colours
// 4..7, quadrants 8..11, filler 12..; pad 0.
static void synth_batch(Batch *bt, const ModelConfig *c, int B, int T, Rng *r) {
    int S = c->image_size, half = S / 2;
    bt->B = B, bt->T = T, bt->H = bt->W = S;
    bt->image = malloc(sizeof(float) * B * 3 * S * S);
    bt->text_ids = malloc(sizeof(int32_t) * B * T);
    bt->text_mask = malloc(sizeof(int32_t) * B * T);
    bt->box = malloc(sizeof(float) * B * 4);
    bt->image_id = malloc(sizeof(int64_t) * B);
    for (int b = 0; b < B; b++) {
        int col = (int)rng_randint(r, 4), quad = (int)rng_randint(r, 4);
        int y0 = (quad / 2) * half, x0 = (quad % 2) * half;
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    int in = y >= y0 && y < y0 + half && x >= x0 && x < x0 + half;
                    float v = in ? synth_colours[col][ch] : 0.0f;
                    bt->image[((size_t)(b * 3 + ch) * S + y) * S + x] = v + 0.3f * (float)rng_normal(r);
                }
        int len = 4 + (int)rng_randint(r, T - 3);
        for (int t = 0; t < T; t++) {
            int id = t == 0 ? 1 : t == 1 ? 4 + col : t == 2 ? 8 + quad : 12 + (int)rng_randint(r, 8);
            bt->text_ids[b * T + t] = t < len ? id : 0;
            bt->text_mask[b * T + t] = t < len;
        }
        // The caption's region is the object's quadrant for half the samples.
        int boxed = b % 2 == 0;
        bt->box[4 * b + 0] = boxed ? (float)x0 / S : NAN;
        bt->box[4 * b + 1] = boxed ? (float)y0 / S : NAN;
        bt->box[4 * b + 2] = boxed ? 0.5f : NAN;
        bt->box[4 * b + 3] = boxed ? 0.5f : NAN;
        bt->image_id[b] = col * 4 + quad;
    }
}

static void synth_batch_free(Batch *bt) {
    free(bt->image), free(bt->text_ids), free(bt->text_mask), free(bt->box), free(bt->image_id);
}

// The tiny model the engine tests train: model_config_tiny with a 32-token vocabulary.
static void synth_tiny_config(ModelConfig *c) {
    model_config_tiny(c);
    c->vocab_size = 32, c->max_text_len = 16, c->queue_size = 16;
    c->pad_id = 0, c->cls_id = 1, c->mask_id = 2;
}

#endif
