// vqa_answers.c: the VQA task's pure pieces (vqa.h): a question's answer table from its shard
// block, the VQA accuracy of a prediction, and ALBEF's candidate ranking (top-k by first-token
// probability, then re-ranked by the whole answer's loss). The task itself is vqa.c.
#include "tasks/vqa.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

int vqa_parse_answers(const char *block, VqaAnswers *out) {
    out->n = 0;
    const char *p = block ? block : "";
    while (*p && out->n < VQA_MAX_ANSWERS) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *tab = memchr(p, '\t', len);
        size_t alen = tab ? (size_t)(tab - p) : len;
        if (alen > 0 || tab) {
            int k = out->n++;
            size_t c = alen < VQA_ANSWER_MAX - 1 ? alen : VQA_ANSWER_MAX - 1;
            memcpy(out->text[k], p, c);
            out->text[k][c] = 0;
            out->weight[k] = 1.0f;
            out->count[k] = 1;
            if (tab) {
                char buf[64];
                size_t rest = len - alen - 1;
                if (rest >= sizeof(buf)) rest = sizeof(buf) - 1;
                memcpy(buf, tab + 1, rest);
                buf[rest] = 0;
                char *end;
                double w = strtod(buf, &end);
                if (end != buf) out->weight[k] = (float)w;
                if (*end == '\t') {
                    long cnt = strtol(end + 1, NULL, 10);
                    if (cnt > 0) out->count[k] = (int)cnt;
                }
            }
        }
        p = nl ? nl + 1 : p + len;
    }
    return out->n;
}

// lower-case, trim spaces
static void norm_answer(const char *s, char *out, size_t cap) {
    while (*s == ' ') s++;
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) out[n++] = (char)tolower((unsigned char)*s);
    while (n > 0 && out[n - 1] == ' ') n--;
    out[n] = 0;
}

double vqa_accuracy(const char *pred, const VqaAnswers *gt) {
    char p[VQA_ANSWER_MAX], a[VQA_ANSWER_MAX];
    norm_answer(pred, p, sizeof(p));
    int N = 0, match = 0;
    for (int k = 0; k < gt->n; k++) {
        N += gt->count[k];
        norm_answer(gt->text[k], a, sizeof(a));
        if (!strcmp(a, p)) match += gt->count[k];
    }
    if (N <= 0) return 0.0;
    if (N >= 10) {
        // leave each annotator out once: N - match subsets keep all matches, match subsets one less
        double s = (double)(N - match) * fmin(1.0, match / 3.0) + (double)match * fmin(1.0, (match - 1) / 3.0);
        return s / N;
    }
    int need = N < 3 ? N : 3;
    return fmin(1.0, (double)match / need);
}

int vqa_topk(const float *p, int n, int k, int *ids) {
    if (k > n) k = n;
    // selection by repeated scans is O(n k); n is a few thousand at most (3,192 for VQA v2)
    unsigned char *used = callocCheck((size_t)n, 1);
    for (int r = 0; r < k; r++) {
        int best = -1;
        for (int a = 0; a < n; a++)
            if (!used[a] && (best < 0 || p[a] > p[best])) best = a;
        used[best] = 1;
        ids[r] = best;
    }
    free(used);
    return k;
}

int vqa_rerank(const float *p_first, const float *seq_loss, int k) {
    int best = 0;
    double bs = -INFINITY;
    for (int r = 0; r < k; r++) {
        double s = log(fmax((double)p_first[r], 1e-30)) - (double)seq_loss[r];
        if (r == 0 || s > bs) bs = s, best = r;
    }
    return best;
}
