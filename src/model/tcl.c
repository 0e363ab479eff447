// tcl.c: TCL's intra-modal contrastive and local mutual-information terms (see tcl.h), written
// from the TCL paper and its public code (uta-smile/TCL, models/model_pretrain.py).
#include "model/tcl.h"

#include <math.h>
#include <string.h>

#include "engine/common.h"

#define MASKED (-10000.0f)  // TCL's additive "minus infinity" (exp underflows to 0 in fp32)

static int region_side(const ModelConfig *c, int *cell) {
    int g = c->image_size / c->patch_size;
    int k = (int)floor(sqrt((double)g));
    if (k < 1) k = 1;
    while ((k + 1) * (k + 1) <= g) k++;  // floor(sqrt(g)) without rounding surprises
    while (k * k > g) k--;
    *cell = k;
    return g / k;
}

int tcl_num_regions(const ModelConfig *c) {
    int cell, side = region_side(c, &cell);
    return side * side;
}

// Cross-entropy against the diagonal of img . keys^T / temp (hard targets).
static Tensor *intra_modal(Graph *g, const Model *m, Tensor *feat, Tensor *keys, int B) {
    int32_t *diag = g_host_alloc(g, (size_t)B * sizeof(int32_t));
    for (int b = 0; b < B; b++) diag[b] = b;
    Tensor *sim = g_div_scalar(g, g_linear(g, feat, keys, NULL), m->temp);  // (B, B+Q)
    return g_xent(g, sim, diag, NULL, 0.0f);
}

// TCL's in-batch global-to-local loss of one modality: feat (B,E) online global features, locals
// (B*nl,E) momentum local features, valid (B*nl) 1 = a real local. Appends one cross-entropy per
// sample that has locals to out->part with its share of the loss; returns the loss value.
static float global_to_local(Graph *g, const Model *m, Tensor *feat, Tensor *locals,
                             const uint8_t *valid, int B, int nl, TclTerms *out) {
    int R = B * nl;
    Tensor *sim = g_div_scalar(g, g_linear(g, feat, locals, NULL), m->temp);  // (B, B*nl)
    int32_t *rows = g_host_alloc(g, (size_t)R * sizeof(int32_t));
    int32_t *labels = g_host_alloc(g, (size_t)R * sizeof(int32_t));
    for (int r = 0; r < R; r++) rows[r] = r / nl, labels[r] = r;
    Tensor *rep = g_gather_rows(g, sim, R, rows, R);  // row (i,k) = sims of sample i's global
    // Row (i,k): column (i,k) is the positive; the other locals of sample i and every padding
    // local are masked out. A padding row gets its positive lifted by 10000 instead (TCL's u_p
    // for padding): its cross-entropy and gradient are then exactly 0.
    float *mask = g_host_alloc(g, (size_t)R * R * sizeof(float));
    for (int r = 0; r < R; r++) {
        float *a = mask + (size_t)r * R;
        int i = r / nl;
        for (int c = 0; c < R; c++) a[c] = (c / nl == i || !valid[c]) ? MASKED : 0.0f;
        a[r] = valid[r] ? 0.0f : -MASKED;
    }
    Tensor *logits = g_add(g, rep, g_const(g, mask, R, R));
    int with_locals = 0;
    for (int i = 0; i < B; i++) {
        int n = 0;
        for (int k = 0; k < nl; k++) n += valid[i * nl + k] != 0;
        with_locals += n > 0;
    }
    float value = 0.0f;
    for (int i = 0; i < B; i++) {
        int n = 0;
        for (int k = 0; k < nl; k++) n += valid[i * nl + k] != 0;
        if (n == 0) continue;
        // mean over the nl rows (padding rows are 0) -> scale to the mean over the n locals
        Tensor *rows_i = g_view(g, logits, (size_t)i * nl * R, nl, R);
        Tensor *ce = g_xent(g, rows_i, labels + (size_t)i * nl, NULL, 0.0f);
        float share = (float)nl / (float)n / (float)with_locals;
        out->part[out->n_part] = ce;
        out->share[out->n_part++] = share;
        value += share * ce->data[0];
    }
    return value;
}

void tcl_terms(Graph *g, const Model *m, const TclInputs *in, TclTerms *out) {
    const ModelConfig *c = &m->cfg;
    int B = in->B, T = in->T, N = model_num_patches(c), C = c->vision_width, Ct = c->text_width;
    int E = c->embed_dim;
    memset(out, 0, sizeof(*out));
    out->part = g_host_alloc(g, (size_t)2 * B * sizeof(Tensor *));
    out->share = g_host_alloc(g, (size_t)2 * B * sizeof(float));

    // IMC: intra-modal contrast against [this batch's momentum features; queue], hard targets.
    out->i2i = intra_modal(g, m, in->img, in->keys_i, B);
    out->t2t = intra_modal(g, m, in->txt, in->keys_t, B);

    // LMI, image: projected + normalised momentum patch tokens, average-pooled into regions.
    int cell, side = region_side(c, &cell), nr = side * side, grid = c->image_size / c->patch_size;
    int32_t *pidx = g_host_alloc(g, (size_t)B * N * sizeof(int32_t));
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) pidx[b * N + n] = b * (1 + N) + 1 + n;
    Tensor *pt = g_gather_rows(g, in->v_hat, C, pidx, B * N);
    Tensor *pf = g_l2norm(g, g_linear(g, pt, m->mo.vision_proj.w, m->mo.vision_proj.b));  // (B*N,E)
    // Region (b, ri, rj) = mean of its cell x cell patches: one gather per offset (dy, dx) in the
    // cell, accumulated in patch order (constants: the momentum tower has no gradient).
    Tensor *il = g_tensor2(g, B * nr, E, 0);
    float *part = arena_alloc(g->arena, il->n * sizeof(float));
    int32_t *cidx = g_host_alloc(g, (size_t)B * nr * sizeof(int32_t));
    float count = (float)(cell * cell);
    g->ops->mem_zero(il->data, il->n * sizeof(float));
    for (int dy = 0; dy < cell; dy++)
        for (int dx = 0; dx < cell; dx++) {
            for (int b = 0; b < B; b++)
                for (int ri = 0; ri < side; ri++)
                    for (int rj = 0; rj < side; rj++)
                        cidx[(size_t)b * nr + ri * side + rj] = b * N + (ri * cell + dy) * grid + rj * cell + dx;
            g->ops->gather_rows_fwd(part, pf->data, g_ints(g, cidx, B * nr), B * nr, E);
            g->ops->acc(il->data, part, il->n);
        }
    g->ops->div_scalar_fwd(il->data, il->data, g_const(g, &count, 1, 1)->data, il->n);  // the mean
    uint8_t *ivalid = g_host_alloc(g, (size_t)B * nr);
    memset(ivalid, 1, (size_t)B * nr);
    out->lmi_img = global_to_local(g, m, in->img, il, ivalid, B, nr, out);
    out->n_img_parts = out->n_part;

    // LMI, text: projected + normalised momentum states of tokens 1..T-1; padding is no local.
    int nl = T - 1;
    if (nl < 1) return;
    int32_t *tidx = g_host_alloc(g, (size_t)B * nl * sizeof(int32_t));
    uint8_t *tvalid = g_host_alloc(g, (size_t)B * nl);
    for (int b = 0; b < B; b++)
        for (int t = 1; t < T; t++) {
            tidx[b * nl + t - 1] = b * T + t;
            tvalid[b * nl + t - 1] = in->text_mask[b * T + t] != 0;
        }
    Tensor *tt = g_gather_rows(g, in->w_hat, Ct, tidx, B * nl);
    Tensor *tl = g_l2norm(g, g_linear(g, tt, m->mo.text_proj.w, m->mo.text_proj.b));  // (B*nl,E)
    out->lmi_txt = global_to_local(g, m, in->txt, tl, tvalid, B, nl, out);
}

void tcl_seed(const TclTerms *t, float w) {
    if (t->i2i && t->i2i->grad) t->i2i->grad[0] = w;
    if (t->t2t && t->t2t->grad) t->t2t->grad[0] = w;
    for (int k = 0; k < t->n_part; k++)
        if (t->part[k]->grad) t->part[k]->grad[0] = w * t->share[k];
}
