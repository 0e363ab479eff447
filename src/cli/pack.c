// pack.c: `vlmae pack FORMAT ...` -- the command line of the packer: options, --help, and the call
// to pack_run (data/pack.c), which does the work. See data/pack.h and data/README.md.
#include "cli/pack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/pack.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: vlmae pack FORMAT --ann FILE [--ann FILE...] --images DIR --out PREFIX [options]\n"
        "\n"
        "FORMAT\n"
        "  albef   JSON list of {\"image\": path, \"caption\": str or [str...], optional \"box\":\n"
        "          [x,y,w,h] in pixels} (ALBEF's coco.json, vg.json, cc3m.json, sbu.json ...)\n"
        "  coco    COCO captions (captions_train2017.json: images[] + annotations[])\n"
        "  vg      Visual Genome region_descriptions.json (+ --image-data image_data.json); keeps\n"
        "          region boxes, drops regions covering < --min-region-frac of the image. Images\n"
        "          are read at --images DIR + the last two parts of each url in image_data.json\n"
        "          (DIR/VG_100K/1.jpg, DIR/VG_100K_2/2.jpg; without --image-data, DIR/VG_100K/ID.jpg\n"
        "          or DIR/VG_100K_2/ID.jpg): DIR is the folder that holds VG_100K/ and VG_100K_2/\n"
        "  cc, sbu TSV lines \"caption<TAB>path\" (local files), or an ALBEF-style JSON list\n"
        "  vqa     ALBEF VQA list {\"question_id\", \"image\", \"question\", \"answer\": [...],\n"
        "          \"dataset\"}: questions (cleaned with pre_question), answers + weights, ids\n"
        "  ve      ALBEF SNLI-VE list {\"image\" (\".jpg\" appended unless it has an extension),\n"
        "          \"sentence\", \"label\": entailment|neutral|contradiction} -> label 2|1|0\n"
        "  nlvr    ALBEF NLVR2 list {\"images\": [left, right], \"sentence\", \"label\": True|False}:\n"
        "          each distinct pair is one unit of --shard-size (both images in the shard)\n"
        "  grounding  RefCOCO+-style list {\"image\", \"text\", \"bbox\": [x,y,w,h], \"proposals\":\n"
        "          [[x,y,w,h]...], \"ref_id\"} (pixels): box, proposals and id kept\n"
        "\n"
        "options\n"
        "  --ann FILE            annotation file (repeat for several; albef/cc/sbu)\n"
        "  --image-data FILE     vg: image_data.json (image paths from its urls, and sizes)\n"
        "  --images DIR          root for relative image paths (alias --image-root)\n"
        "  --strip-prefix P      remove P from the start of annotation paths first\n"
        "  --out PREFIX          write PREFIX-00000.h5, PREFIX-00001.h5, ... (dirs are created)\n"
        "  --shard-size N        images per shard (default 10000)\n"
        "  --short-side N        downscale (bicubic) + re-encode images whose short side exceeds N\n"
        "                        (alias --max-side; default 384; 0 keeps every original)\n"
        "  --quality Q           JPEG quality when re-encoding (default 95)\n"
        "  --threads N           decode/verify threads (default: $SLURM_CPUS_PER_TASK or all CPUs)\n"
        "  --shard-index I --num-shards K\n"
        "                        pack only slice I (0-based) of K: shards [I*T/K, (I+1)*T/K) of\n"
        "                        the T shards (Slurm arrays: I=$SLURM_ARRAY_TASK_ID)\n"
        "  --max-words N         caption clean-up: truncate to N words (default 30)\n"
        "  --min-region-frac F   drop boxes covering less than F of the image (default: 0.2 for\n"
        "                        vg, 0 otherwise)\n"
        "  --dataset NAME        name stored in the shards (default: FORMAT)\n"
        "  --limit N             only the first N images of the list (trials)\n"
        "  --overwrite           repack shards that already exist\n"
        "  --progress SECONDS    progress line interval on stderr (default 10)\n"
        "  --quiet               no progress lines\n");
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int default_threads(void) {
    const char *s = getenv("SLURM_CPUS_PER_TASK");
    long long v;
    if (s && parse_int(s, 1, 4096, &v)) return (int)v;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

// Returns 0 ok, 2 usage error (message printed).
static int parse_options(int argc, char **argv, PackOptions *o) {
    memset(o, 0, sizeof *o);
    o->shard_size = 10000;
    o->short_side = 384;
    o->quality = 95;
    o->threads = 0;
    o->shard_index = 0;
    o->num_shards = 1;
    o->max_words = 30;
    o->min_region_frac = -1;
    o->progress_s = 10;
    int have_index = 0, have_num = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (a[0] != '-') {
            if (o->format) {
                fprintf(stderr, "vlmae pack: unexpected argument '%s'\n", a);
                return 2;
            }
            o->format = a;
            continue;
        }
        // --opt=value or --opt value
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        if (!strcmp(name, "--overwrite")) {
            o->overwrite = 1;
            continue;
        }
        if (!strcmp(name, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vlmae pack: option %s needs a value\n", name);
                return 2;
            }
            val = argv[++i];
        }
        long long v;
        if (!strcmp(name, "--ann")) {
            if (o->nann == 16) {
                fprintf(stderr, "vlmae pack: at most 16 --ann files\n");
                return 2;
            }
            o->ann[o->nann++] = val;
        } else if (!strcmp(name, "--image-data")) {
            o->image_data = val;
        } else if (!strcmp(name, "--images") || !strcmp(name, "--image-root")) {
            o->images = val;
        } else if (!strcmp(name, "--strip-prefix")) {
            o->strip_prefix = val;
        } else if (!strcmp(name, "--out")) {
            o->out = val;
        } else if (!strcmp(name, "--dataset")) {
            o->dataset = val;
        } else if (!strcmp(name, "--shard-size")) {
            if (!parse_int(val, 1, 100000000, &v)) goto bad;
            o->shard_size = (int)v;
        } else if (!strcmp(name, "--short-side") || !strcmp(name, "--max-side")) {
            if (!parse_int(val, 0, 65535, &v)) goto bad;
            o->short_side = (int)v;
        } else if (!strcmp(name, "--quality")) {
            if (!parse_int(val, 1, 100, &v)) goto bad;
            o->quality = (int)v;
        } else if (!strcmp(name, "--threads")) {
            if (!parse_int(val, 1, 4096, &v)) goto bad;
            o->threads = (int)v;
        } else if (!strcmp(name, "--shard-index")) {
            if (!parse_int(val, 0, 1000000, &v)) goto bad;
            o->shard_index = (int)v;
            have_index = 1;
        } else if (!strcmp(name, "--num-shards")) {
            if (!parse_int(val, 1, 1000000, &v)) goto bad;
            o->num_shards = (int)v;
            have_num = 1;
        } else if (!strcmp(name, "--max-words")) {
            if (!parse_int(val, 1, 100000, &v)) goto bad;
            o->max_words = (int)v;
        } else if (!strcmp(name, "--min-region-frac")) {
            char *end;
            double d = strtod(val, &end);
            if (end == val || *end || !(d >= 0 && d <= 1)) goto bad;
            o->min_region_frac = d;
        } else if (!strcmp(name, "--limit")) {
            if (!parse_int(val, 1, (long long)1 << 40, &v)) goto bad;
            o->limit = v;
        } else if (!strcmp(name, "--progress")) {
            char *end;
            double d = strtod(val, &end);
            if (end == val || *end || !(d >= 0)) goto bad;
            o->progress_s = d;
        } else {
            fprintf(stderr, "vlmae pack: unknown option %s (see vlmae pack --help)\n", name);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "vlmae pack: invalid value '%s' for %s\n", val, name);
        return 2;
    }
    if (!o->format) {
        usage(stderr);
        return 2;
    }
    if (strcmp(o->format, "albef") && strcmp(o->format, "coco") && strcmp(o->format, "vg") &&
        strcmp(o->format, "cc") && strcmp(o->format, "sbu") && strcmp(o->format, "vqa") &&
        strcmp(o->format, "ve") && strcmp(o->format, "nlvr") && strcmp(o->format, "grounding")) {
        fprintf(stderr, "vlmae pack: unknown format '%s' (albef, coco, vg, cc, sbu, vqa, ve, nlvr, "
                "grounding)\n", o->format);
        return 2;
    }
    if (o->nann == 0) {
        fprintf(stderr, "vlmae pack: --ann FILE is required\n");
        return 2;
    }
    if (!o->out) {
        fprintf(stderr, "vlmae pack: --out PREFIX is required\n");
        return 2;
    }
    if (have_index != have_num && have_index) {
        fprintf(stderr, "vlmae pack: --shard-index needs --num-shards\n");
        return 2;
    }
    if (o->shard_index >= o->num_shards) {
        fprintf(stderr, "vlmae pack: --shard-index %d must be below --num-shards %d\n",
                o->shard_index, o->num_shards);
        return 2;
    }
    if (o->threads <= 0) o->threads = default_threads();
    if (o->min_region_frac < 0) o->min_region_frac = !strcmp(o->format, "vg") ? 0.2 : 0.0;
    if (!o->dataset) o->dataset = o->format;
    return 0;
}

int pack_main(int argc, char **argv) {
    PackOptions o;
    int prc = parse_options(argc, argv, &o);
    if (prc == 1) return 0;  // --help
    if (prc) return prc;
    return pack_run(&o);
}
