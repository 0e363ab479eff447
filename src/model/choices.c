// choices.c: host-side random choices and targets of a pre-training step (see choices.h).
#include "model/choices.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

typedef struct {
    float key;
    int32_t idx;
} KeyIdx;

static int cmp_key(const void *a, const void *b) {
    const KeyIdx *x = a, *y = b;
    if (x->key < y->key) return -1;
    if (x->key > y->key) return 1;
    return x->idx - y->idx;
}

void choose_patch_mask(Rng *r, int B, int N, int K, int32_t *ids_keep, int32_t *ids_restore,
                       void *scratch) {
    KeyIdx *kv = scratch;
    for (int b = 0; b < B; b++) {
        for (int n = 0; n < N; n++) {
            kv[n].key = K == N ? (float)n : rng_uniform_f(r);
            kv[n].idx = n;
        }
        qsort(kv, (size_t)N, sizeof(KeyIdx), cmp_key);  // ids_shuffle
        for (int k = 0; k < K; k++) ids_keep[b * K + k] = kv[k].idx;
        for (int s = 0; s < N; s++) ids_restore[b * N + kv[s].idx] = s;
    }
}

void choose_mlm_mask(Rng *r, const ModelConfig *c, const int32_t *ids, int B, int T,
                     int32_t *mlm_ids, int32_t *labels, int worst_case) {
    for (int i = 0; i < B * T; i++) {
        int id = ids[i];
        mlm_ids[i] = id;
        labels[i] = -100;
        if (id == c->pad_id || id == c->cls_id) continue;
        if (!worst_case && !(rng_uniform_f(r) < c->mlm_prob)) continue;
        labels[i] = id;
        float u = rng_uniform_f(r);
        if (u < 0.8f) mlm_ids[i] = c->mask_id;
        else if (u < 0.9f) mlm_ids[i] = (int32_t)rng_randint(r, c->vocab_size);
    }
}

void choose_hard_negatives(Rng *r, const float *sims, int ld, int B, int32_t *neg, double *w) {
    if (B < 2) die("ITM hard negatives need at least 2 samples per rank, got %d", B);
    for (int b = 0; b < B; b++) {
        const float *s = sims + (size_t)b * ld;
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < B; j++)
            if (j != b && s[j] > mx) mx = s[j];
        for (int j = 0; j < B; j++) {
            w[j] = j == b ? 0.0 : exp((double)s[j] - mx);
            sum += w[j];
        }
        int pick = -1;
        if (sum > 0.0 && isfinite(sum)) {
            double u = rng_uniform(r) * sum, acc = 0.0;
            for (int j = 0; j < B && pick < 0; j++) {
                acc += w[j];
                if (w[j] > 0.0 && u < acc) pick = j;
            }
            for (int j = B - 1; j >= 0 && pick < 0; j--)  // rounding at the top end
                if (w[j] > 0.0) pick = j;
        }
        if (pick < 0) {  // weights vanished: uniform over j != b
            pick = (int)rng_randint(r, B - 1);
            if (pick >= b) pick++;
        }
        neg[b] = pick;
    }
}

void choose_region(const float *box, int B, int grid, int regional, float *region) {
    int N = grid * grid;
    for (int b = 0; b < B; b++) {
        const float *bx = box ? box + 4 * b : NULL;
        int whole = !regional || !bx || isnan(bx[0]) || isnan(bx[1]) || isnan(bx[2]) || isnan(bx[3]);
        for (int i = 0; i < grid; i++) {
            for (int j = 0; j < grid; j++) {
                float cx = (j + 0.5f) / grid, cy = (i + 0.5f) / grid;
                int in = whole || (cx >= bx[0] && cx <= bx[0] + bx[2] && cy >= bx[1] && cy <= bx[1] + bx[3]);
                region[b * N + i * grid + j] = in ? 1.0f : 0.0f;
            }
        }
    }
}

void patchify_conv(const float *image, int B, int H, int p, float *out) {
    int gh = H / p, N = gh * gh, P = 3 * p * p;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            int i = n / gh, j = n % gh;
            float *o = out + ((size_t)b * N + n) * P;
            for (int c = 0; c < 3; c++)
                for (int r = 0; r < p; r++)
                    for (int s = 0; s < p; s++)
                        o[(c * p + r) * p + s] = image[(((size_t)b * 3 + c) * H + i * p + r) * H + j * p + s];
        }
}

void patchify_mae(const float *image, int B, int H, int p, float *out) {
    int gh = H / p, N = gh * gh, P = 3 * p * p;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            int i = n / gh, j = n % gh;
            float *o = out + ((size_t)b * N + n) * P;
            for (int r = 0; r < p; r++)
                for (int s = 0; s < p; s++)
                    for (int c = 0; c < 3; c++)
                        o[(r * p + s) * 3 + c] = image[(((size_t)b * 3 + c) * H + i * p + r) * H + j * p + s];
        }
}

void normalize_patches(float *t, int rows, int P) {
#pragma omp parallel for
    for (int r = 0; r < rows; r++) {
        float *x = t + (size_t)r * P;
        double mean = 0.0, var = 0.0;
        for (int k = 0; k < P; k++) mean += x[k];
        mean /= P;
        for (int k = 0; k < P; k++) var += (x[k] - mean) * (x[k] - mean);
        var /= (P > 1 ? P - 1 : 1);
        float inv = (float)(1.0 / sqrt(var + 1e-6));
        for (int k = 0; k < P; k++) x[k] = (float)((x[k] - mean) * inv);
    }
}
