// trainer.c: one data-parallel optimizer step of pre-training (see trainer.h).
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void trainer_init(Trainer *t, Model *m, const Dist *d, const TrainerOptions *o, const Batch *shape) {
    memset(t, 0, sizeof(*t));
    t->m = m, t->dist = d, t->opt = *o;
    int Q = m->cfg.queue_size, n = shape->B * d->world;
    if (Q % n != 0) {
        die("queue_size %d is not a multiple of batch_size x world = %d x %d = %d (try queue_size %d)",
            Q, shape->B, d->world, n, (Q / n + 1) * n);
    }
    step_create(&t->step, m, shape);
    adamw_init(&t->adam, &m->params, o->beta1, o->beta2, o->eps, o->weight_decay);
    size_t g = (size_t)n * m->cfg.embed_dim;
    t->gather_img = mallocCheck(g * sizeof(float));
    t->gather_txt = mallocCheck(g * sizeof(float));
}

void trainer_free(Trainer *t) {
    step_free(&t->step);
    adamw_free(&t->adam);
    free(t->gather_img), free(t->gather_txt);
    memset(t, 0, sizeof(*t));
}

static int all_finite(const float *x, size_t n) {
    int ok = 1;
#pragma omp parallel for reduction(&& : ok)
    for (size_t i = 0; i < n; i++) ok = ok && isfinite(x[i]);
    return ok;
}

// Names the first non-finite value of this rank (loss or parameter gradient) into what.
static int check_finite(Trainer *t, const Losses *l, char *what, size_t n) {
    const float v[5] = {l->itc, l->itm, l->mlm, l->rmim, l->ifr};
    const char *names[5] = {"itc", "itm", "mlm", "rmim", "ifr"};
    for (int i = 0; i < 5; i++)
        if (!isfinite(v[i])) return snprintf(what, n, "loss %s = %g", names[i], v[i]), 0;
    const ParamSet *ps = &t->m->params;
    if (all_finite(ps->grad, ps->total) && all_finite(t->step.img_m, (size_t)t->step.B * t->m->cfg.embed_dim) &&
        all_finite(t->step.txt_m, (size_t)t->step.B * t->m->cfg.embed_dim))
        return 1;
    for (int i = 0; i < ps->count; i++)
        if (!all_finite(ps->grad + ps->p[i].offset, ps->p[i].n))
            return snprintf(what, n, "gradient of %s", ps->p[i].name), 0;
    return snprintf(what, n, "momentum features"), 0;
}

// TEST HOOK (tests/test_faults.sh; inert unless the variable is set): VLMAE_TEST_NAN_STEP=N makes
// step N (1-based, as logged) non-finite on rank VLMAE_TEST_NAN_RANK (default 0): the first value
// of that rank's local gradient becomes NaN before the all-reduce, or with VLMAE_TEST_NAN_WHAT=loss
// its itc loss does. It exercises the non-finite guard end to end; never set it in production.
static void test_nan_hook(Trainer *t, Losses *out) {
    static int64_t step = -2;
    static int rank = 0, loss = 0;
    if (step == -2) {
        const char *s = getenv("VLMAE_TEST_NAN_STEP"), *r = getenv("VLMAE_TEST_NAN_RANK");
        const char *w = getenv("VLMAE_TEST_NAN_WHAT");
        step = s && *s ? atoll(s) : -1;
        rank = r && *r ? atoi(r) : 0;
        loss = w && !strcmp(w, "loss");
    }
    if (step < 0 || t->step_count + 1 != step || t->dist->rank != rank) return;
    if (loss) out->itc = NAN;
    else t->m->params.grad[0] = NAN;
    fprintf(stderr, "vlmae: TEST HOOK VLMAE_TEST_NAN_STEP: %s%s set to NaN on rank %d at step %lld\n",
            loss ? "loss itc" : "a gradient value of ", loss ? "" : t->m->params.p[0].name, rank, (long long)step);
}

int trainer_step(Trainer *t, const Batch *batch, Losses *out) {
    Model *m = t->m;
    const Dist *d = t->dist;
    int64_t s = t->step_count;
    float alpha = t->opt.alpha;
    if (t->opt.alpha_ramp_steps > 0 && s < t->opt.alpha_ramp_steps)
        alpha *= (float)s / (float)t->opt.alpha_ramp_steps;  // ALBEF: alpha * min(1, i / len(loader))
    t->last_alpha = alpha;

    model_clamp_temp(m);
    model_momentum_update(m, m->cfg.momentum);
    params_zero_grad(&m->params);
    Rng rng;  // this step's random choices: a pure function of (seed, rank, step) => exact resume
    rng_seed_stream(&rng, t->opt.seed, (uint64_t)d->rank, (uint64_t)s);
    pretrain_step(&t->step, m, batch, alpha, &rng, NULL, out);
    test_nan_hook(t, out);
    dist_allreduce_mean(d, m->params.grad, m->params.total);

    // Losses are per rank; the guard looks at the averaged gradients and every rank's losses.
    t->nonfinite_what[0] = 0;
    int bad = !check_finite(t, out, t->nonfinite_what, sizeof(t->nonfinite_what));
    if (dist_any(d, bad)) {
        // Rare path: every rank reports the value found by the lowest rank that saw one, and where.
        float mine = (float)bad, *all = mallocCheck((size_t)d->world * sizeof(float));
        dist_allgather(d, &mine, all, 1);
        int first = -1, count = 0;
        for (int r = 0; r < d->world; r++)
            if (all[r] != 0.0f) count++, first = first < 0 ? r : first;
        free(all);
        if (first < 0) first = 0;  // (not reached: some rank voted bad)
        dist_bcast_bytes(d, t->nonfinite_what, sizeof(t->nonfinite_what), first);
        size_t k = strlen(t->nonfinite_what), left = sizeof(t->nonfinite_what) - k;
        if (d->world > 1 && count == d->world) snprintf(t->nonfinite_what + k, left, " (on all %d ranks)", d->world);
        else if (d->world > 1)
            snprintf(t->nonfinite_what + k, left, " (on rank %d%s of %d)", first, count > 1 ? " and others" : "", d->world);
        if (t->opt.nonfinite == NONFINITE_STOP) return -1;
        t->skipped++;
        t->step_count++;  // the schedule moves on; parameters, queue and AdamW state do not
        return 1;
    }

    // Queue: this step's momentum features of every rank, in rank order.
    size_t n = (size_t)t->step.B * m->cfg.embed_dim;
    dist_allgather(d, t->step.img_m, t->gather_img, n);
    dist_allgather(d, t->step.txt_m, t->gather_txt, n);
    model_enqueue(m, t->gather_img, t->gather_txt, t->step.B * d->world);

    t->last_lr = lr_at(&t->opt.lr, s);
    adamw_step(&t->adam, &m->params, t->last_lr);
    t->step_count++;
    return 0;
}
