// main.c: placeholder entry point so the build links; the real CLI (pack, pretrain, finetune,
// demo, bench) replaces this file.
#include "build_config.h"  // configure results (VLMAE_HAVE_*)

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlmae COMMAND [OPTIONS]\n"
            "commands:\n"
            "  pack       pack a dataset (JSON + JPEG) into HDF5 shards\n"
            "  pretrain   VLMAE pre-training (-c CONFIG.yaml)\n"
            "  finetune   fine-tune and evaluate a downstream task\n"
            "  demo       the whole pipeline on synthetic data with a tiny model (CPU)\n"
            "  bench      step time / MACs / MFU per objective\n"
            "build: %s, MPI %s, CUDA %s, NCCL %s\n",
            PACKAGE_STRING, VLMAE_HAVE_MPI ? "yes" : "no", VLMAE_HAVE_CUDA ? "yes" : "no",
            VLMAE_HAVE_NCCL ? "yes" : "no");
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
