// bench.c: `vlmae bench` — what a pre-training step costs, per objective (albef, tcl, vlmae) on one
// engine, on random in-memory batches (no data loading: this measures the model and the trainer):
// ms/step, samples/s, model MACs per sample (thop and full conventions, flops.h), MFU, peak memory
// (RSS high-water mark of the process and the activation arena), and the projected time of one
// epoch over the 4M set on W ranks. Prints a table; --out DIR writes DIR/bench.json and
// DIR/bench.md (bench/run.sh collects them into bench/report.md). Under mpirun every rank runs the
// full trainer step (gradient all-reduce included) and rank 0 reports. No pass/fail.
#include "cli/bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "engine/common.h"
#include "model/flops.h"
#include "train/backend.h"
#include "train/dist.h"
#include "train/trainer.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// CPU time of the process (all threads): on a shared machine the work done, apart from waiting.
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

// Peak fp32 FLOP/s of this CPU: cores x clock x FLOPs per cycle (2 FMA units of 8 (AVX2) or 16
// (AVX-512) lanes). AMD Zen 4 (family 25) runs AVX-512 on 256-bit units: 32 per cycle, as AVX2.
// An estimate from /proc/cpuinfo; --peak-gflops overrides it.
double cpu_peak_flops(int threads) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    double mhz = 0.0;
    int avx512 = 0, avx2 = 0, amd = 0, family = 0;
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
        if (mhz == 0.0 && strncmp(line, "cpu MHz", 7) == 0) mhz = atof(strchr(line, ':') + 1);
        if (strncmp(line, "vendor_id", 9) == 0) amd = strstr(line, "AuthenticAMD") != NULL;
        if (family == 0 && strncmp(line, "cpu family", 10) == 0) family = atoi(strchr(line, ':') + 1);
        if (strncmp(line, "flags", 5) == 0) {
            avx512 |= strstr(line, " avx512f") != NULL;
            avx2 |= strstr(line, " avx2") != NULL && strstr(line, " fma") != NULL;
        }
    }
    if (f) fclose(f);
    if (mhz <= 0.0) mhz = 2000.0;
    if (amd && family <= 25) avx512 = 0;  // Zen 4 and older: 256-bit FMA datapaths
    double per_cycle = avx512 ? 64.0 : avx2 ? 32.0 : 8.0;
    return threads * mhz * 1e6 * per_cycle;
}

// ---------------------------------------------------------------------------------------------
// Machine facts for the report

// Keeps a string JSON-safe (no quotes, backslashes or control characters).
static void json_safe(char *s) {
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) *s = ' ';
}

static void cpu_model(char *out, size_t n) {
    snprintf(out, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *v = strchr(line, ':');
            if (!v) break;
            v++;
            while (*v == ' ' || *v == '\t') v++;
            snprintf(out, n, "%s", v);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    }
    if (f) fclose(f);
}

static double loadavg1(void) {
    double l = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1.0;
        fclose(f);
    }
    return l;
}

// Resets the process's RSS high-water mark (Linux: "5" > /proc/self/clear_refs). Returns 0 on
// success; without it the reported peak is that of the whole run so far.
static int reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1.0;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

// ---------------------------------------------------------------------------------------------
// Models and batches

// "small": a ViT-S/BERT-small sized model at 128px for CPU scaling runs (a realistic gradient size
// for the all-reduce, steps of seconds).
static void config_small(ModelConfig *c) {
    model_config_base(c);
    c->image_size = 128, c->patch_size = 16;
    c->vision_width = 384, c->vision_depth = 6, c->vision_heads = 6, c->vision_mlp = 1536;
    c->text_width = 384, c->text_heads = 6, c->text_mlp = 1536;
    c->text_layers = 3, c->fusion_layers = 3, c->max_text_len = 64;
    c->decoder_width = 256, c->decoder_depth = 2, c->decoder_heads = 8, c->decoder_mlp = 1024;
    c->embed_dim = 128, c->queue_size = 4096;
}

static int model_preset(const char *name, ModelConfig *c) {
    if (!strcmp(name, "base")) model_config_base(c);
    else if (!strcmp(name, "small")) config_small(c);
    else if (!strcmp(name, "tiny")) model_config_tiny(c);
    else return -1;
    return 0;
}

// Random batch: normalised-range pixels, [CLS] + random word ids, every token real (the text
// length is the one measured), no region boxes; tcl gets a second view.
static void random_batch(Batch *bt, const ModelConfig *c, int B, int T, int two_views, Rng *r) {
    int S = c->image_size;
    size_t npx = (size_t)B * 3 * S * S;
    memset(bt, 0, sizeof(*bt));
    bt->B = B, bt->T = T, bt->H = bt->W = S;
    bt->image = mallocCheck(sizeof(float) * npx);
    bt->image2 = two_views ? mallocCheck(sizeof(float) * npx) : NULL;
    bt->text_ids = mallocCheck(sizeof(int32_t) * B * T);
    bt->text_mask = mallocCheck(sizeof(int32_t) * B * T);
    bt->box = mallocCheck(sizeof(float) * B * 4);
    bt->image_id = mallocCheck(sizeof(int64_t) * B);
    for (size_t i = 0; i < npx; i++) bt->image[i] = (float)rng_normal(r);
    if (bt->image2)
        for (size_t i = 0; i < npx; i++) bt->image2[i] = (float)rng_normal(r);
    int lo = c->vocab_size > 2000 ? 1000 : 3;  // ordinary word ids (not the special tokens)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            bt->text_ids[b * T + t] = t == 0 ? c->cls_id : lo + (int)rng_randint(r, (c->vocab_size - lo) / 2);
            bt->text_mask[b * T + t] = 1;
        }
        for (int k = 0; k < 4; k++) bt->box[b * 4 + k] = NAN;
        bt->image_id[b] = b;
    }
}

static void free_random_batch(Batch *bt) {
    free(bt->image), free(bt->image2), free(bt->text_ids), free(bt->text_mask), free(bt->box), free(bt->image_id);
}


// ---------------------------------------------------------------------------------------------
// One objective

typedef struct {
    Objective obj;
    int queue;
    double setup_s, ms_median, ms_mean, ms_min, ms_max, samples_s, cpu_s_step;
    double gmacs_thop, gmacs_full, gmacs_online, gmacs_momentum, train_gflop_sample, mfu;
    double rss_mib, arena_mib, state_mib, allreduce_ms;
    double device_mib;  // device memory in use after the run (device backends), else -1
    double steps_per_epoch, epoch_h, rank_h;
    size_t params, momentum;
    int rss_reset;
    Losses l;
} Result;

typedef struct {
    const char *model;
    int B, T, steps, warmup, queue, proj_world;
    double texts, peak;  // peak FLOP/s of one rank
    const Dist *d;
    const Ops *ops;      // the backend (--device)
} Setup;

static void run_objective(const Setup *su, Objective obj, Result *res) {
    memset(res, 0, sizeof(*res));
    res->obj = obj;
    res->rss_reset = reset_peak_rss() == 0;
    ModelConfig c;
    model_preset(su->model, &c);
    c.objective = obj;
    c.max_text_len = MAX(c.max_text_len, su->T);
    int gb = su->B * su->d->world;  // the queue takes a whole gathered batch per step
    int Q = su->queue > 0 ? su->queue : c.queue_size;
    Q = MAX(gb, Q / gb * gb);
    c.queue_size = Q;
    res->queue = Q;

    double t0 = now_seconds();
    Model m;
    model_create(&m, &c);
    model_init_weights(&m, 1);
    Rng r;
    rng_seed_stream(&r, 11, (uint64_t)su->d->rank, 0);
    Batch bt;
    random_batch(&bt, &c, su->B, su->T, obj == OBJ_TCL, &r);
    TrainerOptions o = {.alpha = 0.4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.02f,
                        .seed = 1, .nonfinite = NONFINITE_SKIP};
    o.lr = (LrSchedule){.lr = 1e-4f, .warmup_lr = 1e-5f, .min_lr = 1e-5f, .warmup_steps = 100, .total_steps = 1000};
    Trainer t;
    model_use_backend(&m, su->ops);
    trainer_init(&t, &m, su->d, &o, &bt);
    res->setup_s = now_seconds() - t0;

    for (int s = 0; s < su->warmup; s++) trainer_step(&t, &bt, &res->l);
    su->ops->synchronize();
    double *dt = mallocCheck(sizeof(double) * su->steps), *dc = mallocCheck(sizeof(double) * su->steps);
    dist_barrier(su->d);
    for (int s = 0; s < su->steps; s++) {
        double a = now_seconds(), ac = cpu_s();
        trainer_step(&t, &bt, &res->l);
        su->ops->synchronize();  // a device step ends when its queued work does
        dt[s] = now_seconds() - a, dc[s] = cpu_s() - ac;
    }
    double sum = 0.0;
    for (int s = 0; s < su->steps; s++) sum += dt[s];
    int W = su->d->world;
    // every rank waits for the slowest in the all-reduce, so the ranks' times agree; average them
    double med = median(dt, su->steps);
    res->cpu_s_step = dist_sum(su->d, median(dc, su->steps)) / W;
    free(dc);
    res->ms_median = 1e3 * dist_sum(su->d, med) / W;
    res->ms_mean = 1e3 * dist_sum(su->d, sum / su->steps) / W;
    res->ms_min = 1e3 * dist_sum(su->d, dt[0]) / W;
    res->ms_max = 1e3 * dist_sum(su->d, dt[su->steps - 1]) / W;
    free(dt);

    // the gradient all-reduce alone (identity on one rank)
    dist_barrier(su->d);
    double a = now_seconds();
    const int reps = 3;
    for (int k = 0; k < reps; k++) dist_allreduce_mean(su->d, m.params.grad, m.params.total);
    res->allreduce_ms = 1e3 * dist_sum(su->d, (now_seconds() - a) / reps) / W;

    double step_s = res->ms_median / 1e3;
    res->samples_s = su->B * W / step_s;  // all ranks together
    Macs thop = macs_per_sample(&c, su->T, 0), full = macs_per_sample(&c, su->T, 1);
    res->gmacs_thop = (thop.online + thop.momentum) / 1e9;
    res->gmacs_full = (full.online + full.momentum) / 1e9;
    res->gmacs_online = full.online / 1e9, res->gmacs_momentum = full.momentum / 1e9;
    res->train_gflop_sample = train_flops_per_sample(&c, su->T) / 1e9;
    res->mfu = train_flops_per_sample(&c, su->T) * su->B / step_s / su->peak;
    res->rss_mib = peak_rss_mib();
    res->device_mib = backend_memory_mib(su->ops);
    res->arena_mib = t.step.arena.cap / 1048576.0;
    res->params = m.params.values, res->momentum = m.momentum.values;
    // parameters, gradients, AdamW moments, momentum copy, queues (float32)
    res->state_mib = (4.0 * m.params.total + m.momentum.total + 2.0 * Q * c.embed_dim) * 4.0 / 1048576.0;
    res->steps_per_epoch = ceil(su->texts / ((double)su->B * su->proj_world));
    res->epoch_h = step_s * res->steps_per_epoch / 3600.0;
    res->rank_h = res->epoch_h * su->proj_world;

    trainer_free(&t);
    model_free(&m);
    free_random_batch(&bt);
}

// ---------------------------------------------------------------------------------------------
// Output

typedef struct {
    char cpu[256], host[128], date[64], backend[256];
    int logical_cpus, threads, ranks;
    double peak_gflops, load_start, load_end;
} Machine;

static void write_json(FILE *f, const Machine *mc, const Setup *su, const Result *r, int n) {
    fprintf(f, "{\n  \"tool\": \"vlmae bench\", \"version\": \"%s\",\n", PACKAGE_STRING);
    fprintf(f, "  \"machine\": {\"device\": \"%s\", \"cpu\": \"%s\", \"host\": \"%s\", \"date\": \"%s\", "
               "\"logical_cpus\": %d, \"threads_per_rank\": %d, \"ranks\": %d, \"peak_gflops_per_rank\": %.1f, "
               "\"loadavg_start\": %.2f, \"loadavg_end\": %.2f},\n",
            mc->backend, mc->cpu, mc->host, mc->date, mc->logical_cpus, mc->threads, mc->ranks, mc->peak_gflops, mc->load_start,
            mc->load_end);
    fprintf(f, "  \"setup\": {\"model\": \"%s\", \"batch_per_rank\": %d, \"text_len\": %d, \"steps\": %d, "
               "\"warmup\": %d, \"projection_world\": %d, \"projection_texts\": %.0f},\n",
            su->model, su->B, su->T, su->steps, su->warmup, su->proj_world, su->texts);
    fprintf(f, "  \"results\": [\n");
    for (int i = 0; i < n; i++) {
        const Result *x = &r[i];
        fprintf(f, "    {\"objective\": \"%s\", \"queue_size\": %d, \"setup_s\": %.2f, \"ms_per_step\": %.3f, "
                   "\"ms_mean\": %.3f, \"ms_min\": %.3f, \"ms_max\": %.3f, \"cpu_s_per_step\": %.3f, "
                   "\"samples_per_s\": %.4f,\n",
                objective_name(x->obj), x->queue, x->setup_s, x->ms_median, x->ms_mean, x->ms_min, x->ms_max,
                x->cpu_s_step, x->samples_s);
        fprintf(f, "     \"gmacs_thop\": %.4f, \"gmacs_full\": %.4f, \"gmacs_full_online\": %.4f, "
                   "\"gmacs_full_momentum\": %.4f, \"train_gflop_per_sample\": %.4f, \"mfu\": %.5f,\n",
                x->gmacs_thop, x->gmacs_full, x->gmacs_online, x->gmacs_momentum, x->train_gflop_sample, x->mfu);
        fprintf(f, "     \"peak_rss_mib\": %.1f, \"peak_rss_per_objective\": %s, \"arena_mib\": %.1f, "
                   "\"state_mib\": %.1f, \"params\": %zu, \"momentum_params\": %zu, \"grad_bytes\": %zu, "
                   "\"allreduce_ms\": %.3f, \"device_mib\": %.1f,\n",
                x->rss_mib, x->rss_reset ? "true" : "false", x->arena_mib, x->state_mib, x->params, x->momentum,
                x->params * sizeof(float), x->allreduce_ms, x->device_mib);
        fprintf(f, "     \"steps_per_epoch\": %.0f, \"epoch_hours\": %.4f, \"rank_hours_per_epoch\": %.3f,\n",
                x->steps_per_epoch, x->epoch_h, x->rank_h);
        // JSON has no NaN or Inf: a non-finite loss is written as null and flagged, so that a reader
        // (tests/gpu/run.sh) fails loudly instead of choking on the file or comparing nothing.
        const float lv[7] = {x->l.itc, x->l.itm, x->l.mlm, x->l.rmim, x->l.ifr, x->l.imc, x->l.lmi};
        const char *ln[7] = {"itc", "itm", "mlm", "rmim", "ifr", "imc", "lmi"};
        int finite = 1;
        fprintf(f, "     \"loss\": {");
        for (int k = 0; k < 7; k++) {
            finite &= isfinite(lv[k]) != 0;
            if (isfinite(lv[k])) fprintf(f, "%s\"%s\": %.5f", k ? ", " : "", ln[k], lv[k]);
            else fprintf(f, "%s\"%s\": null", k ? ", " : "", ln[k]);
        }
        fprintf(f, "}, \"losses_finite\": %s}%s\n", finite ? "true" : "false", i + 1 < n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
}

static void write_md(FILE *f, const Machine *mc, const Setup *su, const Result *r, int n) {
    fprintf(f, "# vlmae bench: model %s, batch %d per rank, %d text tokens\n\n", su->model, su->B, su->T);
    fprintf(f, "Machine: %s (%s), backend %s, %d logical CPUs, %d rank(s) x %d OpenMP threads; peak %.1f "
               "GFLOP/s per rank (estimate); load average %.2f at start, %.2f at end; %s; %s.\n\n",
            mc->cpu, mc->host, mc->backend, mc->logical_cpus, mc->ranks, mc->threads, mc->peak_gflops, mc->load_start,
            mc->load_end, mc->date, PACKAGE_STRING);
    fprintf(f, "Median of %d timed steps after %d warm-up steps (full trainer step: forward, backward, "
               "all-reduce, AdamW, momentum update, queue). Epoch: %.2fM texts on %d ranks at this step time.\n\n",
            su->steps, su->warmup, su->texts / 1e6, su->proj_world);
    fprintf(f, "| objective | ms/step | samples/s | GMACs/sample (thop) | GMACs/sample (full) | MFU | peak RSS MiB "
               "| arena MiB | epoch h (%d ranks) | rank-h/epoch |\n",
            su->proj_world);
    fprintf(f, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) {
        const Result *x = &r[i];
        fprintf(f, "| %s | %.1f | %.3f | %.2f | %.2f | %.1f%% | %.0f | %.0f | %.1f | %.0f |\n", objective_name(x->obj),
                x->ms_median, x->samples_s, x->gmacs_thop, x->gmacs_full, 100.0 * x->mfu, x->rss_mib, x->arena_mib,
                x->epoch_h, x->rank_h);
    }
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlmae bench [--model tiny|small|base] [--objective albef|tcl|vlmae|all|LIST]\n"
            "                   [--batch B] [--text-len T] [--steps N] [--warmup N] [--queue Q]\n"
            "                   [--world W] [--texts N] [--peak-gflops G] [--out DIR] [--json FILE]\n"
            "                   [--device cpu|cuda|guard] [--precision fp32|bf16]\n"
            "Times pre-training steps (forward, backward, all-reduce, AdamW, momentum update, queue) on\n"
            "random batches and reports per objective: ms/step (median), samples/s, model MACs per sample\n"
            "(thop and full conventions), MFU against the device's estimated peak (CPU: fp32; CUDA: the\n"
            "precision's dense tensor-core peak), peak RSS (CUDA: device memory in use), the activation\n"
            "arena, and the projected epoch time: step time x texts / (batch x W).\n"
            "  --device     cpu (default), cuda (one GPU per rank: local rank modulo the node's GPUs), or\n"
            "               guard (the CPU behind a device-memory guard: a slow debugging aid)\n"
            "  --precision  fp32, or bf16 GEMMs with fp32 accumulation (cuda only; cuda's default)\n"
            "  --objective  one name, a comma-separated list, or all (albef,tcl,vlmae; default all)\n"
            "  --queue      ITC queue length (default: the model's, rounded to a multiple of batch x ranks)\n"
            "  --world      ranks of the projection (default 8); --texts: texts per epoch (default 7.04e6)\n"
            "  --out DIR    write DIR/bench.json and DIR/bench.md; --json FILE: the JSON alone\n"
            "Defaults: tiny model, batch 8, 16 tokens, 10 steps after 2 warm-up steps. Under mpirun every\n"
            "rank runs the step (with the real gradient all-reduce) and rank 0 reports.\n");
}

int bench_main(int argc, char **argv) {
    const char *objective = "all", *json = NULL, *out = NULL, *device = "cpu", *precision = NULL;
    Setup su = {.model = "tiny", .B = 8, .T = 16, .steps = 10, .warmup = 2, .queue = 0, .proj_world = 8,
                .texts = 7.04e6};
    double peak_gflops = 0.0;
    static struct option opts[] = {{"model", 1, 0, 'm'},    {"objective", 1, 0, 'o'}, {"batch", 1, 0, 'b'},
                                   {"text-len", 1, 0, 't'}, {"steps", 1, 0, 's'},     {"warmup", 1, 0, 'w'},
                                   {"queue", 1, 0, 'q'},    {"world", 1, 0, 'W'},     {"texts", 1, 0, 'x'},
                                   {"peak-gflops", 1, 0, 'p'}, {"json", 1, 0, 'j'},   {"out", 1, 0, 'O'},
                                   {"device", 1, 0, 'D'},   {"precision", 1, 0, 'P'},
                                   {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': su.model = optarg; break;
        case 'o': objective = optarg; break;
        case 'b': su.B = atoi(optarg); break;
        case 't': su.T = atoi(optarg); break;
        case 's': su.steps = atoi(optarg); break;
        case 'w': su.warmup = atoi(optarg); break;
        case 'q': su.queue = atoi(optarg); break;
        case 'W': su.proj_world = atoi(optarg); break;
        case 'x': su.texts = atof(optarg); break;
        case 'p': peak_gflops = atof(optarg); break;
        case 'j': json = optarg; break;
        case 'O': out = optarg; break;
        case 'D': device = optarg; break;
        case 'P': precision = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    ModelConfig probe;
    if (model_preset(su.model, &probe)) die("bench: --model must be tiny, small or base, got '%s'", su.model);
    if (su.B < 2 || su.T < 2 || su.steps < 1 || su.warmup < 0 || su.proj_world < 1 || !(su.texts > 0))
        die("bench: need --batch >= 2, --text-len >= 2, --steps >= 1, --warmup >= 0, --world >= 1, --texts > 0");
    // which objectives, in the report's order
    const Objective all[3] = {OBJ_ALBEF, OBJ_TCL, OBJ_VLMAE};
    int want[3] = {0, 0, 0};
    if (!strcmp(objective, "all")) {
        want[0] = want[1] = want[2] = 1;
    } else {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", objective);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int found = 0;
            for (int i = 0; i < 3; i++)
                if (!strcmp(tok, objective_name(all[i]))) want[i] = found = 1;
            if (!found) die("bench: unknown objective '%s' (albef, tcl, vlmae or all)", tok);
        }
    }

    RuntimeDevice dev_kind;
    if (!strcmp(device, "cpu")) dev_kind = DEVICE_CPU;
    else if (!strcmp(device, "cuda")) dev_kind = DEVICE_CUDA;
    else if (!strcmp(device, "guard")) dev_kind = DEVICE_GUARD;
    else die("bench: --device must be cpu, cuda or guard, got '%s'", device);
    if (!precision) precision = dev_kind == DEVICE_CUDA ? "bf16" : "fp32";
    Precision prec;
    if (!strcmp(precision, "fp32")) prec = PRECISION_FP32;
    else if (!strcmp(precision, "bf16")) prec = PRECISION_BF16;
    else die("bench: --precision must be fp32 or bf16, got '%s'", precision);

    Dist d;
    dist_init(&d, &argc, &argv);
    su.d = &d;
    char err[512];
    su.ops = backend_open(dev_kind, prec, d.local_rank, err, sizeof(err));
    if (!su.ops) die("bench: %s", err);

    int R0 = d.rank == 0;
    Machine mc = {0};
    double device_peak;
    backend_describe(su.ops, mc.backend, sizeof(mc.backend), &device_peak);
    cpu_model(mc.cpu, sizeof(mc.cpu));
    if (gethostname(mc.host, sizeof(mc.host)) != 0) snprintf(mc.host, sizeof(mc.host), "unknown");
    mc.host[sizeof(mc.host) - 1] = 0;
    json_safe(mc.cpu), json_safe(mc.host);
    time_t now = time(NULL);
    strftime(mc.date, sizeof(mc.date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
    mc.logical_cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    mc.threads = omp_get_max_threads();
    mc.ranks = d.world;
    json_safe(mc.backend);
    su.peak = peak_gflops > 0 ? peak_gflops * 1e9 : device_peak > 0 ? device_peak : cpu_peak_flops(mc.threads);
    mc.peak_gflops = su.peak / 1e9;
    mc.load_start = loadavg1();

    if (R0) {
        printf("vlmae bench: %s, backend %s, %d rank(s) x %d threads, peak %.1f GFLOP/s per rank (estimate), "
               "load %.2f\n",
               mc.cpu, mc.backend, d.world, mc.threads, su.peak / 1e9, mc.load_start);
        printf("model %s, batch %d per rank, text %d, %d steps after %d warm-up; epoch = %.2fM texts on %d ranks\n",
               su.model, su.B, su.T, su.steps, su.warmup, su.texts / 1e6, su.proj_world);
        printf("%-9s %10s %10s %8s %8s %6s %9s %9s %9s %8s\n", "objective", "ms/step", "samples/s", "GMACs", "GMACs",
               "MFU", su.ops->host_memory ? "peak RSS" : "device", "arena", "epoch h", "rank-h");
        printf("%-9s %10s %10s %8s %8s %6s %9s %9s %9s %8s\n", "", "(median)", "", "thop", "full", "", "MiB", "MiB",
               "", "/epoch");
        fflush(stdout);
    }
    Result res[3];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        if (!want[i]) continue;
        Result *x = &res[n++];
        run_objective(&su, all[i], x);
        if (R0) {
            printf("%-9s %10.1f %10.3f %8.2f %8.2f %5.1f%% %9.0f %9.0f %9.1f %8.0f\n", objective_name(x->obj),
                   x->ms_median, x->samples_s, x->gmacs_thop, x->gmacs_full, 100.0 * x->mfu,
                   x->device_mib >= 0 ? x->device_mib : x->rss_mib, x->arena_mib, x->epoch_h, x->rank_h);
            fflush(stdout);
        }
    }
    mc.load_end = loadavg1();
    if (R0) {
        printf("(%zu parameters + %zu momentum; gradient all-reduce %.2f ms; last losses:", res[0].params,
               res[0].momentum, res[0].allreduce_ms);
        for (int i = 0; i < n; i++)
            printf(" %s itc %.3f itm %.3f mlm %.3f%s", objective_name(res[i].obj), res[i].l.itc, res[i].l.itm,
                   res[i].l.mlm, i + 1 < n ? ";" : ")\n");
        if (out) {
            if (mkdir_p(out) != 0) die("bench: cannot create %s: %s", out, strerror(errno));
            char path[4096];
            snprintf(path, sizeof(path), "%s/bench.json", out);
            FILE *f = fopenCheck(path, "w");
            write_json(f, &mc, &su, res, n);
            fclose(f);
            snprintf(path, sizeof(path), "%s/bench.md", out);
            f = fopenCheck(path, "w");
            write_md(f, &mc, &su, res, n);
            fclose(f);
            printf("wrote %s/bench.json and %s/bench.md\n", out, out);
        }
        if (json) {
            FILE *f = fopenCheck(json, "w");
            write_json(f, &mc, &su, res, n);
            fclose(f);
        }
    }
    backend_close(su.ops);
    dist_finalize(&d);
    return 0;
}
