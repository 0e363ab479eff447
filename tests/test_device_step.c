// test_device_step.c: the device-resident training step, proven without a GPU. The same training
// run goes through ops_cpu and through ops_guard (tests/ops_guard.h: ops_cpu's arithmetic on
// memory that host code cannot touch). Every step's losses and, at the end, every parameter,
// momentum value, queue entry and AdamW moment must be bit-identical, for vlmae, albef and tcl.
// Any host read or write of device memory (a wild access on a GPU) kills the run with SIGSEGV;
// any host pointer handed to a device op is reported by name. A checkpoint written from the
// guarded run's host mirror and loaded into a fresh guarded model must continue exactly as the
// CPU run does (the device <-> host mirror paths). Finally the guard itself is checked: a child
// process that reads device memory from the host must die. Also: the step's released activation
// gradients (Graph.release_grads) give the same parameter gradients, bit for bit, as keeping
// every gradient, and a step larger than the planned arena (that eager run) grows it instead of
// failing.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/ops_guard.h"
#include "synth_batch.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

#include "check.h"

enum { NB = 3, B = 4, T = 8, STEPS = 4, MORE = 2 };

static TrainerOptions options(void) {
    TrainerOptions o = {.alpha = 0.4f, .alpha_ramp_steps = 2, .beta1 = 0.9f, .beta2 = 0.999f,
                        .eps = 1e-8f, .weight_decay = 0.02f, .seed = 11, .nonfinite = NONFINITE_STOP};
    o.lr = (LrSchedule){.lr = 1e-3f, .warmup_lr = 1e-4f, .min_lr = 1e-5f, .warmup_steps = 2, .total_steps = 20};
    return o;
}

static void make(Model *m, Trainer *t, const ModelConfig *c, const Ops *ops, const Dist *d,
                 const Batch *shape, uint64_t seed) {
    model_create(m, c);
    model_init_weights(m, seed);
    model_use_backend(m, ops);
    TrainerOptions o = options();
    trainer_init(t, m, d, &o, shape);
}

static int same(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

static void step_both(Trainer *ta, Trainer *tb, const Batch *bt, const char *obj, int s) {
    Losses la, lb;
    int ra = trainer_step(ta, bt, &la), rb = trainer_step(tb, bt, &lb);
    CHECKF(ra == 0 && rb == 0, "%s step %d: trainer_step returned cpu %d guard %d", obj, s, ra, rb);
    CHECKF(same(&la, &lb, sizeof(la)),
           "%s step %d: losses differ: cpu itc %.9g itm %.9g mlm %.9g rmim %.9g ifr %.9g, guard itc %.9g "
           "itm %.9g mlm %.9g rmim %.9g ifr %.9g",
           obj, s, la.itc, la.itm, la.mlm, la.rmim, la.ifr, lb.itc, lb.itm, lb.mlm, lb.rmim, lb.ifr);
    CHECKF(ta->last_temp == tb->last_temp, "%s step %d: temperature %g vs %g", obj, s, ta->last_temp, tb->last_temp);
}

static void compare_state(Trainer *ta, Trainer *tb, const char *obj, const char *when) {
    trainer_to_host(tb);
    const Model *a = ta->m, *b = tb->m;
    size_t qn = (size_t)a->cfg.queue_size * a->cfg.embed_dim * sizeof(float);
    CHECKF(same(a->params.data, b->params.data, a->params.total * sizeof(float)), "%s %s: parameters differ", obj, when);
    CHECKF(same(a->momentum.data, b->momentum.data, a->tower_n * sizeof(float)), "%s %s: momentum differs", obj, when);
    CHECKF(same(a->image_queue, b->image_queue, qn) && same(a->text_queue, b->text_queue, qn),
           "%s %s: queues differ", obj, when);
    CHECKF(a->queue_ptr == b->queue_ptr, "%s %s: queue_ptr %d vs %d", obj, when, a->queue_ptr, b->queue_ptr);
    CHECKF(same(ta->adam.m, tb->adam.m, ta->adam.n * sizeof(float)) && same(ta->adam.v, tb->adam.v, ta->adam.n * sizeof(float)),
           "%s %s: AdamW moments differ", obj, when);
    CHECKF(ta->adam.t == tb->adam.t, "%s %s: AdamW step %lld vs %lld", obj, when, (long long)ta->adam.t, (long long)tb->adam.t);
}

static void run(Objective objective) {
    const char *obj = objective_name(objective);
    ModelConfig c;
    synth_tiny_config(&c);
    c.objective = objective;
    Batch data[NB];
    Rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < NB; i++) synth_batch(&data[i], &c, B, T, &r);
    for (int i = 0; i < NB; i++) data[i].image2 = data[(i + 1) % NB].image;  // tcl's second view
    Dist d = {.rank = 0, .world = 1, .local_world = 1};

    Model ma, mb;
    Trainer ta, tb;
    make(&ma, &ta, &c, &ops_cpu, &d, &data[0], 1);
    long calls0 = ops_guard_calls();
    make(&mb, &tb, &c, &ops_guard, &d, &data[0], 1);
    for (int s = 0; s < STEPS; s++) step_both(&ta, &tb, &data[s % NB], obj, s);
    CHECKF(ops_guard_calls() > calls0 + 100, "%s: the guarded run made only %ld backend calls", obj,
           ops_guard_calls() - calls0);
    compare_state(&ta, &tb, obj, "after the steps");

    // Checkpoint from the guarded run's mirror -> a fresh guarded model -> continue like the CPU.
    char path[] = "/tmp/vlmae-test-device-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) die("mkstemp failed");
    close(fd);
    CheckpointMeta meta = {.step = tb.step_count, .world_size = 1};
    char err[512];
    CHECKF(checkpoint_save(path, &mb, &tb.adam, &meta, err, sizeof(err)) == 0, "%s: checkpoint_save: %s", obj, err);
    Model mc;
    Trainer tc;
    make(&mc, &tc, &c, &ops_guard, &d, &data[0], 99);  // different weights until the load
    CheckpointMeta got = {0};
    CHECKF(checkpoint_load(path, &mc, &tc.adam, &got, err, sizeof(err)) == 0, "%s: checkpoint_load: %s", obj, err);
    tc.step_count = got.step;
    trainer_to_device(&tc);
    checkpoint_meta_free(&got);
    unlink(path);
    for (int s = STEPS; s < STEPS + MORE; s++) step_both(&ta, &tc, &data[s % NB], obj, s);
    compare_state(&ta, &tc, obj, "after resuming from the checkpoint");

    printf("%s %s: %d steps + checkpoint + %d steps, cpu and guarded device bit-identical\n",
           failures ? "(after failures)" : "ok", obj, STEPS, MORE);
    trainer_free(&ta), trainer_free(&tb), trainer_free(&tc);
    model_free(&ma), model_free(&mb), model_free(&mc);
    for (int i = 0; i < NB; i++) synth_batch_free(&data[i]);
    printf("guarded device memory of this run: %.1f MiB\n", (double)ops_guard_used() / (1 << 20));
    ops_guard_reset();  // every guarded buffer of this run is freed
}

// The guard must catch what it is for: host code reading a device pointer.
static void guard_catches_host_access(void) {
    float *p = ops_guard.mem_alloc(64 * sizeof(float));
    ops_guard.mem_zero(p, 64 * sizeof(float));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        volatile float x = p[3];  // what a bug in host code would do
        (void)x;
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 3, "a host read of device memory was not caught (status %d)", st);
    float back[64];
    ops_guard.copy_d2h(back, p, sizeof(back));
    CHECKF(back[3] == 0.0f, "copy_d2h through the guard");
    ops_guard.mem_free(p);
    ops_guard_reset();
    if (!failures) printf("ok the guard kills a host read of device memory\n");
}

// One step with activation gradients released (the step's default) and one keeping them all
// (release_grads 0: more memory than the planning step measured, so the arena must grow).
static void release_grads_exact(void) {
    ModelConfig c;
    synth_tiny_config(&c);
    Batch bt;
    Rng r;
    rng_seed(&r, 9);
    synth_batch(&bt, &c, B, T, &r);
    bt.image2 = NULL;
    Model m;
    model_create(&m, &c);
    model_init_weights(&m, 4);
    Step s;
    step_create(&s, &m, &bt);
    size_t planned = s.arena.cap, n = m.params.total;
    float *g_release = mallocCheck(n * sizeof(float));
    Losses l1, l2;
    for (int pass = 0; pass < 2; pass++) {
        s.g.release_grads = pass == 0;
        memset(m.params.grad, 0, n * sizeof(float));
        Rng sr;
        rng_seed(&sr, 21);
        pretrain_step(&s, &m, &bt, 0.4f, &sr, NULL, pass == 0 ? &l1 : &l2);
        if (pass == 0) memcpy(g_release, m.params.grad, n * sizeof(float));
    }
    CHECKF(same(&l1, &l2, sizeof(l1)), "release_grads changed the losses");
    CHECKF(same(g_release, m.params.grad, n * sizeof(float)), "release_grads changed the parameter gradients");
    CHECKF(s.arena.grew, "keeping every activation gradient fit the plan made with release_grads (no saving?)");
    arena_reset(&s.arena);
    CHECKF(s.arena.cap > planned, "the arena did not grow after a step past the plan (%zu -> %zu)", planned, s.arena.cap);
    if (!failures)
        printf("ok released activation gradients: parameter gradients bit-identical; plan %.1f MiB, keeping "
               "them all needs %.1f MiB (the arena grew instead of failing)\n",
               planned / 1048576.0, s.arena.cap / 1048576.0);
    free(g_release);
    step_free(&s);
    model_free(&m);
    synth_batch_free(&bt);
}

int main(void) {
    ops_guard_init((size_t)8 << 30);
    guard_catches_host_access();
    release_grads_exact();
    run(OBJ_VLMAE);
    run(OBJ_ALBEF);
    run(OBJ_TCL);
    if (failures) printf("%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
