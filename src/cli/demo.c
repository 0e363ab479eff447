// demo.c: `vlmae demo` — the whole pipeline on the built-in synthetic dataset, on a CPU, in a few
// minutes: generate the dataset (JSON + JPEG, as users have), pack it into HDF5 shards, pre-train
// a tiny VLMAE with held-out validation losses, evaluate zero-shot image-text retrieval on
// held-out pairs against the same model before training, fine-tune for retrieval and evaluate
// again. Prints the results table (with retrieval among images of the same background, which a
// model that only sees backgrounds cannot pass), draws the loss curves, and says where the logs
// and checkpoints are. The stages are the `vlmae` commands it prints: the recipe of README.md.
#include "cli/demo.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/finetune.h"
#include "cli/pack.h"
#include "cli/pretrain.h"
#include "cli/plot.h"
#include "cli/synth.h"
#include "data/json.h"
#include "data/shard.h"
#include "data/datafiles.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "engine/common.h"
#include "tasks/retrieval.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/dist.h"

static int run_cmd(int (*fn)(int, char **), const char *what, int argc, char **argv) {
    printf("\n$ vlmae");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);
    int rc = fn(argc, argv);
    if (rc != 0) fprintf(stderr, "vlmae demo: %s failed (status %d)\n", what, rc);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlmae demo [--dir DIR] [--steps N] [--images N] [--k K]\n"
            "Runs the whole pipeline on the synthetic dataset with a tiny model on the CPU, as the\n"
            "vlmae commands it prints (README.md, \"Training from scratch\"): vlmae synth -> vlmae pack\n"
            "-> vlmae pretrain (configs/demo.yaml, validation losses on held-out pairs) -> zero-shot\n"
            "image-text retrieval on held-out pairs (ITC ranking, top-K re-scored by ITM + ITC),\n"
            "compared with the same model before pre-training -> vlmae finetune retrieval\n"
            "(configs/demo_retrieval.yaml) -> retrieval on the same held-out pairs -> vlmae plot.\n"
            "The table also ranks each query among the images of the same background only, which\n"
            "a model that sees nothing but the background cannot pass. Results in DIR/results.md.\n"
            "Default: --dir vlmae-demo, --images 600, the step count of configs/demo.yaml, --k 8.\n");
}

static Recall chance;  // recall of a random ranking on the test set (filled by evaluate)

// Expected recall of a uniformly random ranking: IR hits with probability K/n_img; TR for an
// image with p captions among n texts, 1 - C(n-p, K)/C(n, K).
static void chance_recall(const int64_t *txt_img, int n_img, int n_txt, Recall *r) {
    const int K[3] = {1, 5, 10};
    memset(r, 0, sizeof(*r));
    for (int k = 0; k < 3; k++) {
        double tr = 0.0;
        int imgs = 0;
        for (int i = 0; i < n_img; i++) {
            int p = 0;
            for (int t = 0; t < n_txt; t++) p += txt_img[t] == i;
            if (!p) continue;
            double miss = 1.0;
            for (int j = 0; j < K[k] && j < n_txt; j++) miss *= (double)(n_txt - p - j) / (n_txt - j);
            tr += 1.0 - (miss > 0 ? miss : 0), imgs++;
        }
        r->tr[k] = imgs ? 100.0 * tr / imgs : 0.0;
        r->ir[k] = 100.0 * MIN(K[k], n_img) / n_img;
        r->mean += (r->tr[k] + r->ir[k]) / 6.0;
    }
}

// The background of every image of the test shard, as a group index (0..2), from the synthetic
// world's ground truth (synth/scenes.json, keyed by the image path the shard keeps). NULL with a
// message on failure.
static int *background_groups(const char *scenes_path, const char *shard_path) {
    char err[1024];
    JsonDoc *doc = json_parse_file(scenes_path, 0, err, sizeof(err));
    if (!doc) {
        fprintf(stderr, "vlmae demo: %s\n", err);
        return NULL;
    }
    Shard *sh = shard_open(shard_path, err, sizeof(err));
    if (!sh) {
        fprintf(stderr, "vlmae demo: %s\n", err);
        json_free(doc);
        return NULL;
    }
    static const char *bgs[3] = {"white", "gray", "black"};
    int64_t n = shard_num_images(sh);
    int *g = mallocCheck((size_t)(n > 0 ? n : 1) * sizeof(int));
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        const char *key = shard_image_key(sh, i), *bg = NULL;
        for (size_t j = 0; key && !bg; j++) {
            const JsonValue *sc = json_at(json_root(doc), j);
            if (!sc) break;
            const char *img = json_string(json_get(sc, "image"));
            if (img && !strcmp(img, key)) bg = json_string(json_get(sc, "background"));
        }
        g[i] = -1;
        for (int b = 0; b < 3 && bg; b++)
            if (!strcmp(bg, bgs[b])) g[i] = b;
        if (g[i] < 0) {
            fprintf(stderr, "vlmae demo: %s: image %lld (%s) has no background in %s\n", shard_path, (long long)i,
                    key ? key : "?", scenes_path);
            ok = 0;
        }
    }
    shard_close(sh);
    json_free(doc);
    if (!ok) free(g), g = NULL;
    return g;
}

static int *bg_group;          // background of each test image (background_groups)
static GroupRecall bg_chance;  // retrieval within a background: a random ranking

// Retrieval of model m on the packed test shard: r (ITC ranking, top k re-scored by ITM) and,
// with bg_group, gr (R@1 among the images / captions of the same background, ITC ranking).
static int evaluate(Model *m, const char *shard, const Tokenizer *tok, int T, int k, Recall *r, GroupRecall *gr) {
    char err[1024];
    const char *shards[1] = {shard};
    LoaderConfig lc;
    loader_config_defaults(&lc);
    lc.shards = shards, lc.num_shards = 1, lc.batch_size = 16, lc.image_size = m->cfg.image_size;
    lc.max_len = T, lc.tok = tok, lc.eval = 1, lc.threads = 2, lc.drop_last = 0;
    Loader *L = loader_open(&lc, err, sizeof(err));
    if (!L) {
        fprintf(stderr, "vlmae demo: %s\n", err);
        return -1;
    }
    Dist one = {.rank = 0, .world = 1, .local_world = 1};
    RetrievalSet rs;
    retrieval_encode(m, L, &one, k > 0, &rs);
    float *i2t = mallocCheck((size_t)rs.n_img * rs.n_txt * sizeof(float));
    float *t2i = mallocCheck((size_t)rs.n_img * rs.n_txt * sizeof(float));
    retrieval_scores(m, &rs, 0, i2t, t2i);
    retrieval_group_recall(i2t, t2i, rs.txt_img, bg_group, rs.n_img, rs.n_txt, gr);
    bg_chance = *gr;
    if (k > 0) retrieval_scores(m, &rs, k, i2t, t2i);
    retrieval_recall(i2t, t2i, rs.txt_img, rs.n_img, rs.n_txt, r);
    chance_recall(rs.txt_img, rs.n_img, rs.n_txt, &chance);
    printf("  (%d test images, %d captions)\n", rs.n_img, rs.n_txt);
    free(i2t), free(t2i);
    retrieval_set_free(&rs);
    loader_close(L);
    return 0;
}

static void print_bg_row(FILE *f, const char *name, double tr1, double ir1) {
    fprintf(f, "| %-26s | %5.1f | %5.1f | %5.1f |\n", name, tr1, ir1, (tr1 + ir1) / 2);
}

static void print_row(FILE *f, const char *name, const Recall *r) {
    fprintf(f, "| %-26s | %5.1f | %5.1f | %5.1f | %5.1f | %5.1f | %5.1f | %5.1f |\n", name, r->tr[0], r->tr[1],
            r->tr[2], r->ir[0], r->ir[1], r->ir[2], r->mean);
}

int demo_main(int argc, char **argv) {
    const char *dir = "vlmae-demo";
    int images = 600, k = 8;
    long steps = 0;
    static struct option opts[] = {{"dir", 1, 0, 'd'}, {"steps", 1, 0, 's'}, {"images", 1, 0, 'i'},
                                   {"k", 1, 0, 'k'},   {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': dir = optarg; break;
        case 's': steps = atol(optarg); break;
        case 'i': images = atoi(optarg); break;
        case 'k': k = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (images < 50) die("demo: --images must be >= 50");
    if (strlen(dir) > 900) die("demo: --dir is too long");
    char syn[1024], shards[1024], test_prefix[1024], test_shard[1100], run_dir[1100], ann1[1100], ann2[1100],
        ann3[1100], ann4[1100], ann5[1100], train_prefix[1100], val_prefix[1100], ft_dir[1100], scenes[1100],
        imgs_arg[32], steps_arg[64], data_arg[1200], val_arg[1200];
    snprintf(syn, sizeof(syn), "%s/synth", dir);
    snprintf(shards, sizeof(shards), "%s/shards/synth", dir);
    snprintf(test_prefix, sizeof(test_prefix), "%s/shards/retrieval_test", dir);
    snprintf(test_shard, sizeof(test_shard), "%s-00000.h5", test_prefix);
    snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
    snprintf(ann1, sizeof(ann1), "%s/pretrain.json", syn);
    snprintf(ann2, sizeof(ann2), "%s/vg.json", syn);
    snprintf(ann3, sizeof(ann3), "%s/retrieval_test.json", syn);
    snprintf(ann4, sizeof(ann4), "%s/retrieval_train.json", syn);
    snprintf(ann5, sizeof(ann5), "%s/pretrain_heldout.json", syn);
    snprintf(scenes, sizeof(scenes), "%s/scenes.json", syn);
    snprintf(val_prefix, sizeof(val_prefix), "%s/shards/heldout", dir);
    snprintf(train_prefix, sizeof(train_prefix), "%s/shards/retrieval_train", dir);
    snprintf(ft_dir, sizeof(ft_dir), "%s/finetune_retrieval", dir);
    setenv("DATA", dir, 1);  // the fine-tuning config finds its shards under ${DATA}/shards
    snprintf(imgs_arg, sizeof(imgs_arg), "%d", images);
    snprintf(data_arg, sizeof(data_arg), "data.datasets=[{name: synth, shards: [\"%s-*.h5\"]}]", shards);
    snprintf(val_arg, sizeof(val_arg), "data.val=[\"%s-*.h5\"]", val_prefix);
    const char *config = data_file_path("configs/demo.yaml");

    // MPI (when built with it) is initialised once here: the pretrain and finetune stages then
    // find it initialised and leave finalising to us. The demo is one process.
    Dist world;
    dist_init(&world, &argc, &argv);
    if (world.world != 1) die("demo: run it as one process (got %d ranks)", world.world);
    printf("vlmae demo: the whole pipeline on synthetic data in %s (config %s)\n", dir, config);
    char *synth_argv[] = {"synth", "--out", syn, "--seed", "1", "--images", imgs_arg, NULL};
    if (run_cmd(synth_main, "synth", 7, synth_argv)) return 1;
    char *pack_argv[] = {"pack", "albef", "--ann", ann1, "--ann", ann2, "--images", syn, "--out", shards, NULL};
    if (run_cmd(pack_main, "pack", 10, pack_argv)) return 1;
    char *pack2_argv[] = {"pack", "albef", "--ann", ann3, "--images", syn, "--out", test_prefix, NULL};
    if (run_cmd(pack_main, "pack (retrieval test)", 8, pack2_argv)) return 1;
    char *pack3_argv[] = {"pack", "albef", "--ann", ann4, "--images", syn, "--out", train_prefix, NULL};
    if (run_cmd(pack_main, "pack (retrieval train)", 8, pack3_argv)) return 1;
    char *pack4_argv[] = {"pack", "albef", "--ann", ann5, "--images", syn, "--out", val_prefix, NULL};
    if (run_cmd(pack_main, "pack (held-out pre-training pairs)", 8, pack4_argv)) return 1;
    char *pre_argv[16] = {"pretrain", "-c", (char *)config, "--run-dir", run_dir, "--set", data_arg, "--set", val_arg};
    int pn = 9;
    if (steps > 0) {
        snprintf(steps_arg, sizeof(steps_arg), "train.max_steps=%ld", steps);
        pre_argv[pn++] = "--set", pre_argv[pn++] = steps_arg;
    }
    if (run_cmd(pretrain_main, "pretrain", pn, pre_argv)) return 1;

    // Zero-shot retrieval: the model before pre-training (same init) and after.
    char err[2048];
    RunConfig rc;
    config_defaults(&rc);
    if (config_load(&rc, config, err, sizeof(err)) != 0) die("%s", err);
    Tokenizer *tok = tokenizer_load(default_vocab_path(), err, sizeof(err));
    if (!tok) die("%s", err);
    rc.model.pad_id = tokenizer_pad_id(tok), rc.model.cls_id = tokenizer_cls_id(tok);
    rc.model.mask_id = tokenizer_mask_id(tok);
    Model m;
    model_create(&m, &rc.model);
    model_init_weights(&m, rc.train.seed);
    bg_group = background_groups(scenes, test_shard);
    if (!bg_group) return 1;
    printf("\nzero-shot retrieval, before pre-training:\n");
    Recall before, after;
    GroupRecall bg_before, bg_after, bg_tuned;
    if (evaluate(&m, test_shard, tok, rc.data.text_max_len, k, &before, &bg_before)) return 1;
    char ckpt[4096];
    if (checkpoint_find_latest(run_dir, ckpt, sizeof(ckpt)) != 0) die("demo: no checkpoint in %s", run_dir);
    if (checkpoint_load(ckpt, &m, NULL, NULL, err, sizeof(err)) != 0) die("%s", err);
    printf("zero-shot retrieval, after pre-training (%s):\n", ckpt);
    if (evaluate(&m, test_shard, tok, rc.data.text_max_len, k, &after, &bg_after)) return 1;
    printf("  (the same ranking from the command line: vlmae eval -c configs/demo_retrieval.yaml --ckpt %s)\n", ckpt);

    // Retrieval fine-tuning from the pre-trained checkpoint, evaluated on the same pairs.
    const char *ft_config = data_file_path("configs/demo_retrieval.yaml");
    char *ft_argv[] = {"finetune", "-c", (char *)ft_config, "--init", ckpt, "--run-dir", ft_dir, NULL};
    if (run_cmd(finetune_main, "finetune (retrieval)", 7, ft_argv)) return 1;
    Recall tuned;
    char ft_ckpt[4096];
    if (checkpoint_find_latest(ft_dir, ft_ckpt, sizeof(ft_ckpt)) != 0) die("demo: no checkpoint in %s", ft_dir);
    if (checkpoint_load(ft_ckpt, &m, NULL, NULL, err, sizeof(err)) != 0) die("%s", err);
    printf("retrieval after fine-tuning (%s):\n", ft_ckpt);
    if (evaluate(&m, test_shard, tok, rc.data.text_max_len, k, &tuned, &bg_tuned)) return 1;
    char *plot_argv[] = {"plot", run_dir, NULL};
    if (run_cmd(plot_main, "plot", 2, plot_argv)) return 1;

    char results[4096];
    snprintf(results, sizeof(results), "%s/results.md", dir);
    FILE *rf = fopenCheck(results, "w");
    FILE *outs[2] = {stdout, rf};
    for (int o = 0; o < 2; o++) {
        FILE *f = outs[o];
        fprintf(f, "\nImage-text retrieval on held-out synthetic pairs (ITC ranking, top-%d re-scored by ITM + ITC)\n\n", k);
        fprintf(f, "| %-26s | TR@1  | TR@5  | TR@10 | IR@1  | IR@5  | IR@10 | mean  |\n", "model");
        fprintf(f, "|----------------------------|-------|-------|-------|-------|-------|-------|-------|\n");
        print_row(f, "chance (random ranking)", &chance);
        print_row(f, "random init (same seed)", &before);
        print_row(f, "pre-trained, zero-shot", &after);
        print_row(f, "fine-tuned for retrieval", &tuned);
        fprintf(f, "\nThe same pairs, each query ranked only against images / captions of the same background\n"
                   "(ITC ranking, R@1): a model that only sees the background colour is at chance here.\n\n");
        fprintf(f, "| %-26s | TR@1  | IR@1  | mean  |\n", "model");
        fprintf(f, "|----------------------------|-------|-------|-------|\n");
        print_bg_row(f, "chance (random ranking)", bg_chance.chance_tr1, bg_chance.chance_ir1);
        print_bg_row(f, "random init (same seed)", bg_before.tr1, bg_before.ir1);
        print_bg_row(f, "pre-trained, zero-shot", bg_after.tr1, bg_after.ir1);
        print_bg_row(f, "fine-tuned for retrieval", bg_tuned.tr1, bg_tuned.ir1);
        double bg_ch = (bg_chance.chance_tr1 + bg_chance.chance_ir1) / 2;
        fprintf(f, "\nmean recall / chance: zero-shot %.1fx, fine-tuned %.1fx; same background: zero-shot %.1fx, "
                   "fine-tuned %.1fx\n", after.mean / chance.mean, tuned.mean / chance.mean,
                (bg_after.tr1 + bg_after.ir1) / 2 / bg_ch, (bg_tuned.tr1 + bg_tuned.ir1) / 2 / bg_ch);
    }
    fclose(rf);
    printf("\nThe tiny model learns from scratch with the recipe of configs/demo.yaml (init_std 0.1, no\n"
           "dropout, batch 64, lr 3e-3, no RandAugment / blur / small crops at 32 px); with ALBEF's\n"
           "settings (init 0.02, dropout 0.1, batch 8, 256-px augmentations) it stays at chance\n"
           "(README.md, \"Training from scratch\"). Real runs start from BERT and DeiT weights.\n");
    printf("\nrun directory: %s (config.yaml, log.jsonl with validation lines, loss.png, checkpoints)\n"
           "results: %s\n", run_dir, results);
    free(bg_group);
    model_free(&m);
    tokenizer_free(tok);
    config_free(&rc);
    dist_finalize(&world);
    return 0;
}
