// synth.c: `vlmae synth --out DIR ...` -- the command line of the synthetic dataset generator
// (options, --help); the generator is data/synth.c (data/synth.h, data/SYNTH.md).
#include "cli/synth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"

static void usage(FILE *f) {
    fputs("usage: vlmae synth --out DIR [--seed N] [--images N] [--size PX] [--quality Q] [--quiet]\n"
          "                   [--focal-probe]\n"
          "\n"
          "Generate the synthetic shapes dataset (deterministic from the seed): JPEG images in\n"
          "DIR/images and ALBEF-style JSON annotations for pre-training (pretrain.json, vg.json\n"
          "with region boxes), retrieval, VQA, SNLI-VE, NLVR2 and grounding, with a held-out\n"
          "split. See data/SYNTH.md.\n"
          "\n"
          "  --out DIR      output directory (created if missing)\n"
          "  --seed N       random seed (default 0)\n"
          "  --images N     number of images, at least 3 (default 1000)\n"
          "  --size PX      image side in pixels, 32..4096 (default 96)\n"
          "  --quality Q    JPEG quality 1..100 (default 90)\n"
          "  --quiet        no summary line\n"
          "  --focal-probe  the focal-bias probe: pre-training texts (pretrain.json, vg.json,\n"
          "                 retrieval_train.json) of a train image with large and small objects\n"
          "                 name only its large objects, and focal_probe.json holds the test\n"
          "                 images with both sizes, captioned by their small objects only\n"
          "                 (retrieval_test.json's format). Other files are unchanged\n",
          f);
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int synth_main(int argc, char **argv) {
    SynthOptions o;
    synth_defaults(&o);
    // argv[0] is the subcommand name ("synth") or the program name; options follow.
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
            continue;
        }
        if (!strcmp(a, "--focal-probe")) {
            o.focal_probe = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vlmae synth: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        }
        const char *val = argv[++i];
        if (!strcmp(a, "--out")) {
            o.out_dir = val;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-') {
                fprintf(stderr, "vlmae synth: bad --seed %s\n", val);
                return 2;
            }
            o.seed = (uint64_t)s;
        } else if (!strcmp(a, "--images")) {
            if (parse_long(val, 3, 100000000, &v)) {
                fprintf(stderr, "vlmae synth: bad --images %s (need 3..1e8)\n", val);
                return 2;
            }
            o.images = (int)v;
        } else if (!strcmp(a, "--size")) {
            if (parse_long(val, 32, 4096, &v)) {
                fprintf(stderr, "vlmae synth: bad --size %s (need 32..4096)\n", val);
                return 2;
            }
            o.size = (int)v;
        } else if (!strcmp(a, "--quality")) {
            if (parse_long(val, 1, 100, &v)) {
                fprintf(stderr, "vlmae synth: bad --quality %s (need 1..100)\n", val);
                return 2;
            }
            o.quality = (int)v;
        } else {
            fprintf(stderr, "vlmae synth: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.out_dir) {
        fprintf(stderr, "vlmae synth: --out DIR is required\n");
        usage(stderr);
        return 2;
    }
    return synth_generate(&o) == 0 ? 0 : 1;
}
