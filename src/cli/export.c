// export.c: `vlmae export` — a checkpoint's online parameters as .safetensors, for PyTorch users.
#include "cli/export.h"

#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "engine/common.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/weights_import.h"

static void usage(FILE *f) {
    fprintf(f, "usage: vlmae export CKPT.h5 OUT.safetensors [-c CONFIG.yaml]\n"
               "Writes every online parameter of a checkpoint under vlmae's names (tests/reference/SPEC.md)\n"
               "as float32 safetensors. The model is built from CONFIG, by default the config.yaml of the\n"
               "checkpoint's run directory.\n");
}

int export_main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return usage(stdout), 0;
    if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "-c"))) return usage(stderr), 2;
    const char *ckpt = argv[1], *out = argv[2];
    char cfg[4096], dir[4096], err[2048];
    snprintf(dir, sizeof(dir), "%s", ckpt);
    if (argc == 5) snprintf(cfg, sizeof(cfg), "%s", argv[4]);
    else snprintf(cfg, sizeof(cfg), "%s/config.yaml", dirname(dir));
    RunConfig rc;
    config_defaults(&rc);
    if (config_load(&rc, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "vlmae export: %s\n", err);
        return 2;
    }
    Model m;
    model_create(&m, &rc.model);
    int status = 0;
    if (checkpoint_load(ckpt, &m, NULL, NULL, err, sizeof(err)) != 0 || export_safetensors(&m, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "vlmae export: %s\n", err);
        status = 1;
    } else {
        printf("wrote %s (%d tensors, %zu parameters)\n", out, m.params.count, m.params.values);
    }
    model_free(&m);
    config_free(&rc);
    return status;
}
