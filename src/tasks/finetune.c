// finetune.c: the fine-tuning harness behind `vlmae finetune` and `vlmae eval` (finetune.h; their
// command line is cli/finetune.c): the loaders, evaluation reports, and ft_train, the training
// loop the tasks plug their step into (logs, checkpoints with the task's extra state, resume,
// signals, the non-finite guard, epoch-end evaluation). The model a run starts from is built by
// finetune_model.c; extra-state files are finetune_blobs.c.
#include "tasks/finetune.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "tasks/finetune_internal.h"
#include "tasks/task.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/watchdog.h"

#define EXIT_REQUEUE 99

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

void ft_metric(FtMetrics *m, const char *name, double value) {
    if (m->n >= FT_MAX_METRICS) die("too many metrics (at most %d)", FT_MAX_METRICS);
    snprintf(m->name[m->n], sizeof(m->name[0]), "%s", name);
    m->value[m->n++] = value;
}

int ft_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

// ---------------------------------------------------------------------------------------------
// Loaders

Loader *ft_open_loader(const FtContext *cx, const PathList *patterns, FtLoaderMode mode, int batch,
                       char *err, size_t errlen) {
    const RunConfig *rc = &cx->rc;
    if (patterns->n < 1) {
        snprintf(err, errlen, "no data: the task's list of shards is empty");
        return NULL;
    }
    char **shards = NULL;
    int n = 0;
    if (loader_expand_shards((const char *const *)patterns->items, patterns->n, &shards, &n, err, errlen) != 0)
        return NULL;
    LoaderConfig lc;
    loader_config_defaults(&lc);
    lc.shards = (const char *const *)shards, lc.num_shards = n;
    lc.rank = cx->d.rank, lc.world = cx->d.world, lc.batch_size = batch, lc.seed = cx->seed;
    lc.image_size = rc->task.image_size, lc.max_len = rc->task.text_max_len, lc.tok = cx->tok;
    lc.threads = rc->data.threads, lc.prefetch = rc->data.prefetch;
    lc.quiet = 0;
    if (mode == FT_TRAIN) {
        // ALBEF's fine-tuning transform: RandomResizedCrop(scale 0.5-1), flip, RandAugment; the
        // VLMAE extras (jitter, grayscale, blur) as data.augment says.
        lc.aug.scale_min = rc->data.crop_scale_min;  // the fine-tune configs set ALBEF's 0.5
        lc.aug.randaug = rc->data.randaugment, lc.aug.color_jitter = rc->data.color_jitter;
        lc.aug.grayscale = rc->data.grayscale, lc.aug.blur = rc->data.blur, lc.aug.hflip = rc->data.hflip;
        lc.skip_corrupt = 0;
    } else {
        lc.eval = 1, lc.drop_last = 0;
        lc.by_image = mode == FT_EVAL_IMAGES;
        lc.no_images = mode == FT_EVAL_TEXTS;
    }
    Loader *L = loader_open(&lc, err, errlen);
    loader_free_paths(shards, n);
    return L;
}

// ---------------------------------------------------------------------------------------------
// Reports

void ft_report(FtContext *cx, const char *name, int64_t step, const FtMetrics *m) {
    if (!cx->R0) return;
    printf("%s:", name);
    for (int i = 0; i < m->n; i++) printf(" %s %.2f", m->name[i], m->value[i]);
    printf("\n");
    fflush(stdout);
    char path[2200];
    snprintf(path, sizeof(path), "%s/%s", cx->run_dir, cx->is_eval ? "eval.jsonl" : "log.jsonl");
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "vlmae: cannot append to %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f, "{\"eval\": \"%s\", \"step\": %lld", name, (long long)step);
    if (cx->is_eval && cx->ckpt) fprintf(f, ", \"ckpt\": \"%s\"", cx->ckpt);
    for (int i = 0; i < m->n; i++) fprintf(f, ", \"%s\": %.6g", m->name[i], m->value[i]);
    fprintf(f, "}\n");
    fclose(f);
}

// Runs the task's eval on one split (if the split has data) and reports every set.
int ft_run_eval(FtContext *cx, const Task *task, Model *m, const char *split, int64_t step) {
    const PathList *l = !strcmp(split, "val") ? &cx->rc.task.val : &cx->rc.task.test;
    if (l->n == 0) return 0;
    FtMetrics out[8];
    memset(out, 0, sizeof(out));
    int n = task->eval(cx, m, split, step, out, 8);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        // a task that returns several sets names each with a first metric "set:NAME"
        FtMetrics r = out[i];
        char name[96];
        snprintf(name, sizeof(name), "%s", split);
        if (r.n > 0 && !strncmp(r.name[0], "set:", 4)) {
            snprintf(name, sizeof(name), "%.90s", r.name[0] + 4);
            r.n--;
            memmove(r.name, r.name + 1, sizeof(r.name[0]) * (size_t)r.n);
            memmove(r.value, r.value + 1, sizeof(r.value[0]) * (size_t)r.n);
        }
        ft_report(cx, name, step, &r);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Training harness

typedef struct {
    FtContext *cx;
    Model *m;
    AdamW *adam;
    FtHooks *h;
    Loader *L;
    int64_t step;
} Run;

static void extra_path(char *buf, size_t n, const char *ckpt) { snprintf(buf, n, "%s.extra", ckpt); }

// Removes NAME.h5.extra files whose checkpoint is gone (after checkpoint_prune).
static void prune_extras(const char *run_dir) {
    DIR *dir = opendir(run_dir);
    if (!dir) return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!ft_ends_with(e->d_name, ".h5.extra")) continue;
        char p[4096], h5[4096];
        snprintf(p, sizeof(p), "%s/%s", run_dir, e->d_name);
        snprintf(h5, sizeof(h5), "%.*s", (int)(strlen(p) - 6), p);
        if (access(h5, F_OK) != 0) unlink(p);
    }
    closedir(dir);
}

static int save_checkpoint(Run *r) {
    FtContext *cx = r->cx;
    int ok = 1;
    char path[4096], err[1024] = "";
    if (cx->R0) {
        CheckpointMeta meta = {0};
        meta.step = r->step;
        loader_position(r->L, &meta.epoch, &meta.epoch_step);
        meta.seed = cx->seed;
        meta.world_size = cx->d.world;
        meta.config_yaml = config_to_yaml(&cx->rc);
        checkpoint_path(path, sizeof(path), cx->run_dir, meta.step);
        if (r->h->save_extra) {  // first, so a complete checkpoint always has its extra state
            char xp[4200];
            extra_path(xp, sizeof(xp), path);
            ok = r->h->save_extra(r->h->state, xp, err, sizeof(err)) == 0;
        }
        if (ok) ok = checkpoint_save(path, r->m, r->adam, &meta, err, sizeof(err)) == 0;
        free(meta.config_yaml);
        if (ok) {
            printf("checkpoint %s (epoch %lld, step %lld of the epoch)\n", path, (long long)meta.epoch,
                   (long long)meta.epoch_step);
            if (cx->rc.train.keep_checkpoints > 0) {
                checkpoint_prune(cx->run_dir, cx->rc.train.keep_checkpoints);
                prune_extras(cx->run_dir);
            }
        } else {
            fprintf(stderr, "vlmae finetune: checkpoint failed: %s (the previous checkpoint is kept)\n", err);
        }
        fflush(stdout);
    }
    return !dist_any(&cx->d, !ok);
}

static void shape_batch(Batch *b, const ModelConfig *c, int B, int T, int S) {
    memset(b, 0, sizeof(*b));
    b->B = B, b->T = T, b->H = b->W = S;
    b->image = callocCheck((size_t)B * 3 * S * S, sizeof(float));
    b->text_ids = callocCheck((size_t)B * T, sizeof(int32_t));
    b->text_mask = callocCheck((size_t)B * T, sizeof(int32_t));
    b->box = callocCheck((size_t)B * 4, sizeof(float));
    b->image_id = callocCheck((size_t)B, sizeof(int64_t));
    for (int i = 0; i < B * T; i++) b->text_ids[i] = i % T == 0 ? c->cls_id : c->mask_id, b->text_mask[i] = 1;
    for (int i = 0; i < B; i++) b->image_id[i] = i;
}

static void free_batch(Batch *b) {
    free(b->image), free(b->text_ids), free(b->text_mask), free(b->box), free(b->image_id);
}

int ft_train(FtContext *cx, FtHooks *h) {
    RunConfig *rc = &cx->rc;
    const Dist *d = &cx->d;
    int R0 = cx->R0;
    char err[2048];
    const Task *task = task_find(rc->task.name);

    // Resume?
    char ckpt[4096] = "";
    if (cx->resume && !strcmp(cx->resume, "auto")) {
        int rcf = checkpoint_find_latest(cx->run_dir, ckpt, sizeof(ckpt));
        if (rcf < 0) dist_abort(d, 2);
        if (rcf == 1) ckpt[0] = 0;
    } else if (cx->resume) {
        snprintf(ckpt, sizeof(ckpt), "%s", cx->resume);
    }
    Model m;
    const char *weights = ckpt[0] ? ckpt : cx->init;
    if (!weights && R0)
        fprintf(stderr, "vlmae finetune: warning: no --init checkpoint: fine-tuning a randomly initialised model\n");
    if (ft_build_model(cx, &m, weights, err, sizeof(err)) != 0) {
        if (R0) fprintf(stderr, "vlmae finetune: %s\n", err);
        dist_abort(d, 2);
    }
    if (config_validate(rc, d->world, err, sizeof(err)) != 0) {
        if (R0) fprintf(stderr, "vlmae finetune: %s\n", err);
        dist_abort(d, 2);
    }
    // No silent hangs (train/watchdog.h): a phase that outlasts runtime.timeout_s ends the job.
    Watchdog *wd = watchdog_start(rc->runtime.timeout_s, d, NULL, NULL);
    Loader *L = ft_open_loader(cx, &rc->task.train, FT_TRAIN, rc->train.batch_size, err, sizeof(err));
    if (!L) {
        fprintf(stderr, "vlmae finetune (rank %d): task.train: %s\n", d->rank, err);
        dist_abort(d, 2);
    }
    int64_t spe = loader_steps_per_epoch(L);
    int64_t total = rc->train.max_steps > 0 ? rc->train.max_steps : spe * rc->train.epochs;

    Batch shape;
    shape_batch(&shape, &m.cfg, rc->train.batch_size, rc->task.text_max_len, rc->task.image_size);
    h->init(h->state, &m, &shape, cx);
    free_batch(&shape);
    params_zero_grad(&m.params);
    AdamW adam;
    adamw_init(&adam, &m.params, rc->train.beta1, rc->train.beta2, rc->train.eps, rc->train.weight_decay);
    LrSchedule sched = {.lr = rc->train.lr, .warmup_lr = rc->train.warmup_lr, .min_lr = rc->train.min_lr,
                        .warmup_steps = rc->train.warmup_steps, .total_steps = total};

    Run run = {cx, &m, &adam, h, L, 0};
    if (ckpt[0]) {
        CheckpointMeta meta = {0};
        if (checkpoint_load(ckpt, &m, &adam, &meta, err, sizeof(err)) != 0) {
            fprintf(stderr, "vlmae finetune (rank %d): %s\n", d->rank, err);
            dist_abort(d, 2);
        }
        run.step = meta.step;
        if (loader_seek(L, meta.epoch, meta.epoch_step) != 0) {
            if (R0) fprintf(stderr, "vlmae finetune: %s: data position epoch %lld step %lld is outside this data set\n",
                            ckpt, (long long)meta.epoch, (long long)meta.epoch_step);
            dist_abort(d, 2);
        }
        checkpoint_meta_free(&meta);
        if (h->load_extra) {
            char xp[4200];
            extra_path(xp, sizeof(xp), ckpt);
            if (h->load_extra(h->state, xp, err, sizeof(err)) != 0) {
                if (R0) fprintf(stderr, "vlmae finetune: %s\n", err);
                dist_abort(d, 2);
            }
        }
        if (R0) printf("resumed from %s at step %lld\n", ckpt, (long long)run.step);
    }

    if (R0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/config.yaml", cx->run_dir);
        FILE *f = fopenCheck(path, "w");
        config_dump(rc, f);
        fclose(f);
        printf("vlmae finetune: task %s, %lld parameters, image %d px, %d rank(s) x batch %d, %lld texts, "
               "%lld steps/epoch, %lld steps; run dir %s\n",
               rc->task.name, (long long)m.params.values, m.cfg.image_size, d->world, rc->train.batch_size,
               (long long)loader_num_texts(L), (long long)spe, (long long)total, cx->run_dir);
        fflush(stdout);
    }
    char logpath[4096];
    snprintf(logpath, sizeof(logpath), "%s/log.jsonl", cx->run_dir);
    FILE *jlog = R0 ? fopenCheck(logpath, "a") : NULL;

    signal(SIGUSR1, on_signal);
    signal(SIGTERM, on_signal);
    double t_win = now_seconds();
    int64_t win = 0, last_eval_step = -1;
    double acc[6] = {0};
    float losses[6];
    int status = 0;
    while (run.step < total) {
        watchdog_phase(wd, "sync", run.step);
        if (dist_any(d, stop_signal != 0)) {
            if (R0) printf("signal received: checkpointing at step %lld\n", (long long)run.step);
            watchdog_phase(wd, "checkpoint", run.step);
            status = save_checkpoint(&run) ? EXIT_REQUEUE : 4;
            break;
        }
        Batch *b;
        watchdog_phase(wd, "data", run.step);
        if (loader_next(L, &b) != 1) {
            fprintf(stderr, "vlmae finetune (rank %d): data: %s\n", d->rank, loader_error(L));
            dist_abort(d, 3);
        }
        int64_t s = run.step;
        float alpha = rc->task.distill ? rc->train.alpha : 0.0f;  // task.distill false: no teacher term
        if (rc->train.alpha_ramp && s < spe) alpha *= (float)s / (float)spe;  // ALBEF's first-epoch ramp
        if (h->clamp_temp) model_clamp_temp(&m);
        if (h->momentum) model_momentum_update(&m, m.cfg.momentum);
        params_zero_grad(&m.params);
        Rng rng;
        rng_seed_stream(&rng, cx->seed, (uint64_t)d->rank, (uint64_t)s);
        for (int k = 0; k < 6; k++) losses[k] = 0.0f;
        watchdog_phase(wd, "step", s);
        h->step(h->state, &m, b, alpha, &rng, losses);
        watchdog_phase(wd, "allreduce", s);
        dist_allreduce_mean(d, m.params.grad, m.params.total);
        int bad = 0;
        char what[160] = "";
        for (int k = 0; k < h->n_losses && !bad; k++)
            if (!isfinite(losses[k])) bad = 1, snprintf(what, sizeof(what), "loss %s = %g", h->loss_names[k], losses[k]);
        if (!bad && !ops_cpu.all_finite(m.params.grad, m.params.total)) {
            bad = 1;  // the all-reduced gradients (the same on every rank): name the first bad parameter
            snprintf(what, sizeof(what), "a parameter gradient");
            for (int i = 0; i < m.params.count; i++)
                if (!ops_cpu.all_finite(m.params.grad + m.params.p[i].offset, m.params.p[i].n)) {
                    snprintf(what, sizeof(what), "gradient of %s", m.params.p[i].name);
                    break;
                }
        }
        if (dist_any(d, bad)) {
            dist_nonfinite_where(d, bad, what, sizeof(what));
            if (rc->train.nonfinite == 0) {
                if (R0) fprintf(stderr, "vlmae finetune: non-finite %s at step %lld: stopping (train.nonfinite: stop)\n",
                                what, (long long)s);
                status = 3;
                break;
            }
            if (R0) printf("step %lld skipped: non-finite %s\n", (long long)s, what);
            run.step++;
            continue;
        }
        if (h->after_step) h->after_step(h->state, &m, d);
        float lr = lr_at(&sched, s);
        adamw_step(&adam, &m.params, lr);
        run.step++;
        s = run.step;
        for (int k = 0; k < h->n_losses; k++) acc[k] += losses[k];
        win++;
        if (s % rc->train.log_every == 0 || s == total) {
            double mean[6];
            for (int k = 0; k < h->n_losses; k++) mean[k] = dist_sum(d, acc[k]) / (d->world * (double)win);
            double now = now_seconds(), sps = rc->train.batch_size * d->world * win / (now - t_win);
            if (R0) {
                printf("step %lld/%lld ep %.2f |", (long long)s, (long long)total, (double)s / spe);
                for (int k = 0; k < h->n_losses; k++) printf(" %s %.4f", h->loss_names[k], mean[k]);
                printf(" | lr %.3g | alpha %.3f | %.1f samples/s\n", lr, alpha, sps);
                fprintf(jlog, "{\"step\": %lld, \"epoch\": %.4f", (long long)s, (double)s / spe);
                for (int k = 0; k < h->n_losses; k++) fprintf(jlog, ", \"%s\": %.6f", h->loss_names[k], mean[k]);
                fprintf(jlog, ", \"lr\": %.6g, \"alpha\": %.4f, \"temp\": %.5f, \"samples_per_s\": %.3f}\n", lr, alpha,
                        m.temp->data[0], sps);
                fflush(stdout);
                fflush(jlog);
            }
            memset(acc, 0, sizeof(acc));
            win = 0;
            t_win = now;
        }
        int ep = (int)(s / spe);
        int eval_now = s % spe == 0 && rc->task.eval_every > 0 && ep % rc->task.eval_every == 0 && s != total && task;
        // checkpoints: every ckpt_every steps, at the end, at --stop-after, and the model each
        // epoch-end evaluation sees (ALBEF keeps one per epoch)
        if ((rc->train.ckpt_every > 0 && s % rc->train.ckpt_every == 0) || s == total || s == cx->stop_after || eval_now) {
            watchdog_phase(wd, "checkpoint", s);
            if (!save_checkpoint(&run)) {
                status = 4;
                break;
            }
        }
        if (eval_now) {
            watchdog_phase(wd, "eval", s);
            if (ft_run_eval(cx, task, &m, "val", s) || ft_run_eval(cx, task, &m, "test", s)) status = 5;
            last_eval_step = s;
            t_win = now_seconds();
            if (status) break;
        }
        if (s == cx->stop_after) {
            if (R0) printf("stopped after step %lld (--stop-after)\n", (long long)s);
            break;
        }
    }
    if (status == 0 && run.step == total && last_eval_step != total && task) {
        watchdog_phase(wd, "eval", total);
        if (ft_run_eval(cx, task, &m, "val", total) || ft_run_eval(cx, task, &m, "test", total)) status = 5;
    }
    if (R0 && status == 0 && run.step == total) printf("done: %lld steps\n", (long long)run.step);
    watchdog_stop(wd);
    if (jlog) fclose(jlog);
    loader_close(L);
    if (h->free) h->free(h->state);
    adamw_free(&adam);
    model_free(&m);
    return status;
}
