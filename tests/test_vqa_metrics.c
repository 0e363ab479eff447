// test_vqa_metrics.c: the VQA task's pure pieces on hand-made cases -- the answer table format,
// VQA accuracy (official leave-one-out formula for ten annotators, the small-N rule otherwise),
// ALBEF's candidate ranking (first-token top-k, then log p_first - summed sequence loss) on a
// hand-made answer distribution -- and the shard format's optional task tables (labels, second
// images, answers, proposals, ids): a round trip, and a shard without them reads as before.
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/shard.h"
#include "tasks/vqa.h"

#include "check.h"

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) < 1e-6)

// answers: "text:count" words, e.g. "yes:3 no:7"
static void make_gt(VqaAnswers *g, const char *spec) {
    char buf[512], block[1024] = "";
    snprintf(buf, sizeof(buf), "%s", spec);
    int total = 0;
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) total += atoi(strchr(tok, ':') + 1);
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *c = strchr(tok, ':');
        *c = 0;
        int n = atoi(c + 1);
        char line[128];
        snprintf(line, sizeof(line), "%s\t%g\t%d\n", tok, (double)n / total, n);
        strcat(block, line);
    }
    CHECK(vqa_parse_answers(block, g) > 0);
}

static void test_parse(void) {
    VqaAnswers a;
    CHECK(vqa_parse_answers("yes\t0.7\t7\nno\t0.3\t3\n", &a) == 2);
    CHECK(!strcmp(a.text[0], "yes") && !strcmp(a.text[1], "no"));
    CHECK(NEAR(a.weight[0], 0.7f) && NEAR(a.weight[1], 0.3f));
    CHECK(a.count[0] == 7 && a.count[1] == 3);
    CHECK(vqa_parse_answers("two words\t0.5\n", &a) == 1);  // no count: 1
    CHECK(!strcmp(a.text[0], "two words") && NEAR(a.weight[0], 0.5f) && a.count[0] == 1);
    CHECK(vqa_parse_answers("", &a) == 0);
    CHECK(vqa_parse_answers(NULL, &a) == 0);
}

static void test_accuracy(void) {
    VqaAnswers g;
    // ten annotators: the official mean over the ten leave-one-out subsets of min(1, matches/3)
    make_gt(&g, "yes:3 no:7");
    CHECK(NEAR(vqa_accuracy("yes", &g), (7 * 1.0 + 3 * (2.0 / 3)) / 10));  // 0.9
    CHECK(NEAR(vqa_accuracy("no", &g), 1.0));
    CHECK(NEAR(vqa_accuracy("maybe", &g), 0.0));
    make_gt(&g, "red:1 blue:9");
    CHECK(NEAR(vqa_accuracy("red", &g), 0.3));  // nine subsets with it (1/3), one without
    make_gt(&g, "red:2 blue:8");
    CHECK(NEAR(vqa_accuracy("red", &g), 0.6));  // 8 x 2/3 + 2 x 1/3, over 10
    make_gt(&g, "2:4 3:6");
    CHECK(NEAR(vqa_accuracy("2", &g), 1.0));  // every subset keeps >= 3 matches
    // fewer annotators: min(1, matches / min(3, N)); one answer = exact match
    make_gt(&g, "circle:1");
    CHECK(NEAR(vqa_accuracy("circle", &g), 1.0));
    CHECK(NEAR(vqa_accuracy(" Circle ", &g), 1.0));  // lower-cased, trimmed
    CHECK(NEAR(vqa_accuracy("square", &g), 0.0));
    make_gt(&g, "a:1 b:1");
    CHECK(NEAR(vqa_accuracy("a", &g), 0.5));
    make_gt(&g, "a:2 b:3");
    CHECK(NEAR(vqa_accuracy("a", &g), 2.0 / 3));
    CHECK(NEAR(vqa_accuracy("b", &g), 1.0));
}

// A hand-made answer distribution: candidate c has first-token probability p1[c] and the rest of
// its sequence (the [SEP]) probability p2[c]. ALBEF's decoder loss of the whole answer is
// -log p1 - log p2, and the re-ranking score is log p1 - loss = 2 log p1 + log p2.
static void test_ranking(void) {
    int ids[8];
    const float tie[4] = {0.2f, 0.5f, 0.5f, 0.1f};
    CHECK(vqa_topk(tie, 4, 2, ids) == 2 && ids[0] == 1 && ids[1] == 2);  // ties: lower index first
    CHECK(vqa_topk(tie, 4, 9, ids) == 4 && ids[2] == 0 && ids[3] == 3);  // k > n: all, sorted

    const int n = 5;
    //                 A     B     C     D     E
    const float p1[5] = {0.40f, 0.30f, 0.20f, 0.06f, 0.04f};
    const float p2[5] = {0.20f, 0.90f, 0.99f, 0.99f, 0.99f};
    float ptop[5], loss[5];
    // full pipeline for k = 3: top-3 by p1 = A, B, C; scores 2 ln p1 + ln p2: A -3.44, B -2.51,
    // C -3.23 -> B
    int k = vqa_topk(p1, n, 3, ids);
    CHECK(k == 3 && ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
    for (int r = 0; r < k; r++) ptop[r] = p1[ids[r]], loss[r] = -logf(p1[ids[r]]) - logf(p2[ids[r]]);
    CHECK(ids[vqa_rerank(ptop, loss, k)] == 1);
    // k = 1: only the first-token favourite is considered
    k = vqa_topk(p1, n, 1, ids);
    for (int r = 0; r < k; r++) ptop[r] = p1[ids[r]], loss[r] = -logf(p1[ids[r]]) - logf(p2[ids[r]]);
    CHECK(k == 1 && ids[vqa_rerank(ptop, loss, k)] == 0);
    // ALBEF counts the first token twice: E (p1 .45, p2 .30; likelihood .135) beats F (p1 .25,
    // p2 .90; likelihood .225): 2 ln .45 + ln .3 = -2.80 > 2 ln .25 + ln .9 = -2.88
    const float pe[2] = {0.45f, 0.25f}, le[2] = {-logf(0.45f) - logf(0.30f), -logf(0.25f) - logf(0.90f)};
    CHECK(vqa_rerank(pe, le, 2) == 0);
    // equal scores: the earlier (higher first-token probability) wins
    const float pq[2] = {0.5f, 0.5f}, lq[2] = {1.0f, 1.0f};
    CHECK(vqa_rerank(pq, lq, 2) == 0);
}

static void test_shard_tables(const char *dir) {
    char path[512], plain[512], err[512];
    snprintf(path, sizeof(path), "%s/tasks.h5", dir);
    snprintf(plain, sizeof(plain), "%s/plain.h5", dir);
    const uint8_t bytes[3] = {1, 2, 3};
    ShardWriter *w = shard_writer_open(path, "task", 0, err, sizeof(err));
    CHECK(w != NULL);
    if (!w) return;
    for (int i = 0; i < 3; i++) CHECK(shard_writer_add_image(w, bytes, 3, 10, 20, "k", err, sizeof(err)) == i);
    const float box[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    const float props[8] = {0.0f, 0.0f, 0.5f, 0.5f, 0.25f, 0.25f, 0.5f, 0.5f};
    // text 0: label + key
    CHECK(shard_writer_add_text(w, 0, "a statement", 11, NULL, err, sizeof(err)) == 0);
    ShardTextExtra e = {0};
    e.has_label = 1, e.label = 2, e.key = "17";
    CHECK(shard_writer_set_extra(w, 0, &e, err, sizeof(err)) == 0);
    // text 1: answers + second image + label 0
    CHECK(shard_writer_add_text(w, 1, "what color", 10, NULL, err, sizeof(err)) == 1);
    memset(&e, 0, sizeof(e));
    e.has_image2 = 1, e.image2 = 2, e.has_label = 1, e.label = 0;
    e.answers = "red\t0.7\t7\nblue\t0.3\t3\n", e.answers_len = strlen(e.answers);
    CHECK(shard_writer_set_extra(w, 0, &e, err, sizeof(err)) < 0);  // not the last text
    CHECK(shard_writer_set_extra(w, 1, &e, err, sizeof(err)) == 0);
    // text 2: a box and two proposals; text 3: nothing
    CHECK(shard_writer_add_text(w, 2, "the cat", 7, box, err, sizeof(err)) == 2);
    memset(&e, 0, sizeof(e));
    e.proposals = props, e.n_proposals = 2, e.key = "ref-9";
    CHECK(shard_writer_set_extra(w, 2, &e, err, sizeof(err)) == 0);
    memset(&e, 0, sizeof(e));
    e.has_image2 = 1, e.image2 = 3;  // no such image
    CHECK(shard_writer_set_extra(w, 2, &e, err, sizeof(err)) < 0);
    CHECK(shard_writer_add_text(w, 0, "plain", 5, NULL, err, sizeof(err)) == 3);
    CHECK(shard_writer_finish(w, err, sizeof(err)) == 0);

    Shard *s = shard_open(path, err, sizeof(err));
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(shard_num_texts(s) == 4 && shard_num_images(s) == 3);
    CHECK(shard_has_labels(s) && shard_has_image2(s) && shard_has_answers(s) && shard_has_proposals(s) &&
          shard_has_text_keys(s));
    CHECK(shard_text_label(s, 0) == 2 && shard_text_label(s, 1) == 0 && shard_text_label(s, 2) == -1 &&
          shard_text_label(s, 3) == -1);
    CHECK(shard_text_image2(s, 0) == -1 && shard_text_image2(s, 1) == 2 && shard_text_image2(s, 3) == -1);
    size_t len = 99;
    CHECK(!strcmp(shard_text_answers(s, 0, &len), "") && len == 0);
    CHECK(!strcmp(shard_text_answers(s, 1, &len), "red\t0.7\t7\nblue\t0.3\t3\n") && len == 21);
    CHECK(!strcmp(shard_text_answers(s, 3, NULL), ""));
    VqaAnswers a;
    CHECK(vqa_parse_answers(shard_text_answers(s, 1, NULL), &a) == 2 && a.count[0] == 7 && !strcmp(a.text[1], "blue"));
    const float *pb = NULL;
    CHECK(shard_text_proposals(s, 0, &pb) == 0);
    CHECK(shard_text_proposals(s, 2, &pb) == 2 && pb && pb[4] == 0.25f && pb[7] == 0.5f);
    CHECK(shard_text_proposals(s, 3, &pb) == 0);
    float b[4];
    shard_text_box(s, 2, b);
    CHECK(b[0] == 0.1f && b[3] == 0.4f);
    CHECK(!strcmp(shard_text_key(s, 0), "17") && !strcmp(shard_text_key(s, 1), "") &&
          !strcmp(shard_text_key(s, 2), "ref-9"));
    CHECK(!strcmp(shard_text_caption(s, 1, NULL), "what color"));
    shard_close(s);

    // Only some tables: labels alone (the VE shape); the others read as absent.
    w = shard_writer_open(plain, "ve", 0, err, sizeof(err));
    CHECK(w != NULL);
    if (!w) return;
    CHECK(shard_writer_add_image(w, bytes, 3, 10, 20, "k", err, sizeof(err)) == 0);
    CHECK(shard_writer_add_text(w, 0, "x", 1, NULL, err, sizeof(err)) == 0);
    CHECK(shard_writer_add_text(w, 0, "y", 1, NULL, err, sizeof(err)) == 1);
    memset(&e, 0, sizeof(e));
    e.has_label = 1, e.label = 1;
    CHECK(shard_writer_set_extra(w, 1, &e, err, sizeof(err)) == 0);
    CHECK(shard_writer_finish(w, err, sizeof(err)) == 0);
    s = shard_open(plain, err, sizeof(err));
    CHECK(s != NULL);
    if (s) {
        CHECK(shard_has_labels(s) && !shard_has_image2(s) && !shard_has_answers(s) && !shard_has_proposals(s) &&
              !shard_has_text_keys(s));
        CHECK(shard_text_label(s, 0) == -1 && shard_text_label(s, 1) == 1);
        CHECK(shard_text_image2(s, 1) == -1 && !strcmp(shard_text_answers(s, 1, NULL), "") &&
              shard_text_proposals(s, 1, NULL) == 0 && !strcmp(shard_text_key(s, 1), ""));
        shard_close(s);
    }
    // A v1 shard without any task table (what every pre-training pack writes).
    w = shard_writer_open(plain, "coco", 0, err, sizeof(err));
    CHECK(w != NULL);
    if (!w) return;
    CHECK(shard_writer_add_image(w, bytes, 3, 10, 20, "k", err, sizeof(err)) == 0);
    CHECK(shard_writer_add_text(w, 0, "a caption", 9, NULL, err, sizeof(err)) == 0);
    CHECK(shard_writer_finish(w, err, sizeof(err)) == 0);
    s = shard_open(plain, err, sizeof(err));
    CHECK(s != NULL);
    if (s) {
        CHECK(!shard_has_labels(s) && !shard_has_image2(s) && !shard_has_answers(s) && !shard_has_proposals(s) &&
              !shard_has_text_keys(s));
        CHECK(shard_text_label(s, 0) == -1 && shard_text_image2(s, 0) == -1);
        shard_close(s);
    }
    unlink(path);
    unlink(plain);
}

int main(void) {
    char dir[] = "/tmp/vlmae_vqa_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_parse();
    test_accuracy();
    test_ranking();
    test_shard_tables(dir);
    rmdir(dir);
    if (failures) {
        fprintf(stderr, "test_vqa_metrics: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_vqa_metrics: all checks passed\n");
    return 0;
}
