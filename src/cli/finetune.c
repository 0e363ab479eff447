// finetune.c (cli): `vlmae finetune` and `vlmae eval` (cli/finetune.h): options and usage, the
// config with its --set overrides, the task by name, the tokenizer and the run directory; then
// finetune hands the run to the task (tasks/finetune.h's harness) and eval builds the model from
// --ckpt and evaluates the chosen splits.
#define _GNU_SOURCE  // open_memstream
#include "cli/finetune.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/datafiles.h"
#include "engine/common.h"
#include "tasks/finetune.h"
#include "tasks/task.h"

static void usage(FILE *f, int is_eval) {
    if (is_eval)
        fprintf(f,
                "usage: vlmae eval -c CONFIG.yaml --ckpt CKPT.h5 [--split test|val|all] [--set KEY=VALUE ...]\n"
                "                  [--out DIR] [--overlays DIR] [--max-overlays N]\n"
                "Evaluates a checkpoint on the task of the config (task.name) over task.test (or task.val).\n"
                "The model is the checkpoint's (its config_yaml), at task.image_size. Zero-shot transfer:\n"
                "evaluate a checkpoint fine-tuned on one data set with another's config, e.g. the COCO\n"
                "retrieval model on Flickr30K:\n"
                "  vlmae eval -c configs/finetune_retrieval_flickr.yaml --ckpt runs/finetune_retrieval_coco/ckpt-N.h5\n"
                "  --out DIR           where eval.jsonl goes (default: the checkpoint's directory)\n"
                "  --overlays DIR      grounding: write heat-map PNGs (image, heat, gt and chosen boxes)\n"
                "  --max-overlays N    at most N PNGs per evaluation set (default 16)\n"
                "tasks:\n");
    else
        fprintf(f,
                "usage: vlmae finetune -c CONFIG.yaml [--init PRETRAINED.h5] [--set KEY=VALUE ...]\n"
                "                      [--run-dir DIR] [--resume auto|PATH] [--stop-after N]\n"
                "Fine-tunes a pre-trained checkpoint on the task of the config (task.name), one process per\n"
                "rank, and evaluates task.val / task.test every task.eval_every epochs and at the end.\n"
                "Writes DIR/config.yaml, DIR/log.jsonl, DIR/ckpt-STEP.h5. SIGUSR1/SIGTERM: checkpoint, exit 99.\n"
                "  -c, --config FILE   YAML config (configs/finetune_*.yaml)\n"
                "  --init FILE         pre-trained checkpoint (vlmae pretrain's ckpt-*.h5)\n"
                "  --set KEY=VALUE     override one config key\n"
                "  --run-dir DIR       run directory (default runs/CONFIG-NAME)\n"
                "  --resume auto|PATH  continue from the newest checkpoint in DIR / this checkpoint\n"
                "  --stop-after N      checkpoint and stop after step N\n"
                "tasks:\n");
    task_list(f);
}

static int ft_main(int argc, char **argv, int is_eval) {
    FtContext cx;
    memset(&cx, 0, sizeof(cx));
    cx.is_eval = is_eval;
    cx.split = "test";
    cx.max_overlays = 16;
    const char *run_dir_opt = NULL;
    const char **sets = callocCheck((size_t)argc + 1, sizeof(char *));
    int n_sets = 0;
    static struct option opts[] = {{"config", 1, 0, 'c'}, {"set", 1, 0, 's'},      {"run-dir", 1, 0, 'r'},
                                   {"out", 1, 0, 'r'},    {"resume", 1, 0, 'R'},   {"stop-after", 1, 0, 'S'},
                                   {"init", 1, 0, 'i'},   {"ckpt", 1, 0, 'k'},     {"split", 1, 0, 'p'},
                                   {"overlays", 1, 0, 'o'}, {"max-overlays", 1, 0, 'm'}, {"help", 0, 0, 'h'},
                                   {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': cx.config_path = optarg; break;
        case 's': sets[n_sets++] = optarg; break;
        case 'r': run_dir_opt = optarg; break;
        case 'R': cx.resume = optarg; break;
        case 'S': cx.stop_after = atoll(optarg); break;
        case 'i': cx.init = optarg; break;
        case 'k': cx.ckpt = optarg; break;
        case 'p': cx.split = optarg; break;
        case 'o': cx.overlays = optarg; break;
        case 'm': cx.max_overlays = atoi(optarg); break;
        case 'h': usage(stdout, is_eval); free(sets); return 0;
        default: usage(stderr, is_eval); free(sets); return 2;
        }
    }
    const char *cmd = is_eval ? "vlmae eval" : "vlmae finetune";
    int bad_args = !cx.config_path || optind != argc || (is_eval && !cx.ckpt) ||
                   (is_eval && strcmp(cx.split, "test") && strcmp(cx.split, "val") && strcmp(cx.split, "all"));
    if (!is_eval && (cx.ckpt || cx.overlays)) bad_args = 1;
    if (is_eval && (cx.init || cx.resume)) bad_args = 1;
    if (bad_args) {
        usage(stderr, is_eval);
        free(sets);
        return 2;
    }

    dist_init(&cx.d, &argc, &argv);
    cx.R0 = cx.d.rank == 0;
    char err[2048];
    RunConfig *rc = &cx.rc;
    config_defaults(rc);
    int bad = config_load(rc, cx.config_path, err, sizeof(err)) != 0;
    for (int i = 0; i < n_sets && !bad; i++) bad = config_set(rc, sets[i], err, sizeof(err)) != 0;
    free(sets);
    const Task *task = NULL;
    if (!bad && !(task = task_find(rc->task.name))) {
        char *list = NULL;
        size_t len = 0;
        FILE *mf = open_memstream(&list, &len);
        task_list(mf);
        fclose(mf);
        snprintf(err, sizeof(err), "task.name '%s' is not a task; the tasks are:\n%s", rc->task.name, list);
        free(list);
        bad = 1;
    }
    if (!bad && !is_eval && rc->task.train.n == 0) snprintf(err, sizeof(err), "task.train lists no shards"), bad = 1;
    if (!bad && rc->runtime.device != DEVICE_CPU)
        snprintf(err, sizeof(err), "runtime.device: fine-tuning runs on the CPU backend only (pre-training "
                 "runs on cuda); use cpu"), bad = 1;
    if (bad) {
        if (cx.R0) fprintf(stderr, "%s: %s\n", cmd, err);
        config_free(rc);
        dist_finalize(&cx.d);
        return 2;
    }
    cx.seed = rc->train.seed;
    const char *vocab = rc->data.vocab[0] ? rc->data.vocab : default_vocab_path();
    cx.tok = tokenizer_load(vocab, err, sizeof(err));
    if (!cx.tok) {
        if (cx.R0) fprintf(stderr, "%s: %s\n", cmd, err);
        dist_abort(&cx.d, 2);
    }

    // Run directory: finetune default runs/<config name>; eval default the checkpoint's directory.
    if (run_dir_opt) {
        snprintf(cx.run_dir, sizeof(cx.run_dir), "%s", run_dir_opt);
    } else if (is_eval) {
        const char *sl = strrchr(cx.ckpt, '/');
        if (sl) snprintf(cx.run_dir, sizeof(cx.run_dir), "%.*s", (int)(sl - cx.ckpt), cx.ckpt);
        else snprintf(cx.run_dir, sizeof(cx.run_dir), ".");
    } else {
        const char *base = strrchr(cx.config_path, '/');
        base = base ? base + 1 : cx.config_path;
        snprintf(cx.run_dir, sizeof(cx.run_dir), "runs/%.*s", (int)strcspn(base, "."), base);
    }
    if (cx.R0 && mkdir_p(cx.run_dir) != 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", cmd, cx.run_dir, strerror(errno));
        dist_abort(&cx.d, 2);
    }
    dist_barrier(&cx.d);

    int status = 0;
    if (!is_eval) {
        status = task->finetune(&cx);
    } else {
        Model m;
        if (ft_build_model(&cx, &m, cx.ckpt, err, sizeof(err)) != 0) {
            if (cx.R0) fprintf(stderr, "%s: %s\n", cmd, err);
            dist_abort(&cx.d, 2);
        }
        if (task->load && task->load(&cx, &m, cx.ckpt, err, sizeof(err)) != 0) {
            if (cx.R0) fprintf(stderr, "%s: %s\n", cmd, err);
            dist_abort(&cx.d, 2);
        }
        int64_t step = cx.ckpt_step;
        if (cx.R0) printf("%s: task %s, checkpoint %s (step %lld), image %d px\n", cmd, rc->task.name, cx.ckpt,
                          (long long)step, m.cfg.image_size);
        const char *splits[2] = {"val", "test"};
        int any = 0;
        for (int i = 0; i < 2 && !status; i++) {
            if (strcmp(cx.split, "all") && strcmp(cx.split, splits[i])) continue;
            const PathList *l = i == 0 ? &rc->task.val : &rc->task.test;
            if (l->n == 0) {
                if (strcmp(cx.split, "all")) {
                    if (cx.R0) fprintf(stderr, "%s: task.%s lists no data\n", cmd, splits[i]);
                    status = 2;
                }
                continue;
            }
            any = 1;
            if (ft_run_eval(&cx, task, &m, splits[i], step) != 0) status = 1;
        }
        if (!any && !status) {
            if (cx.R0) fprintf(stderr, "%s: neither task.val nor task.test lists data\n", cmd);
            status = 2;
        }
        model_free(&m);
    }
    tokenizer_free(cx.tok);
    config_free(rc);
    dist_finalize(&cx.d);
    return status;
}

int finetune_main(int argc, char **argv) { return ft_main(argc, argv, 0); }
int eval_main(int argc, char **argv) { return ft_main(argc, argv, 1); }
