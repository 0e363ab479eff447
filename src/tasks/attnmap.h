// attnmap.h: `vlmae attnmap` -- the image encoder's [CLS]-to-patch attention (the VLMAE paper's
// Fig. 5) as PNG overlays, with statistics of how widely it spreads, so that an albef-objective
// model and a vlmae one can be compared on the same images:
//
//   vlmae attnmap --ckpt CKPT.h5 --images a.jpg b.jpg ... --out DIR [--low F] [--layer L]
//                 [--image-size S] [--size PX]
//
// The attention: the block's own qkv projection of its LayerNorm'ed input (the graph returns no
// attention probabilities, so they are computed here from q and k), softmax(q_cls . k_j /
// sqrt(d_head)) over the [CLS] token and the N patches, per head; the map is the mean over heads
// of the patch entries, renormalised to sum 1 over the patches.
//
// Statistics per image (and their mean):
//   low     share of patches in the low-attention interval [0, F / N): less than F times the
//           uniform share 1/N (F = --low, default 0.5). The paper (section 4.9) reports the
//           proportion of weakly attended patches to argue that VLMAE "pays attention to almost
//           all critical patches" while ALBEF concentrates on a few; its exact interval is not
//           given in a form we could reproduce, so the interval is relative to the uniform share
//           (independent of the image size) and a parameter. A focused map has a high share.
//   top10   share of the attention mass held by the top 10% of patches;
//   entropy normalised entropy of the map, in [0, 1] (1 = uniform).
#ifndef VLMAE_TASKS_ATTNMAP_H
#define VLMAE_TASKS_ATTNMAP_H

#include "model/model.h"

int attnmap_main(int argc, char **argv);

// [CLS]-to-patch attention of block `layer` (0-based; -1 = the last) of m's online image encoder
// for one image (3, S, S) normalised like the loader's output: out (N) sums to 1.
void attnmap_compute(const Model *m, const float *chw, int layer, float *out);

typedef struct {
    double low, top10, entropy;
} AttnStats;
void attnmap_stats(const float *w, int N, double low_frac, AttnStats *s);

#endif
