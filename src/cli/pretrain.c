// pretrain.c: `vlmae pretrain` — the training program: config, data, model, the data-parallel
// step loop over MPI ranks, logs (text + JSON lines), checkpoints with exact resume, and signal
// handling for Slurm (SIGUSR1/SIGTERM: checkpoint at the next step boundary, exit 99).
#include "cli/pretrain.h"

#include <errno.h>
#include <getopt.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"
#include "data/datafiles.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "engine/common.h"
#include "model/flops.h"
#include "train/backend.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/dist.h"
#include "train/placement.h"
#include "train/trainer.h"
#include "train/validate.h"
#include "train/watchdog.h"
#include "train/weights_import.h"

#define EXIT_REQUEUE 99  // checkpointed on a signal: the job script requeues

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

// Validation losses on data.val at step s: printed and logged as their own log.jsonl line.
// Returns 0, or -1 when a rank's validation loader failed (reported; every rank returns -1).
static int run_validation(Trainer *t, Loader *V, const RunConfig *rc, FILE *jlog, int R0, int64_t s) {
    ValLosses vl;
    int vr = validate_pretrain(t, V, rc->train.val_batches, &vl);
    if (vr == -2) return -1;
    if (vr == 0 && R0) {
        printf("step %lld val | itc %.4f itm %.4f mlm %.4f rmim %.4f ifr %.4f | %lld batches\n", (long long)s,
               vl.itc, vl.itm, vl.mlm, vl.rmim, vl.ifr, (long long)vl.batches);
        fprintf(jlog, "{\"step\": %lld, \"val_itc\": %.6f, \"val_itm\": %.6f, \"val_mlm\": %.6f, "
                "\"val_rmim\": %.6f, \"val_ifr\": %.6f, \"val_total\": %.6f, \"val_batches\": %lld}\n",
                (long long)s, vl.itc, vl.itm, vl.mlm, vl.rmim, vl.ifr, vl.total, (long long)vl.batches);
        fflush(stdout);
        fflush(jlog);
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlmae pretrain -c CONFIG.yaml [--set KEY=VALUE ...] [--run-dir DIR]\n"
            "                      [--resume auto|PATH]\n"
            "Pre-trains VLMAE (or ALBEF, TCL: model.objective) on HDF5 shards, one process per rank\n"
            "(standalone, mpirun -np W, or srun). Writes DIR/config.yaml, DIR/log.jsonl and\n"
            "checkpoints DIR/ckpt-STEP.h5. SIGUSR1 or SIGTERM: every rank stops at the next step,\n"
            "a checkpoint is written and the exit status is 99 (the Slurm job requeues itself).\n"
            "  -c, --config FILE   YAML config (configs/pretrain_4m.yaml, configs/tiny.yaml)\n"
            "  --set KEY=VALUE     override one config key, e.g. --set train.batch_size=48\n"
            "  --run-dir DIR       run directory (default runs/CONFIG-NAME)\n"
            "  --resume auto       continue from the newest complete checkpoint in DIR, if any\n"
            "  --resume PATH       continue from this checkpoint\n"
            "  --stop-after N      checkpoint and stop after step N (the schedule is unchanged)\n"
            "  --check-sync N      every N steps, verify that parameters, momentum copies and queues\n"
            "                      are bit-identical on all ranks (stops with an error if not)\n"
            "A phase of a step that does not finish within runtime.timeout_s on some rank (a hang:\n"
            "a stopped or unreachable rank, a stuck collective) aborts the job with exit status 98.\n");
}

// Planning batch: the shapes of the real ones, valid ids, worst-case masks (step_create).
static void shape_batch(Batch *b, const ModelConfig *c, int B, int T) {
    int S = c->image_size;
    b->B = B, b->T = T, b->H = b->W = S;
    b->image = callocCheck((size_t)B * 3 * S * S, sizeof(float));
    b->image2 = c->objective == OBJ_TCL ? callocCheck((size_t)B * 3 * S * S, sizeof(float)) : NULL;
    b->text_ids = callocCheck((size_t)B * T, sizeof(int32_t));
    b->text_mask = callocCheck((size_t)B * T, sizeof(int32_t));
    b->box = callocCheck((size_t)B * 4, sizeof(float));
    b->image_id = callocCheck((size_t)B, sizeof(int64_t));
    for (int i = 0; i < B * T; i++) b->text_ids[i] = i % T == 0 ? c->cls_id : c->mask_id, b->text_mask[i] = 1;
}

static void free_batch(Batch *b) {
    free(b->image), free(b->image2), free(b->text_ids), free(b->text_mask), free(b->box), free(b->image_id);
}

typedef struct {
    const Dist *d;
    const RunConfig *rc;
    const char *run_dir;
    Model *m;
    Trainer *t;
    Loader *L;
    Watchdog *wd;
} Run;

// FNV-1a over the bytes of x.
static uint64_t fnv1a(uint64_t h, const void *x, size_t n) {
    const unsigned char *p = x;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

// Every rank hashes its parameters, momentum copies, queues and queue pointer; all must agree.
// The host mirrors must be current (trainer_to_host).
static int model_in_sync(const Dist *d, const Model *m) {
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t qn = (size_t)m->cfg.queue_size * m->cfg.embed_dim * sizeof(float);
    h = fnv1a(h, m->params.data, m->params.total * sizeof(float));
    h = fnv1a(h, m->momentum.data, m->momentum.total * sizeof(float));
    h = fnv1a(h, m->image_queue, qn);
    h = fnv1a(h, m->text_queue, qn);
    h = fnv1a(h, &m->queue_ptr, sizeof(m->queue_ptr));
    uint64_t h0 = h;
    dist_bcast_bytes(d, &h0, sizeof(h0), 0);
    return !dist_any(d, h0 != h);
}

// Rank 0 writes; every rank learns whether it worked.
static int save_checkpoint(Run *r) {
    int ok = 1;
    char path[4096], err[1024] = "";
    watchdog_phase(r->wd, "checkpoint", r->t->step_count);  // the write and the vote below
    trainer_to_host(r->t);  // the device state into the host mirrors the checkpoint reads
    if (r->d->rank == 0) {
        CheckpointMeta meta = {0};
        meta.step = r->t->step_count;
        loader_position(r->L, &meta.epoch, &meta.epoch_step);
        meta.seed = r->rc->train.seed;
        meta.world_size = r->d->world;
        meta.config_yaml = config_to_yaml(r->rc);
        checkpoint_path(path, sizeof(path), r->run_dir, meta.step);
        ok = checkpoint_save(path, r->m, &r->t->adam, &meta, err, sizeof(err)) == 0;
        free(meta.config_yaml);
        if (ok) {
            printf("checkpoint %s (epoch %lld, step %lld of the epoch)\n", path, (long long)meta.epoch,
                   (long long)meta.epoch_step);
            if (r->rc->train.keep_checkpoints > 0) checkpoint_prune(r->run_dir, r->rc->train.keep_checkpoints);
        } else {
            fprintf(stderr, "vlmae: checkpoint failed: %s (the previous checkpoint is kept)\n", err);
        }
        fflush(stdout);
    }
    return !dist_any(r->d, !ok);
}

int pretrain_main(int argc, char **argv) {
    const char *config_path = NULL, *run_dir_opt = NULL, *resume = NULL;
    int64_t stop_after = 0, check_sync = 0;
    const char **sets = callocCheck((size_t)argc, sizeof(char *));
    int n_sets = 0;
    static struct option opts[] = {{"config", 1, 0, 'c'}, {"set", 1, 0, 's'}, {"run-dir", 1, 0, 'r'},
                                   {"resume", 1, 0, 'R'}, {"stop-after", 1, 0, 'S'},
                                   {"check-sync", 1, 0, 'C'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config_path = optarg; break;
        case 's': sets[n_sets++] = optarg; break;
        case 'r': run_dir_opt = optarg; break;
        case 'R': resume = optarg; break;
        case 'S': stop_after = atoll(optarg); break;
        case 'C': check_sync = atoll(optarg); break;
        case 'h': usage(stdout); free(sets); return 0;
        default: usage(stderr); free(sets); return 2;
        }
    }
    if (!config_path || optind != argc) {
        usage(stderr);
        free(sets);
        return 2;
    }

    // Handlers first: a Slurm signal during start-up must still end in a checkpoint-or-requeue.
    signal(SIGUSR1, on_signal);
    signal(SIGTERM, on_signal);
    // The config is read before MPI_Init (it needs no MPI; errors are reported after it, by rank
    // 0): with runtime.device cuda each rank makes its GPU current first, so that a CUDA-aware
    // MPI creates no context on GPU 0 (train/placement.h).
    char err[2048];
    RunConfig rc;
    config_defaults(&rc);
    int bad = config_load(&rc, config_path, err, sizeof(err)) != 0;
    for (int i = 0; i < n_sets && !bad; i++) bad = config_set(&rc, sets[i], err, sizeof(err)) != 0;
    Placement place;
    placement_bind_early(&place, bad ? DEVICE_CPU : rc.runtime.device);
    Dist d;
    dist_init(&d, &argc, &argv);
    int R0 = d.rank == 0;
    if (!bad) bad = config_validate(&rc, d.world, err, sizeof(err)) != 0;
    if (!bad) bad = config_validate_data(&rc, err, sizeof(err)) != 0;
    if (!bad && rc.data.skip_corrupt) {
        snprintf(err, sizeof(err), "data.skip_corrupt: true drops corrupt samples and shortens batches, which "
                 "pre-training cannot take (the ITC queue needs batch_size samples per rank); use false: corrupt "
                 "images are then reported, counted and replaced by the next valid sample");
        bad = 1;
    }
    free(sets);
    if (bad) {
        if (R0) fprintf(stderr, "vlmae pretrain: %s\n", err);
        config_free(&rc);
        dist_finalize(&d);
        return 2;
    }

    // Run directory: default runs/<config file name without extension>.
    char run_dir[2048];
    if (run_dir_opt) snprintf(run_dir, sizeof(run_dir), "%s", run_dir_opt);
    else {
        const char *base = strrchr(config_path, '/');
        base = base ? base + 1 : config_path;
        snprintf(run_dir, sizeof(run_dir), "runs/%.*s", (int)strcspn(base, "."), base);
    }
    // GPU placement after MPI_Init: MPI's node-local ranks, distinct GPUs (collective).
    int prc = placement_check(&place, &d, rc.runtime.device, err, sizeof(err));
    if (dist_any(&d, prc != 0)) {
        if (prc == -2 || (prc == -1 && d.local_rank == 0)) fprintf(stderr, "vlmae pretrain (rank %d): %s\n", d.rank, err);
        dist_barrier(&d);  // every report is out before the abort
        dist_abort(&d, 2);
    }
    if (R0 && place.device >= 0)
        printf("GPU placement: each rank uses GPU (node-local rank mod %d) of the %d it sees; %d rank(s) on rank "
               "0's node; chosen %s\n", place.n_devices, place.n_devices, d.local_world,
               place.env_var ? "before MPI_Init" : "after MPI_Init (the launcher set no local rank)");
    // From here on a phase that hangs on some rank ends the job (runtime.timeout_s; exit 98).
    Watchdog *wd = watchdog_start(rc.runtime.timeout_s, &d, NULL, NULL);
    watchdog_phase(wd, "setup", 0);

    if (R0 && mkdir_p(run_dir) != 0) {
        fprintf(stderr, "vlmae pretrain: cannot create the run directory %s: %s\n", run_dir, strerror(errno));
        dist_abort(&d, 2);
    }
    dist_barrier(&d);

    // Vocabulary: the model's token ids come from it.
    const char *vocab = rc.data.vocab[0] ? rc.data.vocab : default_vocab_path();
    Tokenizer *tok = tokenizer_load(vocab, err, sizeof(err));
    if (!tok) {
        if (R0) fprintf(stderr, "vlmae pretrain: %s\n", err);
        dist_abort(&d, 2);
    }
    ModelConfig *mc = &rc.model;
    if (tokenizer_vocab_size(tok) != mc->vocab_size) {
        if (R0) fprintf(stderr, "vlmae pretrain: %s has %d tokens but model.vocab_size is %d\n", vocab, tokenizer_vocab_size(tok), mc->vocab_size);
        dist_abort(&d, 2);
    }
    mc->pad_id = tokenizer_pad_id(tok), mc->cls_id = tokenizer_cls_id(tok), mc->mask_id = tokenizer_mask_id(tok);

    // Data: every dataset's shards form one sample space; a dataset with no text is an error
    // naming it (shard_dataset), not a silent drop.
    LoaderDataset *lds = callocCheck((size_t)rc.data.n_datasets + 1, sizeof(LoaderDataset));
    for (int i = 0; i < rc.data.n_datasets; i++) {
        const DatasetConfig *dc = &rc.data.datasets[i];
        lds[i] = (LoaderDataset){dc->name, (const char *const *)dc->shards, dc->n_shards};
    }
    char **shards = NULL, **shard_ds = NULL;
    int n_shards = 0;
    if (loader_expand_datasets(lds, rc.data.n_datasets, &shards, &shard_ds, &n_shards, err, sizeof(err)) != 0) {
        if (R0) fprintf(stderr, "vlmae pretrain: %s\n", err);
        dist_abort(&d, 2);
    }
    free(lds);
    LoaderConfig lc;
    loader_config_defaults(&lc);
    lc.shards = (const char *const *)shards, lc.num_shards = n_shards;
    lc.shard_dataset = (const char *const *)shard_ds;
    lc.rank = d.rank, lc.world = d.world, lc.batch_size = rc.train.batch_size, lc.seed = rc.train.seed;
    lc.image_size = mc->image_size, lc.max_len = rc.data.text_max_len, lc.tok = tok;
    lc.aug.randaug = rc.data.randaugment, lc.aug.color_jitter = rc.data.color_jitter;
    lc.aug.grayscale = rc.data.grayscale, lc.aug.blur = rc.data.blur;
    lc.aug.hflip = rc.data.hflip, lc.aug.scale_min = rc.data.crop_scale_min;
    lc.threads = rc.data.threads, lc.prefetch = rc.data.prefetch, lc.skip_corrupt = rc.data.skip_corrupt;
    lc.quiet = 0;  // each rank reports the corrupt images of its own slice
    lc.two_views = mc->objective == OBJ_TCL;  // tcl: a second augmented view for the momentum encoder
    Loader *L = loader_open(&lc, err, sizeof(err));
    if (!L) {
        fprintf(stderr, "vlmae pretrain (rank %d): %s\n", d.rank, err);
        dist_abort(&d, 2);
    }
    int64_t spe = loader_steps_per_epoch(L);
    if (spe < 1) {
        if (R0) fprintf(stderr, "vlmae pretrain: %lld texts are fewer than one global batch (%d x %d)\n",
                        (long long)loader_num_texts(L), rc.train.batch_size, d.world);
        dist_abort(&d, 2);
    }
    int64_t total = rc.train.max_steps > 0 ? rc.train.max_steps : spe * rc.train.epochs;

    // Held-out validation shards (data.val): eval mode (no augmentation), the training batch size.
    Loader *V = NULL;
    char **val_shards = NULL;
    int n_val_shards = 0;
    if (rc.data.val.n > 0 && rc.train.val_every > 0) {
        if (loader_expand_shards((const char *const *)rc.data.val.items, rc.data.val.n, &val_shards, &n_val_shards,
                                 err, sizeof(err)) != 0) {
            if (R0) fprintf(stderr, "vlmae pretrain: data.val: %s\n", err);
            dist_abort(&d, 2);
        }
        LoaderConfig vc = lc;
        vc.shards = (const char *const *)val_shards, vc.num_shards = n_val_shards;
        vc.eval = 1, vc.drop_last = 0;
        V = loader_open(&vc, err, sizeof(err));
        if (!V) {
            fprintf(stderr, "vlmae pretrain (rank %d): data.val: %s\n", d.rank, err);
            dist_abort(&d, 2);
        }
        if (loader_num_texts(V) < (int64_t)rc.train.batch_size * d.world) {
            if (R0) fprintf(stderr, "vlmae pretrain: data.val holds %lld texts, fewer than one global batch (%d x %d)\n",
                            (long long)loader_num_texts(V), rc.train.batch_size, d.world);
            dist_abort(&d, 2);
        }
    }

    // Model, optionally initialised from pre-trained towers; the trainer around it.
    Model m;
    model_create(&m, mc);
    model_init_weights(&m, rc.train.seed);
    char msg[4096];
    if (rc.init.vit[0] && import_vit_timm(&m, rc.init.vit, msg, sizeof(msg)) != 0) {
        if (R0) fprintf(stderr, "vlmae pretrain: %s\n", msg);
        dist_abort(&d, 2);
    } else if (rc.init.vit[0] && R0) printf("%s\n", msg);
    if (rc.init.bert[0] && import_bert_hf(&m, rc.init.bert, msg, sizeof(msg)) != 0) {
        if (R0) fprintf(stderr, "vlmae pretrain: %s\n", msg);
        dist_abort(&d, 2);
    } else if (rc.init.bert[0] && R0) printf("%s\n", msg);
    TrainerOptions to = {.alpha = rc.train.alpha, .alpha_ramp_steps = rc.train.alpha_ramp ? spe : 0,
                         .beta1 = rc.train.beta1, .beta2 = rc.train.beta2, .eps = rc.train.eps,
                         .weight_decay = rc.train.weight_decay, .seed = rc.train.seed,
                         .nonfinite = (NonfinitePolicy)rc.train.nonfinite};
    to.lr = (LrSchedule){.lr = rc.train.lr, .warmup_lr = rc.train.warmup_lr, .min_lr = rc.train.min_lr,
                         .warmup_steps = rc.train.warmup_steps, .total_steps = total};
    const Ops *ops = backend_open(rc.runtime.device, rc.runtime.precision, d.local_rank, err, sizeof(err));
    if (!ops) {
        fprintf(stderr, "vlmae pretrain (rank %d): %s\n", d.rank, err);
        dist_abort(&d, 2);
    }
    model_use_backend(&m, ops);  // after the host-side initialisation and imports above
    Batch shape;
    shape_batch(&shape, mc, rc.train.batch_size, rc.data.text_max_len);
    Trainer t;
    trainer_init(&t, &m, &d, &to, &shape);
    free_batch(&shape);
    t.wd = wd;
    watchdog_set_comm(wd, trainer_comm_error, &t);  // NCCL's asynchronous errors (NULL comm: none)

    // Resume: the checkpoint holds the model, AdamW, queues, step and data position.
    char ckpt[4096] = "";
    if (resume && !strcmp(resume, "auto")) {
        int rcf = checkpoint_find_latest(run_dir, ckpt, sizeof(ckpt));
        if (rcf < 0) dist_abort(&d, 2);
        if (rcf == 1) ckpt[0] = 0;
    } else if (resume) {
        snprintf(ckpt, sizeof(ckpt), "%s", resume);
    }
    if (ckpt[0]) {
        CheckpointMeta meta = {0};
        if (checkpoint_load(ckpt, &m, &t.adam, &meta, err, sizeof(err)) != 0) {
            fprintf(stderr, "vlmae pretrain (rank %d): %s\n", d.rank, err);
            dist_abort(&d, 2);
        }
        if (meta.world_size != d.world && R0)
            printf("note: %s was written by %d ranks, this run has %d: the data order continues per global batch\n",
                   ckpt, meta.world_size, d.world);
        t.step_count = meta.step;
        trainer_to_device(&t);
        if (loader_seek(L, meta.epoch, meta.epoch_step) != 0) {
            if (R0) fprintf(stderr, "vlmae pretrain: %s: data position epoch %lld step %lld is outside this data set\n",
                            ckpt, (long long)meta.epoch, (long long)meta.epoch_step);
            dist_abort(&d, 2);
        }
        if (R0) printf("resumed from %s at step %lld\n", ckpt, (long long)meta.step);
        checkpoint_meta_free(&meta);
    }

    // The resolved config, for the record.
    if (R0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/config.yaml", run_dir);
        FILE *f = fopenCheck(path, "w");
        config_dump(&rc, f);
        fclose(f);
        printf("vlmae pretrain: %s objective, %lld parameters (+%lld momentum), %d rank(s) x batch %d, "
               "%lld texts, %lld steps/epoch, %lld steps; run dir %s\n",
               objective_name(mc->objective), (long long)m.params.values, (long long)m.momentum.values, d.world,
               rc.train.batch_size, (long long)loader_num_texts(L), (long long)spe, (long long)total, run_dir);
        fflush(stdout);
    }
    char logpath[4096];
    snprintf(logpath, sizeof(logpath), "%s/log.jsonl", run_dir);
    FILE *jlog = R0 ? fopenCheck(logpath, "a") : NULL;

    Run run = {&d, &rc, run_dir, &m, &t, L, wd};
    char backend_line[256];
    double peak;
    backend_describe(ops, backend_line, sizeof(backend_line), &peak);
    if (peak <= 0.0) peak = cpu_peak_flops(omp_get_max_threads());
    peak *= d.world;
    if (R0) printf("backend: %s on each of %d rank(s)\n", backend_line, d.world), fflush(stdout);
    double flops_per_step = train_flops_per_sample(mc, rc.data.text_max_len) * rc.train.batch_size * d.world;
    double t_start = now_seconds(), t_win = t_start;
    int64_t win_steps = 0, acc_n = 0, start_step = t.step_count;
    double acc[5] = {0};
    int status = 0;
    // The untrained model's validation losses: the baseline of the curve.
    if (V && t.step_count == 0) watchdog_phase(wd, "validation", 0);
    if (V && t.step_count == 0 && run_validation(&t, V, &rc, jlog, R0, 0) != 0) status = 3;
    while (status == 0 && t.step_count < total) {
        watchdog_phase(wd, "sync", t.step_count + 1);  // the collectives between the steps
        if (dist_any(&d, stop_signal != 0)) {
            if (R0) printf("signal received: checkpointing at step %lld\n", (long long)t.step_count);
            status = save_checkpoint(&run) ? EXIT_REQUEUE : 4;
            break;
        }
        Batch *b;
        watchdog_phase(wd, "data", t.step_count + 1);
        if (loader_next(L, &b) != 1) {
            fprintf(stderr, "vlmae pretrain (rank %d): data: %s\n", d.rank, loader_error(L));
            dist_abort(&d, 3);
        }
        Losses l;
        int rs = trainer_step(&t, b, &l);
        if (rs < 0) {
            if (R0) fprintf(stderr, "vlmae pretrain: non-finite %s at step %lld: stopping (train.nonfinite: stop); "
                            "the last checkpoint is intact\n", t.nonfinite_what, (long long)t.step_count + 1);
            status = 3;
            break;
        }
        if (rs > 0 && R0) printf("step %lld skipped: non-finite %s\n", (long long)t.step_count, t.nonfinite_what);
        const float v[5] = {l.itc, l.itm, l.mlm, l.rmim, l.ifr};
        if (rs == 0) {  // a skipped step's losses stay out of the means (a NaN is not JSON either)
            for (int k = 0; k < 5; k++) acc[k] += v[k];
            acc_n++;
        }
        win_steps++;
        int64_t s = t.step_count;
        watchdog_phase(wd, "sync", s);
        // (acc_n is the same on every rank: skipping is agreed; a window of only skipped steps logs nothing)
        if ((s % rc.train.log_every == 0 || s == total) && acc_n > 0) {
            double mean[5];
            for (int k = 0; k < 5; k++) mean[k] = dist_sum(&d, acc[k]) / (d.world * (double)acc_n);
            double now = now_seconds(), dt = (now - t_win) / (double)win_steps;
            double sps = rc.train.batch_size * d.world / dt, mfu = flops_per_step / dt / peak;
            double eta = (total - s) * (now - t_start) / (double)(s - start_step);
            int64_t ep, es;
            loader_position(L, &ep, &es);
            LoaderStats ls;
            loader_stats(L, &ls);
            double replaced = dist_sum(&d, (double)ls.replaced);  // corrupt samples replaced, all ranks, this run
            if (R0) {
                printf("step %lld/%lld ep %.2f | itc %.4f itm %.4f mlm %.4f rmim %.4f ifr %.4f | lr %.3g | "
                       "%.1f samples/s | MFU %.1f%% | ETA %.0fs\n",
                       (long long)s, (long long)total, ep + (double)es / spe, mean[0], mean[1], mean[2], mean[3],
                       mean[4], t.last_lr, sps, 100 * mfu, eta);
                fprintf(jlog, "{\"step\": %lld, \"epoch\": %.4f, \"itc\": %.6f, \"itm\": %.6f, \"mlm\": %.6f, "
                        "\"rmim\": %.6f, \"ifr\": %.6f, \"lr\": %.6g, \"alpha\": %.4f, \"temp\": %.5f, "
                        "\"samples_per_s\": %.3f, \"mfu\": %.5f, \"skipped\": %lld, \"replaced\": %.0f}\n",
                        (long long)s, ep + (double)es / spe, mean[0], mean[1], mean[2], mean[3], mean[4], t.last_lr,
                        t.last_alpha, t.last_temp, sps, mfu, (long long)t.skipped, replaced);
                fflush(stdout);
                fflush(jlog);
            }
            memset(acc, 0, sizeof(acc));
            win_steps = acc_n = 0;
            t_win = now;
        }
        if (V && (s % rc.train.val_every == 0 || s == total)) watchdog_phase(wd, "validation", s);
        if (V && (s % rc.train.val_every == 0 || s == total) && run_validation(&t, V, &rc, jlog, R0, s) != 0) {
            status = 3;
            break;
        }
        int sync_check = check_sync > 0 && s % check_sync == 0;
        watchdog_phase(wd, "sync", s);
        if (sync_check) trainer_to_host(&t);  // model_in_sync hashes the host mirrors
        if (sync_check && !model_in_sync(&d, &m)) {
            if (R0) fprintf(stderr, "vlmae pretrain: ranks diverged at step %lld (parameters, momentum or queues differ)\n", (long long)s);
            status = 5;
            break;
        }
        if ((rc.train.ckpt_every > 0 && s % rc.train.ckpt_every == 0) || s == total || s == stop_after) {
            if (!save_checkpoint(&run)) {
                status = 4;
                break;
            }
        }
        if (s == stop_after) {
            if (R0) printf("stopped after step %lld (--stop-after)\n", (long long)s);
            break;
        }
    }
    watchdog_phase(wd, "shutdown", t.step_count);
    if (status == 0) {  // (status is the same on every rank)
        LoaderStats ls;
        loader_stats(L, &ls);
        double corrupt = dist_sum(&d, (double)ls.corrupt_images), replaced = dist_sum(&d, (double)ls.replaced);
        if (R0)
            printf("done: %lld steps; corrupt images %.0f (found by the ranks; replaced %.0f samples)\n",
                   (long long)t.step_count, corrupt, replaced);
    }
    if (jlog) fclose(jlog);
    if (V) loader_close(V);
    if (val_shards) loader_free_paths(val_shards, n_val_shards);
    loader_close(L);
    loader_free_paths(shards, n_shards);
    loader_free_paths(shard_ds, n_shards);
    watchdog_set_comm(wd, NULL, NULL);  // before the communicator goes
    trainer_free(&t);
    model_free(&m);
    backend_close(ops);
    tokenizer_free(tok);
    config_free(&rc);
    watchdog_stop(wd);  // (MPI_Finalize waits for every rank and is not watched)
    dist_finalize(&d);
    return status;
}
