// bench.c: `vlmae bench` — step time, throughput, model MACs and MFU of pre-training steps for
// the objectives on one engine, on random in-memory batches (no data loading: this measures the
// model). Prints a table; --json writes the same numbers for reports. No pass/fail.
#include "bench.h"

#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "flops.h"
#include "trainer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Peak fp32 FLOP/s of this CPU: cores x clock x FLOPs per cycle (2 FMA units of 8 (AVX2) or 16
// (AVX-512) lanes). An estimate from /proc/cpuinfo; --peak-gflops overrides it.
double cpu_peak_flops(int threads) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    double mhz = 0.0;
    int avx512 = 0, avx2 = 0;
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
        if (mhz == 0.0 && strncmp(line, "cpu MHz", 7) == 0) mhz = atof(strchr(line, ':') + 1);
        if (strncmp(line, "flags", 5) == 0) {
            avx512 |= strstr(line, " avx512f") != NULL;
            avx2 |= strstr(line, " avx2") != NULL && strstr(line, " fma") != NULL;
        }
    }
    if (f) fclose(f);
    if (mhz <= 0.0) mhz = 2000.0;
    double per_cycle = avx512 ? 64.0 : avx2 ? 32.0 : 8.0;
    return threads * mhz * 1e6 * per_cycle;
}

static void random_batch(Batch *bt, const ModelConfig *c, int B, int T, Rng *r) {
    int S = c->image_size;
    bt->B = B, bt->T = T, bt->H = bt->W = S;
    bt->image = mallocCheck(sizeof(float) * B * 3 * S * S);
    bt->text_ids = mallocCheck(sizeof(int32_t) * B * T);
    bt->text_mask = mallocCheck(sizeof(int32_t) * B * T);
    bt->box = mallocCheck(sizeof(float) * B * 4);
    bt->image_id = mallocCheck(sizeof(int64_t) * B);
    for (size_t i = 0; i < (size_t)B * 3 * S * S; i++) bt->image[i] = (float)rng_normal(r);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            bt->text_ids[b * T + t] = t == 0 ? c->cls_id : 1000 % c->vocab_size + (int)rng_randint(r, c->vocab_size / 2);
            bt->text_mask[b * T + t] = 1;
        }
        for (int k = 0; k < 4; k++) bt->box[b * 4 + k] = NAN;
        bt->image_id[b] = b;
    }
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlmae bench [--model tiny|base] [--objective vlmae|albef|all] [--batch B]\n"
            "                   [--text-len T] [--steps N] [--warmup N] [--peak-gflops G] [--json FILE]\n"
            "Times pre-training steps (forward, backward, AdamW, momentum update) on random batches\n"
            "and reports ms/step, samples/s, model MACs per sample (thop and full conventions) and\n"
            "MFU against the device's peak. Defaults: tiny model, all objectives, batch 8, 16 tokens.\n");
}

int bench_main(int argc, char **argv) {
    const char *model = "tiny", *objective = "all", *json = NULL;
    int B = 8, T = 16, steps = 10, warmup = 2;
    double peak_gflops = 0.0;
    static struct option opts[] = {{"model", 1, 0, 'm'},  {"objective", 1, 0, 'o'}, {"batch", 1, 0, 'b'},
                                   {"text-len", 1, 0, 't'}, {"steps", 1, 0, 's'},   {"warmup", 1, 0, 'w'},
                                   {"peak-gflops", 1, 0, 'p'}, {"json", 1, 0, 'j'}, {"help", 0, 0, 'h'},
                                   {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'o': objective = optarg; break;
        case 'b': B = atoi(optarg); break;
        case 't': T = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'p': peak_gflops = atof(optarg); break;
        case 'j': json = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (strcmp(model, "tiny") && strcmp(model, "base")) die("bench: --model must be tiny or base, got '%s'", model);
    if (B < 2 || T < 2 || steps < 1 || warmup < 0) die("bench: need --batch >= 2, --text-len >= 2, --steps >= 1");
    int threads = omp_get_max_threads();
    double peak = peak_gflops > 0 ? peak_gflops * 1e9 : cpu_peak_flops(threads);
    FILE *jf = json ? fopenCheck(json, "w") : NULL;
    if (jf) fprintf(jf, "{\"device\": \"cpu\", \"threads\": %d, \"peak_gflops\": %.1f, \"model\": \"%s\", \"batch\": %d, \"text_len\": %d, \"results\": [\n", threads, peak / 1e9, model, B, T);
    printf("vlmae bench: cpu, %d threads, peak %.1f GFLOP/s (fp32 estimate), model %s, batch %d, text %d, %d steps\n",
           threads, peak / 1e9, model, B, T, steps);
    printf("%-8s %10s %10s %12s %12s %7s   %s\n", "objective", "ms/step", "samples/s", "GMACs thop", "GMACs full", "MFU", "losses (last step)");
    const Objective objs[2] = {OBJ_ALBEF, OBJ_VLMAE};
    int first = 1;
    for (int oi = 0; oi < 2; oi++) {
        if (strcmp(objective, "all") && strcmp(objective, objective_name(objs[oi]))) continue;
        ModelConfig c;
        if (!strcmp(model, "base")) model_config_base(&c);
        else model_config_tiny(&c);
        c.objective = objs[oi];
        c.max_text_len = MAX(c.max_text_len, T);
        c.queue_size = B * 4;
        Model m;
        model_create(&m, &c);
        model_init_weights(&m, 1);
        Rng r;
        rng_seed(&r, 11);
        Batch bt;
        random_batch(&bt, &c, B, T, &r);
        Dist d = {.rank = 0, .world = 1, .local_world = 1};
        TrainerOptions o = {.alpha = 0.4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.02f,
                            .seed = 1, .nonfinite = NONFINITE_STOP};
        o.lr = (LrSchedule){.lr = 1e-4f, .warmup_lr = 1e-5f, .min_lr = 1e-5f, .warmup_steps = 100, .total_steps = 1000};
        Trainer t;
        trainer_init(&t, &m, &d, &o, &bt);
        Losses l = {0};
        for (int s = 0; s < warmup; s++) trainer_step(&t, &bt, &l);
        double t0 = now_s();
        for (int s = 0; s < steps; s++) trainer_step(&t, &bt, &l);
        double dt = (now_s() - t0) / steps;
        Macs thop = macs_per_sample(&c, T, 0), full = macs_per_sample(&c, T, 1);
        double mfu = train_flops_per_sample(&c, T) * B / dt / peak;
        printf("%-8s %10.1f %10.2f %12.2f %12.2f %6.1f%%   itc %.3f itm %.3f mlm %.3f rmim %.3f ifr %.3f\n",
               objective_name(c.objective), dt * 1e3, B / dt, (thop.online + thop.momentum) / 1e9,
               (full.online + full.momentum) / 1e9, 100.0 * mfu, l.itc, l.itm, l.mlm, l.rmim, l.ifr);
        if (jf) {
            fprintf(jf, "%s  {\"objective\": \"%s\", \"ms_per_step\": %.3f, \"samples_per_s\": %.3f, \"gmacs_thop\": %.4f, \"gmacs_full\": %.4f, \"mfu\": %.5f, \"arena_mib\": %.1f, "
                    "\"loss\": {\"itc\": %.5f, \"itm\": %.5f, \"mlm\": %.5f, \"rmim\": %.5f, \"ifr\": %.5f}}",
                    first ? "" : ",\n", objective_name(c.objective), dt * 1e3, B / dt, (thop.online + thop.momentum) / 1e9,
                    (full.online + full.momentum) / 1e9, mfu, t.step.arena.cap / 1048576.0, l.itc, l.itm, l.mlm, l.rmim, l.ifr);
        }
        first = 0;
        trainer_free(&t);
        model_free(&m);
        free(bt.image), free(bt.text_ids), free(bt.text_mask), free(bt.box), free(bt.image_id);
    }
    if (jf) {
        fprintf(jf, "\n]}\n");
        fclose(jf);
    }
    return 0;
}
