// test_dist.c: data-parallel training on 2 MPI ranks (run by tests/test_dist.sh under mpiexec).
// 1. Rank 0 first runs one step alone (world 1) on its own batch; the 2-rank run's first step on
//    rank 0 must see exactly the same losses (same parameters, data and random choices).
// 2. 20 steps on 2 ranks, each on its own batches: parameters, momentum copies and queues stay
//    bit-identical across ranks (compared through an independent point-to-point exchange).
// 3. After a step, the newest queue rows are [rank 0's momentum features; rank 1's], compared
//    with the features each rank sends to rank 0 with MPI_Send (not the all-gather under test).
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "engine/common.h"
#include "synth_batch.h"
#include "train/trainer.h"

enum { B = 4, T = 8, NB = 3, STEPS = 20 };

static void make_model(Model *m) {
    ModelConfig c;
    synth_tiny_config(&c);
    c.queue_size = 16;  // multiple of B * world
    model_create(m, &c);
    model_init_weights(m, 42);
}

static TrainerOptions options(void) {
    TrainerOptions o = {.alpha = 0.4f, .alpha_ramp_steps = 5, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                        .weight_decay = 0.02f, .seed = 9, .nonfinite = NONFINITE_STOP};
    o.lr = (LrSchedule){.lr = 2e-3f, .warmup_lr = 1e-4f, .min_lr = 1e-4f, .warmup_steps = 5, .total_steps = STEPS};
    return o;
}

// Rank r's fixed batches.
static void make_data(Batch *data, const ModelConfig *c, int rank) {
    Rng r;
    rng_seed(&r, 1000 + (uint64_t)rank);
    for (int i = 0; i < NB; i++) synth_batch(&data[i], c, B, T, &r);
}

static int same_on_all_ranks(const float *x, size_t n, int rank, const char *what) {
    int ok = 1;
    if (rank == 1) MPI_Send(x, (int)n, MPI_FLOAT, 0, 7, MPI_COMM_WORLD);
    if (rank == 0) {
        float *y = mallocCheck(n * sizeof(float));
        MPI_Recv(y, (int)n, MPI_FLOAT, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        ok = memcmp(x, y, n * sizeof(float)) == 0;
        printf("%s %s bit-identical on both ranks\n", ok ? "ok" : "FAIL", what);
        free(y);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return ok;
}

int main(int argc, char **argv) {
    Dist d;
    dist_init(&d, &argc, &argv);
    if (d.world != 2) die("run with 2 ranks (mpiexec -np 2), got %d", d.world);
    int fail = 0;
    Model m;
    make_model(&m);
    Batch data[NB];
    make_data(data, &m.cfg, d.rank);
    TrainerOptions o = options();

    // 1. Reference: rank 0's first step alone.
    Losses solo = {0};
    if (d.rank == 0) {
        Model m1;
        make_model(&m1);
        Dist one = {.rank = 0, .world = 1, .local_world = 1};
        Trainer t1;
        trainer_init(&t1, &m1, &one, &o, &data[0]);
        if (trainer_step(&t1, &data[0], &solo) != 0) die("solo step failed");
        trainer_free(&t1);
        model_free(&m1);
    }

    Trainer t;
    trainer_init(&t, &m, &d, &o, &data[0]);
    for (int s = 0; s < STEPS; s++) {
        Losses l;
        if (trainer_step(&t, &data[s % NB], &l) != 0) die("step %d: non-finite %s", s, t.nonfinite_what);
        if (s == 0 && d.rank == 0) {
            int same = memcmp(&l, &solo, sizeof(l)) == 0;
            printf("%s first-step losses of rank 0 equal the 1-rank run (itc %.6f vs %.6f, mlm %.6f vs %.6f)\n",
                   same ? "ok" : "FAIL", l.itc, solo.itc, l.mlm, solo.mlm);
            fail |= !same;
        }
    }
    fail |= !same_on_all_ranks(m.params.data, m.params.total, d.rank, "parameters");
    fail |= !same_on_all_ranks(m.momentum.data, m.momentum.total, d.rank, "momentum parameters");
    size_t qn = (size_t)m.cfg.queue_size * m.cfg.embed_dim;
    fail |= !same_on_all_ranks(m.image_queue, qn, d.rank, "image queue");
    fail |= !same_on_all_ranks(m.text_queue, qn, d.rank, "text queue");

    // 3. The newest 2B queue rows are the rank-ordered momentum features of the last step.
    int E = m.cfg.embed_dim, Q = m.cfg.queue_size;
    size_t n = (size_t)B * E;
    if (d.rank == 1) {
        MPI_Send(t.step.img_m, (int)n, MPI_FLOAT, 0, 8, MPI_COMM_WORLD);
        MPI_Send(t.step.txt_m, (int)n, MPI_FLOAT, 0, 9, MPI_COMM_WORLD);
    } else {
        float *img1 = mallocCheck(n * sizeof(float)), *txt1 = mallocCheck(n * sizeof(float));
        MPI_Recv(img1, (int)n, MPI_FLOAT, 1, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Recv(txt1, (int)n, MPI_FLOAT, 1, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        int start = ((m.queue_ptr - 2 * B) % Q + Q) % Q;
        const float *qi = m.image_queue + (size_t)start * E, *qt = m.text_queue + (size_t)start * E;
        int ok = memcmp(qi, t.step.img_m, n * 4) == 0 && memcmp(qi + n, img1, n * 4) == 0 &&
                 memcmp(qt, t.step.txt_m, n * 4) == 0 && memcmp(qt + n, txt1, n * 4) == 0;
        printf("%s queue rows [%d, %d) hold rank 0's then rank 1's momentum features\n", ok ? "ok" : "FAIL", start,
               start + 2 * B);
        fail |= !ok;
        free(img1), free(txt1);
    }
    MPI_Bcast(&fail, 1, MPI_INT, 0, MPI_COMM_WORLD);
    trainer_free(&t);
    model_free(&m);
    for (int i = 0; i < NB; i++) synth_batch_free(&data[i]);
    dist_finalize(&d);
    return fail;
}
