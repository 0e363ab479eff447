// validate.c: held-out validation losses during pre-training (validate.h).
#include "train/validate.h"

#include <stdio.h>
#include <string.h>

#include "engine/rng.h"
#include "train/watchdog.h"

// Salt of the validation random stream: the same masks and ITM negatives at every evaluation.
#define VAL_SEED_SALT 0x5a17da7e0f1e1d5bull

int validate_pretrain(Trainer *t, Loader *val, int64_t max_batches, ValLosses *out) {
    Model *m = t->m;
    const Dist *d = t->dist;
    memset(out, 0, sizeof(*out));
    // Evaluation semantics: no dropout. The model reads its config at every call.
    float hidden = m->cfg.hidden_dropout, attn = m->cfg.attn_dropout;
    m->cfg.hidden_dropout = 0.0f, m->cfg.attn_dropout = 0.0f;

    double sum[6] = {0};
    int64_t n = 0, k = 0;
    loader_seek(val, 0, 0);
    Batch *b;
    int r = 1;
    while ((max_batches == 0 || k < max_batches) && (r = loader_next(val, &b)) == 1) {
        if (b->B != t->step.B) continue;  // a short last batch of the pass
        watchdog_phase(t->wd, "validation", t->step_count);  // one batch at a time
        Rng rng;
        rng_seed_stream(&rng, t->opt.seed ^ VAL_SEED_SALT, (uint64_t)d->rank, (uint64_t)k);
        Losses l;
        pretrain_step(&t->step, m, b, 0.0f, &rng, NULL, &l);
        const double v[6] = {l.itc, l.itm, l.mlm, l.rmim, l.ifr, l.total};
        for (int i = 0; i < 6; i++) sum[i] += v[i];
        n++, k++;
    }
    m->cfg.hidden_dropout = hidden, m->cfg.attn_dropout = attn;
    m->dev.ops->mem_zero(m->dev.grad, m->params.total * sizeof(float));  // the step accumulated into them

    if (r < 0) fprintf(stderr, "vlmae pretrain (rank %d): validation data: %s\n", d->rank, loader_error(val));
    if (dist_any(d, r < 0)) return -2;
    double total_n = dist_sum(d, (double)n);
    for (int i = 0; i < 6; i++) sum[i] = dist_sum(d, sum[i]);
    out->batches = (int64_t)total_n;
    if (total_n < 1) return -1;
    out->itc = sum[0] / total_n, out->itm = sum[1] / total_n, out->mlm = sum[2] / total_n;
    out->rmim = sum[3] / total_n, out->ifr = sum[4] / total_n, out->total = sum[5] / total_n;
    return 0;
}
