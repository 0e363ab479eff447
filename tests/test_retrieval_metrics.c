// test_retrieval_metrics.c: the evaluation arithmetic of the retrieval and grounding tasks on
// hand-made inputs with exact expected values: recall@K with several positive captions per image
// (retrieval_recall), ALBEF's IoU and proposal scoring (grounding.h), and the same-image-free ITM
// hard negatives of retrieval fine-tuning.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/rng.h"
#include "tasks/grounding.h"
#include "tasks/retrieval.h"
#include "tasks/retrieval_ft.h"

#include "check.h"

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) < 1e-6)

// 3 images; texts 0,1 -> image 0; 2,3,4 -> image 1; 5 -> image 2.
static void test_recall(void) {
    const int64_t txt_img[6] = {0, 0, 1, 1, 1, 2};
    const float i2t[3 * 6] = {
        0.1f, 0.9f, 0.5f, 0.2f, 0.3f, 0.4f,  // image 0: best caption t1 is first -> rank 0
        0.9f, 0.8f, 0.1f, 0.7f, 0.2f, 0.6f,  // image 1: best caption t3 (0.7) behind t0, t1 -> rank 2
        0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.0f,  // image 2: its caption last -> rank 5
    };
    const float t2i[6 * 3] = {
        0.9f, 0.1f, 0.2f,  // t0 -> image 0: rank 0
        0.1f, 0.5f, 0.3f,  // t1 -> image 0: rank 2
        0.4f, 0.3f, 0.1f,  // t2 -> image 1: rank 1
        0.0f, 1.0f, 0.5f,  // t3 -> image 1: rank 0
        0.3f, 0.1f, 0.2f,  // t4 -> image 1: rank 2
        0.1f, 0.2f, 0.3f,  // t5 -> image 2: rank 0
    };
    Recall r;
    retrieval_recall(i2t, t2i, txt_img, 3, 6, &r);
    CHECK(NEAR(r.tr[0], 100.0 / 3) && NEAR(r.tr[1], 200.0 / 3) && NEAR(r.tr[2], 100.0));
    CHECK(NEAR(r.ir[0], 50.0) && NEAR(r.ir[1], 100.0) && NEAR(r.ir[2], 100.0));
    CHECK(NEAR(r.mean, 75.0));
    printf("recall: TR %.2f %.2f %.2f IR %.2f %.2f %.2f mean %.2f\n", r.tr[0], r.tr[1], r.tr[2], r.ir[0], r.ir[1],
           r.ir[2], r.mean);

    // 12 images with one caption each, the positive always ranked 7th (6 higher): only R@10 hits.
    float a[12 * 12], b[12 * 12];
    int64_t ti[12];
    for (int i = 0; i < 12; i++) {
        ti[i] = i;
        for (int j = 0; j < 12; j++) {
            int d = (j - i + 12) % 12;  // the diagonal gets 6 columns above it
            a[i * 12 + j] = b[i * 12 + j] = d == 0 ? 0.5f : (d <= 6 ? 1.0f + d : -(float)d);
        }
    }
    retrieval_recall(a, b, ti, 12, 12, &r);
    CHECK(r.tr[0] == 0.0 && r.tr[1] == 0.0 && r.tr[2] == 100.0);
    CHECK(r.ir[0] == 0.0 && r.ir[1] == 0.0 && r.ir[2] == 100.0);
    CHECK(NEAR(r.mean, 100.0 / 3));

    // Ties: an equal score at a lower index ranks above (the documented, pessimistic rule).
    const int64_t t1[2] = {0, 1};
    const float s_i2t[4] = {0.5f, 0.5f, 0.5f, 0.5f}, s_t2i[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    retrieval_recall(s_i2t, s_t2i, t1, 2, 2, &r);
    CHECK(r.tr[0] == 50.0 && r.ir[0] == 50.0 && r.tr[1] == 100.0);

    // An image without captions does not count in TR (but is a candidate in IR).
    const int64_t t2[2] = {0, 0};
    const float c_i2t[2 * 2] = {0.9f, 0.1f, 0.0f, 0.0f}, c_t2i[2 * 2] = {0.2f, 0.9f, 0.8f, 0.1f};
    retrieval_recall(c_i2t, c_t2i, t2, 2, 2, &r);
    CHECK(r.tr[0] == 100.0 && r.ir[0] == 50.0);
}

// Retrieval within groups: 6 images in 2 groups (0,1,2 | 3,4,5), 2 texts each (t -> t/2).
static void test_group_recall(void) {
    enum { NI = 6, NT = 12 };
    int64_t txt_img[NT];
    int group[NI] = {0, 0, 0, 1, 1, 1};
    for (int t = 0; t < NT; t++) txt_img[t] = t / 2;
    float i2t[NI * NT], t2i[NT * NI];
    GroupRecall g;
    // A scorer that knows only the group (the synthetic backgrounds): exactly chance.
    for (int i = 0; i < NI; i++)
        for (int t = 0; t < NT; t++) i2t[i * NT + t] = t2i[t * NI + i] = group[i] == group[txt_img[t]] ? 1.0f : 0.0f;
    retrieval_group_recall(i2t, t2i, txt_img, group, NI, NT, &g);
    CHECK(NEAR(g.chance_ir1, 100.0 / 3) && NEAR(g.chance_tr1, 100.0 / 3));
    CHECK(NEAR(g.ir1, g.chance_ir1) && NEAR(g.tr1, g.chance_tr1));
    // A perfect scorer: 100 (the other group's scores do not count, however high).
    for (int i = 0; i < NI; i++)
        for (int t = 0; t < NT; t++) {
            float v = txt_img[t] == i ? 2.0f : group[i] == group[txt_img[t]] ? 0.0f : 5.0f;
            i2t[i * NT + t] = t2i[t * NI + i] = v;
        }
    retrieval_group_recall(i2t, t2i, txt_img, group, NI, NT, &g);
    CHECK(g.ir1 == 100.0 && g.tr1 == 100.0);
    // Half of the texts point at the wrong image of their group: IR@1 50.
    for (int t = 1; t < NT; t += 2) {
        int wrong = group[txt_img[t]] * 3 + (int)(txt_img[t] + 1) % 3;
        t2i[t * NI + wrong] = 3.0f;
    }
    retrieval_group_recall(i2t, t2i, txt_img, group, NI, NT, &g);
    CHECK(NEAR(g.ir1, 50.0) && g.tr1 == 100.0);
}

static void test_iou(void) {
    const float a[4] = {0, 0, 10, 10};
    const float same[4] = {0, 0, 10, 10}, half[4] = {5, 0, 10, 10}, far[4] = {20, 20, 5, 5};
    const float edge[4] = {9, 0, 10, 10}, inside[4] = {2, 2, 4, 4};
    CHECK(NEAR(grounding_iou(a, same), 1.0));
    CHECK(NEAR(grounding_iou(a, half), 50.0 / 150.0));
    CHECK(grounding_iou(a, far) == 0.0);
    CHECK(grounding_iou(a, edge) == 0.0);  // ALBEF's strict inequality: one shared column is no overlap
    CHECK(NEAR(grounding_iou(a, inside), 16.0 / 100.0));
    CHECK(NEAR(grounding_iou(inside, a), 16.0 / 100.0));
    const float frac[4] = {0.5f, 0.5f, 10, 10};  // inter x 0.5..min(9, 9.5): (9 - 0.5 + 1)^2 = 90.25
    CHECK(NEAR(grounding_iou(a, frac), 90.25 / (200.0 - 90.25)));
    CHECK(grounding_iou(a, half) < 0.5 && grounding_iou(a, inside) < 0.5);
}

static void test_box_score(void) {
    const float heat[4 * 5] = {
        0, 0, 0, 0, 0,  //
        0, 1, 2, 0, 0,  //
        0, 3, 4, 0, 0,  //
        0, 0, 0, 0, 1,  //
    };
    const float A[4] = {1, 1, 2, 2}, frac[4] = {1.7f, 1.2f, 1.9f, 1.9f}, whole[4] = {0, 0, 5, 4};
    const float corner[4] = {4, 3, 3, 3}, flat[4] = {1, 1, 0, 3};
    CHECK(NEAR(grounding_box_score(heat, 4, 5, A, 0.5), 5.0));
    // int() truncation: columns 1..2 (int 1.7 = 1, int 3.6 = 3), rows 1..2; area 1.9 * 1.9
    CHECK(fabs(grounding_box_score(heat, 4, 5, frac, 0.5) - 10.0 / 1.9) < 1e-5);
    CHECK(NEAR(grounding_box_score(heat, 4, 5, whole, 0.5), 11.0 / sqrt(20.0)));
    CHECK(NEAR(grounding_box_score(heat, 4, 5, corner, 0.5), 1.0 / 3.0));  // clipped at the map edge
    CHECK(isinf(grounding_box_score(heat, 4, 5, flat, 0.5)));
    CHECK(NEAR(grounding_box_score(heat, 4, 5, A, 1.0), 2.5));
    const float boxes[5 * 4] = {0, 0, 5, 4, 4, 3, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2, 1, 1, 2, 2};
    // scores: 2.46, 0.33, 4.0 (heat[2][2] alone), 5.0, 5.0 (a tie: the first wins)
    CHECK(grounding_best_box(heat, 4, 5, boxes, 5, 0.5) == 3);
    CHECK(grounding_best_box(heat, 4, 5, boxes, 3, 0.5) == 2);
    CHECK(grounding_best_box(heat, 4, 5, boxes, 0, 0.5) == -1);
    // with alpha 1 (mean heat) the single hot pixel wins
    CHECK(grounding_best_box(heat, 4, 5, boxes, 5, 1.0) == 2);
}

static void test_negatives(void) {
    // ids: samples 0,1 share an image, 2,3 share one, 4 alone. Similarities favour the same image.
    const int64_t ids[5] = {7, 7, 9, 9, 3};
    float sims[5 * 8];
    for (int b = 0; b < 5; b++)
        for (int j = 0; j < 8; j++) sims[b * 8 + j] = ids[b] == (j < 5 ? ids[j] : -1) ? 50.0f : (float)j;
    int32_t neg[5];
    double scratch[5];
    Rng r;
    rng_seed(&r, 11);
    int counts[5][5] = {{0}};
    for (int it = 0; it < 2000; it++) {
        retrieval_hard_negatives(&r, sims, 8, ids, 5, neg, scratch);
        for (int b = 0; b < 5; b++) {
            CHECK(neg[b] >= 0 && neg[b] < 5 && ids[neg[b]] != ids[b]);
            counts[b][neg[b]]++;
        }
    }
    // sample 0 (id 7): candidates 2, 3, 4 with weights e^2, e^3, e^4 -> 4 is the most frequent
    CHECK(counts[0][4] > counts[0][3] && counts[0][3] > counts[0][2] && counts[0][2] > 0);
    // all one image: uniform over j != b
    const int64_t same[3] = {1, 1, 1};
    float s3[9] = {0};
    for (int it = 0; it < 50; it++) {
        retrieval_hard_negatives(&r, s3, 3, same, 3, neg, scratch);
        for (int b = 0; b < 3; b++) CHECK(neg[b] != b && neg[b] >= 0 && neg[b] < 3);
    }
}

int main(void) {
    test_recall();
    test_group_recall();
    test_iou();
    test_box_score();
    test_negatives();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_retrieval_metrics: all checks passed\n");
    return 0;
}
