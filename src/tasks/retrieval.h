// retrieval.h: image-text retrieval evaluation (ALBEF protocol): encode every image and caption
// of an eval set, rank all pairs by ITC similarity, optionally re-score each query's top k with
// the ITM match logit, and report TR/IR R@1/5/10 (an image may have several captions; a text
// retrieval hit is any of them).
#ifndef VLMAE_RETRIEVAL_H
#define VLMAE_RETRIEVAL_H

#include <stdint.h>

#include "data/loader.h"
#include "model/model.h"
#include "train/dist.h"

typedef struct {
    int n_img, n_txt, T, E;
    int64_t *txt_img;      // (n_txt) image row of each text
    float *img_feat;       // (n_img, E) unit ITC features
    float *txt_feat;       // (n_txt, E)
    float *img_tokens;     // (n_img, 1+N, C) image encoder output (ITM re-scoring), or NULL
    float *txt_states;     // (n_txt, T, Ct) text encoder output, or NULL
    int32_t *txt_mask;     // (n_txt, T)
} RetrievalSet;

typedef struct {
    double tr[3], ir[3];  // R@1, R@5, R@10 in percent
    double mean;          // mean of the six
} Recall;

// Encodes one pass of an eval-mode loader (every rank its slice; results all-reduced so every
// rank holds the whole set). keep_tokens: keep what ITM re-scoring needs. An image with several
// captions is encoded once per caption (use retrieval_encode2 to encode each image once).
void retrieval_encode(Model *m, Loader *L, const Dist *d, int keep_tokens, RetrievalSet *rs);
// The same from two eval-mode loaders over the same shards, as ALBEF evaluates: `images`
// (by_image: each image once) and `texts` (no_images: captions only, no image decoding). Every
// rank encodes its slices; the results are summed over ranks so every rank holds the whole set.
void retrieval_encode2(Model *m, Loader *images, Loader *texts, const Dist *d, int keep_tokens,
                       RetrievalSet *rs);
void retrieval_set_free(RetrievalSet *rs);
// i2t (n_img, n_txt) and t2i (n_txt, n_img) scores: ITC similarity; with k > 0 the top k of each
// row are replaced by their ITM match logit plus their ITC similarity (ALBEF's k_test
// re-scoring) and the rest set to -100.
void retrieval_scores(Model *m, const RetrievalSet *rs, int k, float *i2t, float *t2i);
// The same over the ranks of d: every rank computes the ITC matrices; the ITM re-scoring of the
// rows is split into contiguous blocks, one per rank, and the re-scored top k (scores and
// columns) are summed over ranks, so every rank ends with the same matrices. progress: print
// progress lines on stdout (rank 0 only).
void retrieval_scores_dist(Model *m, const RetrievalSet *rs, int k, float *i2t, float *t2i,
                           const Dist *d, int progress);
// Recall@{1,5,10} from score matrices; txt_img (n_txt) gives each text's image.
void retrieval_recall(const float *i2t, const float *t2i, const int64_t *txt_img, int n_img, int n_txt,
                      Recall *out);

// Retrieval within groups of images (e.g. the synthetic world's backgrounds): each query ranks
// only the candidates of its own group, so a scorer that knows nothing but the group is at
// chance. IR: a text against the images of its image's group; TR: an image against the texts
// whose images share its group. R@1 with ties broken at random (a hit counts 1/(1+ties) when no
// candidate scores higher), and the chance level of each.
typedef struct {
    double tr1, ir1;                // percent
    double chance_tr1, chance_ir1;  // percent: a random ranking within the group
} GroupRecall;
void retrieval_group_recall(const float *i2t, const float *t2i, const int64_t *txt_img, const int *img_group,
                            int n_img, int n_txt, GroupRecall *out);

#endif
