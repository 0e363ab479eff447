// trainer.c: one data-parallel optimizer step of pre-training (see trainer.h).
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "engine/common.h"
#include "train/watchdog.h"
#if VLMAE_HAVE_NCCL
#include "nccl_dist.h"
#endif

// Gradient all-reduce bucket for NCCL (values): 2^24 floats = 64 MiB.
#define NCCL_BUCKET ((size_t)1 << 24)

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
    adamw_use_backend(&t->adam, m->dev.ops);
#if VLMAE_HAVE_NCCL
    if (d->world > 1 && !m->dev.ops->host_memory && !strcmp(m->dev.ops->name, "cuda") && nccl_dist_available()) {
        char id[NCCL_DIST_ID_BYTES] = {0};
        if (d->rank == 0) nccl_dist_unique_id(id);
        dist_bcast_bytes(d, id, sizeof(id), 0);
        t->nccl = nccl_dist_create(id, d->rank, d->world);
    }
#endif
    size_t g = (size_t)n * m->cfg.embed_dim;
    t->gather_img = mallocCheck(g * sizeof(float));
    t->gather_txt = mallocCheck(g * sizeof(float));
}

void trainer_free(Trainer *t) {
#if VLMAE_HAVE_NCCL
    if (t->nccl) nccl_dist_destroy(t->nccl);
#endif
    step_free(&t->step);
    adamw_free(&t->adam);
    free(t->gather_img), free(t->gather_txt);
    memset(t, 0, sizeof(*t));
}

int trainer_comm_error(void *trainer, char *msg, size_t n) {
    const Trainer *t = trainer;
#if VLMAE_HAVE_NCCL
    if (t->nccl) return nccl_dist_async_error(t->nccl, msg, n);
#endif
    (void)t, (void)msg, (void)n;
    return 0;
}

void trainer_to_host(Trainer *t) {
    model_to_host(t->m);
    adamw_to_host(&t->adam);
}

void trainer_to_device(Trainer *t) {
    model_to_device(t->m);
    adamw_to_device(&t->adam);
}

// Names the first non-finite value of this rank (loss or parameter gradient) into what. The
// gradients are checked where they live (the backend's all_finite); the features are on the host.
static int check_finite(Trainer *t, const Losses *l, char *what, size_t n) {
    const float v[5] = {l->itc, l->itm, l->mlm, l->rmim, l->ifr};
    const char *names[5] = {"itc", "itm", "mlm", "rmim", "ifr"};
    for (int i = 0; i < 5; i++)
        if (!isfinite(v[i])) return snprintf(what, n, "loss %s = %g", names[i], v[i]), 0;
    const ParamSet *ps = &t->m->params;
    const ModelDevice *dv = &t->m->dev;
    const Ops *host = &ops_cpu;
    size_t fe = (size_t)t->step.B * t->m->cfg.embed_dim;
    if (dv->ops->all_finite(dv->grad, ps->total) && host->all_finite(t->step.img_m, fe) &&
        host->all_finite(t->step.txt_m, fe))
        return 1;
    for (int i = 0; i < ps->count; i++)
        if (!dv->ops->all_finite(dv->grad + ps->p[i].offset, ps->p[i].n))
            return snprintf(what, n, "gradient of %s", ps->p[i].name), 0;
    return snprintf(what, n, "momentum features"), 0;
}

// Mean of the gradients over ranks, where they live.
static void allreduce_grads(Trainer *t) {
    const Dist *d = t->dist;
    const ModelDevice *dv = &t->m->dev;
    size_t n = t->m->params.total;
    if (d->world == 1) return;
    if (dv->ops->host_memory) {
        dist_allreduce_mean(d, dv->grad, n);
        return;
    }
#if VLMAE_HAVE_NCCL
    if (t->nccl) {
        nccl_allreduce_mean(t->nccl, dv->grad, n, NCCL_BUCKET);
        return;
    }
#endif
    float *h = t->m->params.grad;  // the host gradient buffer, otherwise unused on a device
    dv->ops->copy_d2h(h, dv->grad, n * sizeof(float));
    dist_allreduce_mean(d, h, n);
    dv->ops->copy_h2d(dv->grad, h, n * sizeof(float));
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
    const float nan = NAN;
    if (loss) out->itc = NAN;
    else t->m->dev.ops->copy_h2d(t->m->dev.grad, &nan, sizeof(float));
    fprintf(stderr, "vlmae: TEST HOOK VLMAE_TEST_NAN_STEP: %s%s set to NaN on rank %d at step %lld\n",
            loss ? "loss itc" : "a gradient value of ", loss ? "" : t->m->params.p[0].name, rank, (long long)step);
}

// TEST HOOK (tests/test_watchdog.sh; inert unless the variable is set): VLMAE_TEST_STALL_STEP=N
// makes rank VLMAE_TEST_STALL_RANK (default 0) stop making progress in step N (1-based, as logged),
// as a stuck kernel or driver would: only the watchdog (runtime.timeout_s) ends it. Never set it in
// production.
static void test_stall_hook(const Trainer *t) {
    static int64_t step = -2;
    static int rank = 0;
    if (step == -2) {
        const char *s = getenv("VLMAE_TEST_STALL_STEP"), *r = getenv("VLMAE_TEST_STALL_RANK");
        step = s && *s ? atoll(s) : -1;
        rank = r && *r ? atoi(r) : 0;
    }
    if (step < 0 || t->step_count + 1 != step || t->dist->rank != rank) return;
    fprintf(stderr, "vlmae: TEST HOOK VLMAE_TEST_STALL_STEP: rank %d stalls in step %lld\n", rank, (long long)step);
    for (;;) sleep(1);
}

int trainer_step(Trainer *t, const Batch *batch, Losses *out) {
    Model *m = t->m;
    const Dist *d = t->dist;
    int64_t s = t->step_count;
    float alpha = t->opt.alpha;
    if (t->opt.alpha_ramp_steps > 0 && s < t->opt.alpha_ramp_steps)
        alpha *= (float)s / (float)t->opt.alpha_ramp_steps;  // ALBEF: alpha * min(1, i / len(loader))
    t->last_alpha = alpha;
    watchdog_phase(t->wd, "step", s + 1);

    model_clamp_temp(m);
    t->last_temp = model_temp(m);
    model_momentum_update(m, m->cfg.momentum);
    m->dev.ops->mem_zero(m->dev.grad, m->params.total * sizeof(float));
    Rng rng;  // this step's random choices: a pure function of (seed, rank, step) => exact resume
    rng_seed_stream(&rng, t->opt.seed, (uint64_t)d->rank, (uint64_t)s);
    pretrain_step(&t->step, m, batch, alpha, &rng, NULL, out);
    test_nan_hook(t, out);
    test_stall_hook(t);
    // (on a device the all-reduce is only enqueued: the guard's host reads below wait for it)
    watchdog_phase(t->wd, "allreduce", s + 1);
    allreduce_grads(t);

    // Losses are per rank; the guard looks at the averaged gradients and every rank's losses.
    t->nonfinite_what[0] = 0;
    int bad = !check_finite(t, out, t->nonfinite_what, sizeof(t->nonfinite_what));
    if (dist_any(d, bad)) {
        // Rare path: every rank reports the value found by the lowest rank that saw one, and where.
        dist_nonfinite_where(d, bad, t->nonfinite_what, sizeof(t->nonfinite_what));
        if (t->opt.nonfinite == NONFINITE_STOP) return -1;
        t->skipped++;
        t->step_count++;  // the schedule moves on; parameters, queue and AdamW state do not
        return 1;
    }

    // Queue: this step's momentum features of every rank, in rank order.
    size_t n = (size_t)t->step.B * m->cfg.embed_dim;
    watchdog_phase(t->wd, "allgather", s + 1);
    dist_allgather(d, t->step.img_m, t->gather_img, n);
    dist_allgather(d, t->step.txt_m, t->gather_txt, n);
    watchdog_phase(t->wd, "step", s + 1);
    model_enqueue(m, t->gather_img, t->gather_txt, t->step.B * d->world);

    t->last_lr = lr_at(&t->opt.lr, s);
    adamw_step_on(&t->adam, m->dev.params, m->dev.grad, t->last_lr);
    t->step_count++;
    return 0;
}
