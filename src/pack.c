// pack.c: `vlmae pack` -- annotations + image files -> HDF5 shards (see pack.h, data/README.md).
//
// Flow: parse the annotation file(s) into a list of images, each with its raw captions (and
// boxes, in the annotation's pixel frame); group by image; split the list into shards of
// --shard-size images; pick this slice's shards (--shard-index/--num-shards); then worker threads
// read, decode (verify), optionally downscale + re-encode each image and clean its captions,
// while the main thread writes the results in input order into the shard writer (HDF5 is used
// from the main thread only). A bounded window keeps memory flat whatever the dataset size.
#define _GNU_SOURCE
#include "pack.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "caption.h"
#include "common.h"
#include "image.h"
#include "json.h"
#include "shard.h"

// ---------------------------------------------------------------------------------------------
// Options

typedef struct {
    const char *format;
    const char *ann[16];
    int nann;
    const char *image_data;    // vg: image_data.json
    const char *images;        // image root
    const char *strip_prefix;  // removed from the start of annotation paths before joining
    const char *out;
    const char *dataset;
    int shard_size;
    int short_side;
    int quality;
    int threads;
    int shard_index, num_shards;
    int max_words;
    double min_region_frac;    // < 0: format default (0.2 for vg, else 0)
    long long limit;
    int overwrite;
    int quiet;
    double progress_s;
} PackOptions;

static void usage(FILE *f) {
    fprintf(f,
        "usage: vlmae pack FORMAT --ann FILE [--ann FILE...] --images DIR --out PREFIX [options]\n"
        "\n"
        "FORMAT\n"
        "  albef   JSON list of {\"image\": path, \"caption\": str or [str...], optional \"box\":\n"
        "          [x,y,w,h] in pixels} (ALBEF's coco.json, vg.json, cc3m.json, sbu.json ...)\n"
        "  coco    COCO captions (captions_train2017.json: images[] + annotations[])\n"
        "  vg      Visual Genome region_descriptions.json (+ --image-data image_data.json); keeps\n"
        "          region boxes, drops regions covering < --min-region-frac of the image\n"
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

// ---------------------------------------------------------------------------------------------
// The image list

typedef struct {
    const char *caption;   // raw caption (cleaned by the workers)
    float box[4];          // pixels x,y,w,h in the annotation's frame; NaN = none
    int64_t item;          // owner (used while grouping)
    // task fields (shard.h "Task tables"; formats vqa, ve, nlvr, grounding)
    int is_question;       // clean with pre_question instead of pre_caption
    int32_t label;         // -1 = none
    const char *answers;   // "answer\tweight\tcount\n" lines, or NULL
    const char *key;       // question_id / ref_id, or NULL
    const float *props;    // nprops x 4 pixel boxes (annotation frame), or NULL
    int nprops;
} RawText;

typedef struct {
    const char *path;      // as in the annotation
    const char *alt_path;  // second candidate (vg without image_data), or NULL
    const char *path2;     // nlvr: the right image (stored as a second image row), or NULL
    int ann_w, ann_h;      // frame of the boxes if the annotation gives it, else 0
    int64_t first_text;
    int32_t ntext;
} PackItem;

// Bad annotation entries: counted, the first few described.
#define NEXAMPLES 5

typedef struct {
    PackItem *items;
    int64_t nitems, capitems;
    RawText *texts;
    int64_t ntexts, captexts;
    JsonDoc *docs[20];
    int ndocs;
    char *bufs[20];
    int nbufs;
    char **pool;           // constructed strings
    int64_t npool, cappool;
    // maps (open addressing)
    uint64_t *map_keys;    // hash or id, 0 = empty slot marker is handled with map_used
    int64_t *map_vals;
    unsigned char *map_used;
    uint64_t map_cap, map_n;
    // counters
    long long bad_entries;
    char bad_examples[NEXAMPLES][256];
    long long small_regions;   // dropped at list time (vg with image sizes)
    long long no_text_items;   // images without any caption
} PackList;

static int64_t MIN_I64(int64_t a, int64_t b) { return a < b ? a : b; }

static void *grow(void *p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return p;
    int64_t nc = *cap ? *cap : 1024;
    while (nc < need) nc *= 2;
    void *np = realloc(p, (size_t)nc * elem);
    if (!np) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    *cap = nc;
    return np;
}

static const char *pool_str(PackList *L, const char *s) {
    L->pool = grow(L->pool, &L->cappool, L->npool + 1, sizeof(char *));
    char *c = strdup(s);
    if (!c) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    L->pool[L->npool++] = c;
    return c;
}

static void bad_entry(PackList *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_entry(PackList *L, const char *fmt, ...) {
    if (L->bad_entries < NEXAMPLES) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->bad_examples[L->bad_entries], 256, fmt, ap);
        va_end(ap);
    }
    L->bad_entries++;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// One map per list, used either by path (albef/cc) or by id (coco/vg), never both at once.
// by_path: key = string hash, candidates compared by items[val].path. by id: key = id.
static void map_reset(PackList *L) {
    free(L->map_keys);
    free(L->map_vals);
    free(L->map_used);
    L->map_keys = NULL;
    L->map_vals = NULL;
    L->map_used = NULL;
    L->map_cap = L->map_n = 0;
}

static void map_grow(PackList *L);

static int64_t *map_slot(PackList *L, uint64_t key, const char *path, int *found) {
    if ((L->map_n + 1) * 2 > L->map_cap) map_grow(L);
    uint64_t mask = L->map_cap - 1, i = hash_u64(key) & mask;
    for (;;) {
        if (!L->map_used[i]) {
            *found = 0;
            L->map_used[i] = 1;
            L->map_keys[i] = key;
            L->map_n++;
            return &L->map_vals[i];
        }
        if (L->map_keys[i] == key && (!path || !strcmp(L->items[L->map_vals[i]].path, path))) {
            *found = 1;
            return &L->map_vals[i];
        }
        i = (i + 1) & mask;
    }
}

static void map_grow(PackList *L) {
    uint64_t oc = L->map_cap, nc = oc ? oc * 2 : 1024;
    uint64_t *ok = L->map_keys;
    int64_t *ov = L->map_vals;
    unsigned char *ou = L->map_used;
    L->map_keys = calloc(nc, sizeof(uint64_t));
    L->map_vals = calloc(nc, sizeof(int64_t));
    L->map_used = calloc(nc, 1);
    if (!L->map_keys || !L->map_vals || !L->map_used) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    L->map_cap = nc;
    L->map_n = 0;
    for (uint64_t i = 0; i < oc; i++) {
        if (!ou[i]) continue;
        uint64_t mask = nc - 1, j = hash_u64(ok[i]) & mask;
        while (L->map_used[j]) j = (j + 1) & mask;
        L->map_used[j] = 1;
        L->map_keys[j] = ok[i];
        L->map_vals[j] = ov[i];
        L->map_n++;
    }
    free(ok);
    free(ov);
    free(ou);
}

static int64_t map_find_id(const PackList *L, uint64_t id) {
    if (!L->map_cap) return -1;
    uint64_t mask = L->map_cap - 1, j = hash_u64(id) & mask;
    while (L->map_used[j]) {
        if (L->map_keys[j] == id) return L->map_vals[j];
        j = (j + 1) & mask;
    }
    return -1;
}

static int64_t new_item(PackList *L, const char *path) {
    L->items = grow(L->items, &L->capitems, L->nitems + 1, sizeof(PackItem));
    PackItem *it = &L->items[L->nitems];
    memset(it, 0, sizeof *it);
    it->path = path;
    return L->nitems++;
}

static int64_t item_by_path(PackList *L, const char *path) {
    int found;
    int64_t *v = map_slot(L, hash_str(path), path, &found);
    if (!found) *v = new_item(L, path);
    return *v;
}

static RawText *add_text(PackList *L, int64_t item, const char *caption, const float *box) {
    L->texts = grow(L->texts, &L->captexts, L->ntexts + 1, sizeof(RawText));
    RawText *t = &L->texts[L->ntexts++];
    memset(t, 0, sizeof *t);
    t->caption = caption;
    t->item = item;
    t->label = -1;
    for (int k = 0; k < 4; k++) t->box[k] = box ? box[k] : NAN;
    return t;  // valid until the next add_text
}

// Group texts by item (stable), drop items without texts. The item order is kept.
static void finish_list(PackList *L) {
    int64_t *count = calloc((size_t)L->nitems + 1, sizeof(int64_t));
    RawText *sorted = malloc((size_t)(L->ntexts ? L->ntexts : 1) * sizeof(RawText));
    if (!count || !sorted) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    for (int64_t t = 0; t < L->ntexts; t++) count[L->texts[t].item + 1]++;
    for (int64_t i = 0; i < L->nitems; i++) count[i + 1] += count[i];
    for (int64_t i = 0; i < L->nitems; i++) {
        L->items[i].first_text = count[i];
        L->items[i].ntext = (int32_t)(count[i + 1] - count[i]);
    }
    for (int64_t t = 0; t < L->ntexts; t++) sorted[count[L->texts[t].item]++] = L->texts[t];
    free(L->texts);
    L->texts = sorted;
    free(count);
    int64_t k = 0;
    for (int64_t i = 0; i < L->nitems; i++) {
        if (L->items[i].ntext == 0) {
            L->no_text_items++;
            continue;
        }
        L->items[k++] = L->items[i];
    }
    L->nitems = k;
    map_reset(L);
}

static void free_list(PackList *L) {
    for (int i = 0; i < L->ndocs; i++) json_free(L->docs[i]);
    for (int i = 0; i < L->nbufs; i++) free(L->bufs[i]);
    for (int64_t i = 0; i < L->npool; i++) free(L->pool[i]);
    free(L->pool);
    free(L->items);
    free(L->texts);
    map_reset(L);
}

static JsonDoc *load_json(PackList *L, const char *path) {
    char err[1024];
    JsonDoc *d = json_parse_file(path, 0, err, sizeof err);
    if (!d) {
        fprintf(stderr, "vlmae pack: %s\n", err);
        return NULL;
    }
    L->docs[L->ndocs++] = d;
    return d;
}

static int read_box(const JsonValue *b, float box[4]) {
    if (!b || b->type != JSON_ARRAY || b->n != 4) return 0;
    for (int k = 0; k < 4; k++) {
        double v;
        if (!json_number(json_at(b, (size_t)k), &v) || !isfinite(v)) return 0;
        box[k] = (float)v;
    }
    return 1;
}

// ALBEF list: [{"image": path, "caption": str | [str], "box"?: [x,y,w,h]}, ...]
static int load_albef_doc(PackList *L, const char *file, const JsonValue *root) {
    if (root->type != JSON_ARRAY) {
        fprintf(stderr, "vlmae pack: %s: expected a JSON list of {\"image\", \"caption\"} objects, "
                "found a %s\n", file, json_type_name(root->type));
        return -1;
    }
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const char *img = json_string(json_get(e, "image"));
        const JsonValue *cap = json_get(e, "caption");
        if (!img || !img[0]) {
            bad_entry(L, "%s: entry %zu: no \"image\" string", file, i);
            continue;
        }
        float box[4];
        const JsonValue *bv = json_get(e, "box");
        int has_box = bv && bv->type != JSON_NULL;
        if (has_box && !read_box(bv, box)) {
            bad_entry(L, "%s: entry %zu: \"box\" is not [x, y, w, h]", file, i);
            continue;
        }
        if (cap && cap->type == JSON_STRING) {
            add_text(L, item_by_path(L, img), cap->u.str, has_box ? box : NULL);
        } else if (cap && cap->type == JSON_ARRAY && cap->n > 0) {
            int64_t it = item_by_path(L, img);
            for (size_t k = 0; k < cap->n; k++) {
                const char *c = json_string(json_at(cap, k));
                if (c) add_text(L, it, c, has_box ? box : NULL);
                else bad_entry(L, "%s: entry %zu: caption %zu is not a string", file, i, k);
            }
        } else {
            bad_entry(L, "%s: entry %zu: no \"caption\" string or list", file, i);
        }
    }
    return 0;
}

static int load_coco(PackList *L, const char *file) {
    JsonDoc *d = load_json(L, file);
    if (!d) return -1;
    const JsonValue *root = json_root(d);
    const JsonValue *images = json_get(root, "images"), *anns = json_get(root, "annotations");
    if (!images || images->type != JSON_ARRAY || !anns || anns->type != JSON_ARRAY) {
        fprintf(stderr, "vlmae pack: %s: expected a COCO captions object with \"images\" and "
                "\"annotations\" lists\n", file);
        return -1;
    }
    int64_t base = L->nitems;
    map_reset(L);
    for (size_t i = 0; i < images->n; i++) {
        const JsonValue *e = json_at(images, i);
        int64_t id;
        const char *fn = json_string(json_get(e, "file_name"));
        if (!json_int64(json_get(e, "id"), &id) || !fn || !fn[0]) {
            bad_entry(L, "%s: images[%zu]: needs \"id\" and \"file_name\"", file, i);
            continue;
        }
        int found;
        int64_t *v = map_slot(L, (uint64_t)id, NULL, &found);
        if (found) {
            bad_entry(L, "%s: images[%zu]: duplicate id %lld", file, i, (long long)id);
            continue;
        }
        *v = new_item(L, fn);
    }
    for (size_t i = 0; i < anns->n; i++) {
        const JsonValue *e = json_at(anns, i);
        int64_t id;
        const char *cap = json_string(json_get(e, "caption"));
        if (!json_int64(json_get(e, "image_id"), &id) || !cap) {
            bad_entry(L, "%s: annotations[%zu]: needs \"image_id\" and \"caption\"", file, i);
            continue;
        }
        int64_t item = map_find_id(L, (uint64_t)id);
        if (item < base) {
            bad_entry(L, "%s: annotations[%zu]: image_id %lld is not in \"images\"", file, i,
                      (long long)id);
            continue;
        }
        add_text(L, item, cap, NULL);
    }
    map_reset(L);
    return 0;
}

// "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg" -> "VG_100K_2/1.jpg"
static const char *last_two_components(const char *url) {
    const char *end = url + strlen(url);
    int slashes = 0;
    for (const char *p = end; p > url; p--) {
        if (p[-1] == '/' && ++slashes == 2) return p;
    }
    return url;
}

typedef struct {
    const char *path;
    int w, h;
} VgImage;

static int load_vg(PackList *L, const PackOptions *o, const char *file) {
    // image_data.json (optional): id -> path, size
    VgImage *vimg = NULL;
    int64_t nvimg = 0;
    uint64_t vcap = 0;
    uint64_t *vkeys = NULL;
    int64_t *vidx = NULL;
    if (o->image_data) {
        JsonDoc *d = load_json(L, o->image_data);
        if (!d) return -1;
        const JsonValue *root = json_root(d);
        if (root->type != JSON_ARRAY) {
            fprintf(stderr, "vlmae pack: %s: expected a JSON list of images\n", o->image_data);
            return -1;
        }
        vimg = calloc(root->n + 1, sizeof(VgImage));
        vcap = 1024;
        while (vcap < 2 * (root->n + 1)) vcap *= 2;
        vkeys = calloc(vcap, sizeof(uint64_t));
        vidx = malloc(vcap * sizeof(int64_t));
        if (!vimg || !vkeys || !vidx) {
            fprintf(stderr, "vlmae pack: out of memory\n");
            exit(1);
        }
        for (uint64_t j = 0; j < vcap; j++) vidx[j] = -1;
        for (size_t i = 0; i < root->n; i++) {
            const JsonValue *e = json_at(root, i);
            int64_t id;
            if (!json_int64(json_get(e, "image_id"), &id) && !json_int64(json_get(e, "id"), &id)) {
                bad_entry(L, "%s: entry %zu: no image_id", o->image_data, i);
                continue;
            }
            const char *url = json_string(json_get(e, "url"));
            int64_t w = 0, h = 0;
            json_int64(json_get(e, "width"), &w);
            json_int64(json_get(e, "height"), &h);
            VgImage *vi = &vimg[nvimg];
            vi->path = url ? last_two_components(url) : NULL;
            vi->w = (int)w;
            vi->h = (int)h;
            uint64_t j = hash_u64((uint64_t)id) & (vcap - 1);
            while (vidx[j] >= 0 && vkeys[j] != (uint64_t)id) j = (j + 1) & (vcap - 1);
            if (vidx[j] < 0) {
                vkeys[j] = (uint64_t)id;
                vidx[j] = nvimg++;
            }
        }
    }
    JsonDoc *d = load_json(L, file);
    if (!d) {
        free(vimg);
        free(vkeys);
        free(vidx);
        return -1;
    }
    const JsonValue *root = json_root(d);
    if (root->type != JSON_ARRAY) {
        fprintf(stderr, "vlmae pack: %s: expected Visual Genome region_descriptions.json (a list "
                "of {\"id\", \"regions\"})\n", file);
        free(vimg);
        free(vkeys);
        free(vidx);
        return -1;
    }
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const JsonValue *regions = json_get(e, "regions");
        int64_t id;
        if (!regions || regions->type != JSON_ARRAY) {
            bad_entry(L, "%s: entry %zu: no \"regions\" list", file, i);
            continue;
        }
        if (!json_int64(json_get(e, "id"), &id) && !json_int64(json_get(e, "image_id"), &id) &&
            !(regions->n > 0 && json_int64(json_get(json_at(regions, 0), "image_id"), &id))) {
            bad_entry(L, "%s: entry %zu: no image id", file, i);
            continue;
        }
        if (regions->n == 0) continue;
        const VgImage *vi = NULL;
        if (vkeys) {
            uint64_t j = hash_u64((uint64_t)id) & (vcap - 1);
            while (vidx[j] >= 0 && vkeys[j] != (uint64_t)id) j = (j + 1) & (vcap - 1);
            if (vidx[j] >= 0) vi = &vimg[vidx[j]];
        }
        char buf[64];
        int64_t it;
        if (vi && vi->path) {
            it = new_item(L, vi->path);
        } else {
            snprintf(buf, sizeof buf, "VG_100K/%lld.jpg", (long long)id);
            it = new_item(L, pool_str(L, buf));
            snprintf(buf, sizeof buf, "VG_100K_2/%lld.jpg", (long long)id);
            L->items[it].alt_path = pool_str(L, buf);
        }
        if (vi) {
            L->items[it].ann_w = vi->w;
            L->items[it].ann_h = vi->h;
        }
        for (size_t k = 0; k < regions->n; k++) {
            const JsonValue *r = json_at(regions, k);
            const char *phrase = json_string(json_get(r, "phrase"));
            double x, y, w, h;
            if (!phrase || !json_number(json_get(r, "x"), &x) || !json_number(json_get(r, "y"), &y) ||
                !json_number(json_get(r, "width"), &w) || !json_number(json_get(r, "height"), &h)) {
                bad_entry(L, "%s: entry %zu region %zu: needs phrase, x, y, width, height", file, i, k);
                continue;
            }
            // With the image size known, drop small regions now (saves reading images whose
            // regions are all small); otherwise the worker applies the same rule after decoding.
            if (vi && vi->w > 0 && vi->h > 0 && o->min_region_frac > 0) {
                double x0 = fmax(0, x), y0 = fmax(0, y);
                double x1 = fmin(vi->w, x + w), y1 = fmin(vi->h, y + h);
                double area = (x1 > x0 && y1 > y0) ? (x1 - x0) * (y1 - y0) : 0;
                if (area < o->min_region_frac * vi->w * vi->h) {
                    L->small_regions++;
                    continue;
                }
            }
            float box[4] = {(float)x, (float)y, (float)w, (float)h};
            add_text(L, it, phrase, box);
        }
    }
    free(vimg);
    free(vkeys);
    free(vidx);
    return 0;
}

// TSV "caption<TAB>path" per line (the last tab splits), or an ALBEF JSON list.
static int load_tsv_or_json(PackList *L, const char *file) {
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "vlmae pack: cannot open %s: %s\n", file, strerror(errno));
        return -1;
    }
    int c;
    do {
        c = fgetc(f);
    } while (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xEF || c == 0xBB || c == 0xBF);
    fclose(f);
    if (c == '[') {
        JsonDoc *d = load_json(L, file);
        return d ? load_albef_doc(L, file, json_root(d)) : -1;
    }
    f = fopen(file, "rb");
    if (!f) return -1;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "vlmae pack: out of memory reading %s\n", file);
            exit(1);
        }
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            continue;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    L->bufs[L->nbufs++] = buf;
    long long lineno = 0;
    char *p = buf;
    while (p < buf + n) {
        char *nl = memchr(p, '\n', (size_t)(buf + n - p));
        char *end = nl ? nl : buf + n;
        lineno++;
        *end = '\0';
        if (end > p && end[-1] == '\r') end[-1] = '\0';
        char *line = p;
        p = end + 1;
        if (lineno == 1 && !strncmp(line, "\xEF\xBB\xBF", 3)) line += 3;
        if (!line[0]) continue;
        char *tab = strrchr(line, '\t');
        if (!tab) {
            bad_entry(L, "%s:%lld: no TAB between caption and path", file, lineno);
            continue;
        }
        *tab = '\0';
        const char *cap = line, *path = tab + 1;
        if (lineno == 1 && !strcasecmp(cap, "caption") &&
            (!strcasecmp(path, "path") || !strcasecmp(path, "image") || !strcasecmp(path, "url") ||
             !strcasecmp(path, "file") || !strcasecmp(path, "filepath")))
            continue;  // header
        if (!strncmp(path, "http://", 7) || !strncmp(path, "https://", 8)) {
            bad_entry(L, "%s:%lld: a URL, not a local file (download the images first; see "
                      "data/README.md)", file, lineno);
            continue;
        }
        if (!path[0]) {
            bad_entry(L, "%s:%lld: empty path", file, lineno);
            continue;
        }
        add_text(L, item_by_path(L, path), cap, NULL);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Task formats (vqa, ve, nlvr, grounding): ALBEF's fine-tuning JSON lists, with the task fields
// the shards keep in their optional task tables (shard.h).

static void *pool_mem(PackList *L, size_t n) {
    L->pool = grow(L->pool, &L->cappool, L->npool + 1, sizeof(char *));
    char *c = malloc(n ? n : 1);
    if (!c) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    L->pool[L->npool++] = c;
    return c;
}

// A JSON id (integer, number or string) as a string; NULL when absent or of another type.
static const char *id_string(PackList *L, const JsonValue *v) {
    char buf[64];
    int64_t i;
    double d;
    if (!v) return NULL;
    if (v->type == JSON_STRING) return v->u.str;
    if (json_int64(v, &i)) {
        snprintf(buf, sizeof buf, "%lld", (long long)i);
        return pool_str(L, buf);
    }
    if (json_number(v, &d)) {
        snprintf(buf, sizeof buf, "%.17g", d);
        return pool_str(L, buf);
    }
    return NULL;
}

static int task_list_root(const char *file, const JsonValue *root, const char *what) {
    if (root->type == JSON_ARRAY) return 0;
    fprintf(stderr, "vlmae pack: %s: expected a JSON list of %s objects, found a %s\n", file, what,
            json_type_name(root->type));
    return -1;
}

// ALBEF vqa_dataset: a "vqa" question's answers weigh count / #answers each (distinct answers);
// a "vg" question has one answer of weight 0.5. Lines "answer\tweight\tcount\n"; tabs and
// newlines inside an answer become spaces. NULL when the entry has no answers (test split).
static const char *vqa_answers(PackList *L, const JsonValue *av, int is_vg, int *bad) {
    *bad = 0;
    if (!av || av->type == JSON_NULL) return NULL;
    const char *one[1];
    const char **list = one;
    size_t n = 0;
    if (av->type == JSON_STRING) {
        one[0] = av->u.str;
        n = 1;
    } else if (av->type == JSON_ARRAY) {
        list = pool_mem(L, (av->n ? av->n : 1) * sizeof(char *));
        for (size_t k = 0; k < av->n; k++) {
            const char *a = json_string(json_at(av, k));
            if (!a) {
                *bad = 1;
                return NULL;
            }
            list[n++] = a;
        }
    } else {
        *bad = 1;
        return NULL;
    }
    if (n == 0) return NULL;
    size_t cap = 1;
    for (size_t k = 0; k < n; k++) cap += strlen(list[k]) + 48;
    char *out = pool_mem(L, cap);
    size_t pos = 0;
    for (size_t k = 0; k < n; k++) {
        int seen = 0, count = 0;
        for (size_t j = 0; j < k && !seen; j++) seen = !strcmp(list[j], list[k]);
        if (seen) continue;
        for (size_t j = 0; j < n; j++) count += !strcmp(list[j], list[k]);
        double w = is_vg ? 0.5 : (double)count / (double)n;
        size_t start = pos;
        pos += (size_t)snprintf(out + pos, cap - pos, "%s", list[k]);
        for (size_t c = start; c < pos; c++)
            if (out[c] == '\t' || out[c] == '\n' || out[c] == '\r') out[c] = ' ';
        pos += (size_t)snprintf(out + pos, cap - pos, "\t%.6g\t%d\n", w, count);
    }
    return out;
}

static int load_vqa_doc(PackList *L, const char *file, const JsonValue *root) {
    if (task_list_root(file, root, "{\"question_id\", \"image\", \"question\", \"answer\"}") < 0) return -1;
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const char *img = json_string(json_get(e, "image"));
        const char *q = json_string(json_get(e, "question"));
        if (!img || !img[0] || !q) {
            bad_entry(L, "%s: entry %zu: needs \"image\" and \"question\" strings", file, i);
            continue;
        }
        const char *ds = json_string(json_get(e, "dataset"));
        int bad;
        const char *ans = vqa_answers(L, json_get(e, "answer"), ds && !strcmp(ds, "vg"), &bad);
        if (bad) {
            bad_entry(L, "%s: entry %zu: \"answer\" is not a string or a list of strings", file, i);
            continue;
        }
        const char *key = id_string(L, json_get(e, "question_id"));
        RawText *t = add_text(L, item_by_path(L, img), q, NULL);
        t->is_question = 1;
        t->answers = ans;
        t->key = key;
    }
    return 0;
}

static int has_image_ext(const char *p) {
    const char *dot = strrchr(p, '.'), *slash = strrchr(p, '/');
    if (!dot || (slash && dot < slash)) return 0;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png");
}

// ALBEF ve_dataset: labels {'entailment': 2, 'neutral': 1, 'contradiction': 0}; the image path
// gets ".jpg" appended (SNLI-VE lists Flickr30K ids).
static int load_ve_doc(PackList *L, const char *file, const JsonValue *root) {
    if (task_list_root(file, root, "{\"image\", \"sentence\", \"label\"}") < 0) return -1;
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const char *img = json_string(json_get(e, "image"));
        const char *sent = json_string(json_get(e, "sentence"));
        const char *lab = json_string(json_get(e, "label"));
        if (!img || !img[0] || !sent || !lab) {
            bad_entry(L, "%s: entry %zu: needs \"image\", \"sentence\" and \"label\" strings", file, i);
            continue;
        }
        int label = !strcmp(lab, "entailment") ? 2 : !strcmp(lab, "neutral") ? 1 : !strcmp(lab, "contradiction") ? 0 : -1;
        if (label < 0) {
            bad_entry(L, "%s: entry %zu: label \"%.40s\" is not entailment, neutral or contradiction", file, i, lab);
            continue;
        }
        if (!has_image_ext(img)) {
            size_t n = strlen(img);
            char *p = pool_mem(L, n + 5);
            memcpy(p, img, n);
            memcpy(p + n, ".jpg", 5);
            img = p;
        }
        RawText *t = add_text(L, item_by_path(L, img), sent, NULL);
        t->label = label;
    }
    return 0;
}

// One item per distinct (left, right) pair: both images go into the same shard.
static int64_t item_by_pair(PackList *L, const char *a, const char *b) {
    int found;
    uint64_t key = hash_str(a) ^ hash_u64(hash_str(b));
    int64_t *v = map_slot(L, key, NULL, &found);
    if (found && !strcmp(L->items[*v].path, a) && !strcmp(L->items[*v].path2, b)) return *v;
    int64_t it = new_item(L, a);
    L->items[it].path2 = b;
    if (!found) *v = it;  // (on a 64-bit key collision the map keeps the first pair)
    return it;
}

// ALBEF nlvr_dataset: label 1 when "label" is "True", else 0 (we also accept JSON booleans and
// reject anything but True/False).
static int load_nlvr_doc(PackList *L, const char *file, const JsonValue *root) {
    if (task_list_root(file, root, "{\"images\": [left, right], \"sentence\", \"label\"}") < 0) return -1;
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const JsonValue *ims = json_get(e, "images");
        const char *a = json_string(json_at(ims, 0)), *b = json_string(json_at(ims, 1));
        const char *sent = json_string(json_get(e, "sentence"));
        const JsonValue *lv = json_get(e, "label");
        const char *ls = json_string(lv);
        int label = -1;
        if (lv && lv->type == JSON_TRUE) label = 1;
        else if (lv && lv->type == JSON_FALSE) label = 0;
        else if (ls && (!strcmp(ls, "True") || !strcmp(ls, "true"))) label = 1;
        else if (ls && (!strcmp(ls, "False") || !strcmp(ls, "false"))) label = 0;
        if (!ims || ims->type != JSON_ARRAY || ims->n != 2 || !a || !a[0] || !b || !b[0] || !sent) {
            bad_entry(L, "%s: entry %zu: needs \"images\": [left, right] and a \"sentence\"", file, i);
            continue;
        }
        if (label < 0) {
            bad_entry(L, "%s: entry %zu: \"label\" is not True or False", file, i);
            continue;
        }
        RawText *t = add_text(L, item_by_pair(L, a, b), sent, NULL);
        t->label = label;
    }
    return 0;
}

// RefCOCO+-style referring expressions: "bbox" (the referred object) becomes the text's box,
// "proposals" (detector boxes) and "ref_id" are kept; all boxes in pixels [x, y, w, h].
static int load_grounding_doc(PackList *L, const char *file, const JsonValue *root) {
    if (task_list_root(file, root, "{\"image\", \"text\", \"bbox\", \"proposals\"}") < 0) return -1;
    for (size_t i = 0; i < root->n; i++) {
        const JsonValue *e = json_at(root, i);
        const char *img = json_string(json_get(e, "image"));
        const char *text = json_string(json_get(e, "text"));
        if (!text) text = json_string(json_get(e, "caption"));
        if (!img || !img[0] || !text) {
            bad_entry(L, "%s: entry %zu: needs \"image\" and \"text\" strings", file, i);
            continue;
        }
        float box[4];
        const JsonValue *bv = json_get(e, "bbox");
        int has_box = bv && bv->type != JSON_NULL;
        if (has_box && !read_box(bv, box)) {
            bad_entry(L, "%s: entry %zu: \"bbox\" is not [x, y, w, h]", file, i);
            continue;
        }
        const JsonValue *pv = json_get(e, "proposals");
        float *props = NULL;
        int np = 0, badp = 0;
        if (pv && pv->type == JSON_ARRAY && pv->n > 0) {
            props = pool_mem(L, pv->n * 4 * sizeof(float));
            for (size_t k = 0; k < pv->n && !badp; k++) badp = !read_box(json_at(pv, k), props + 4 * np++);
        } else if (pv && pv->type != JSON_NULL && pv->type != JSON_ARRAY) {
            badp = 1;
        }
        if (badp) {
            bad_entry(L, "%s: entry %zu: \"proposals\" is not a list of [x, y, w, h]", file, i);
            continue;
        }
        const char *key = id_string(L, json_get(e, "ref_id"));
        RawText *t = add_text(L, item_by_path(L, img), text, has_box ? box : NULL);
        t->props = props;
        t->nprops = np;
        t->key = key;
    }
    return 0;
}

static int build_list(PackList *L, const PackOptions *o) {
    memset(L, 0, sizeof *L);
    const char *fmt = o->format;
    if (!strcmp(fmt, "coco") || !strcmp(fmt, "vg")) {
        if (o->nann != 1 && !strcmp(fmt, "vg")) {
            fprintf(stderr, "vlmae pack: vg takes one --ann (region_descriptions.json) and "
                    "--image-data image_data.json\n");
            return -1;
        }
    }
    for (int a = 0; a < o->nann; a++) {
        int rc;
        if (!strcmp(fmt, "albef")) {
            JsonDoc *d = load_json(L, o->ann[a]);
            rc = d ? load_albef_doc(L, o->ann[a], json_root(d)) : -1;
        } else if (!strcmp(fmt, "coco")) {
            rc = load_coco(L, o->ann[a]);
        } else if (!strcmp(fmt, "vg")) {
            rc = load_vg(L, o, o->ann[a]);
        } else if (!strcmp(fmt, "vqa") || !strcmp(fmt, "ve") || !strcmp(fmt, "nlvr") ||
                   !strcmp(fmt, "grounding")) {
            JsonDoc *d = load_json(L, o->ann[a]);
            const JsonValue *r = d ? json_root(d) : NULL;
            rc = !d ? -1
                 : !strcmp(fmt, "vqa") ? load_vqa_doc(L, o->ann[a], r)
                 : !strcmp(fmt, "ve")  ? load_ve_doc(L, o->ann[a], r)
                 : !strcmp(fmt, "nlvr") ? load_nlvr_doc(L, o->ann[a], r)
                                        : load_grounding_doc(L, o->ann[a], r);
        } else {
            rc = load_tsv_or_json(L, o->ann[a]);
        }
        if (rc < 0) return -1;
        if (L->ndocs >= 18 || L->nbufs >= 18) {
            fprintf(stderr, "vlmae pack: too many annotation files\n");
            return -1;
        }
    }
    finish_list(L);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Per-image work (threads)

enum { ST_OK, ST_MISSING, ST_TRUNCATED, ST_UNDECODABLE, ST_NO_TEXT, ST_NUM };
static const char *st_name[ST_NUM] = {"ok", "missing", "truncated", "undecodable",
                                       "no caption left"};

typedef struct {
    int status;
    uint8_t *bytes;
    size_t n;
    int h, w;
    int resized;
    int ntext;
    char **caps;           // cleaned captions (malloc'd)
    float (*boxes)[4];
    int64_t *src;          // index into PackList.texts of each kept caption (task fields)
    int fw, fh;            // frame of the annotation's pixel boxes
    uint8_t *bytes2;       // nlvr: the second image (NULL otherwise)
    size_t n2;
    int h2, w2, resized2;
    int dropped_empty, dropped_small, dropped_badbox;
    char msg[300];
} Result;

static void result_clear(Result *r) {
    free(r->bytes);
    free(r->bytes2);
    for (int k = 0; k < r->ntext; k++) free(r->caps[k]);
    free(r->caps);
    free(r->boxes);
    free(r->src);
    memset(r, 0, sizeof *r);
}

// The annotation path without --strip-prefix: what is joined to --images and stored as the key.
static const char *stripped(const PackOptions *o, const char *p) {
    if (o->strip_prefix) {
        size_t n = strlen(o->strip_prefix);
        if (!strncmp(p, o->strip_prefix, n)) p += n;
    }
    return p;
}

static char *join_path(const PackOptions *o, const char *p) {
    p = stripped(o, p);
    if (p[0] == '/' || !o->images || !o->images[0]) return strdup(p);
    size_t a = strlen(o->images), b = strlen(p);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, o->images, a);
    size_t k = a;
    if (a && o->images[a - 1] != '/') s[k++] = '/';
    while (*p == '/') p++;
    memcpy(s + k, p, strlen(p) + 1);
    return s;
}

// Read a whole file. Returns 0, or -1 with errno-ish status in *missing (1 = cannot open).
static int read_file(const char *path, uint8_t **out, size_t *n, char *msg, size_t msglen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, msglen, "%s", strerror(errno));
        return -1;
    }
    size_t cap = 1 << 18, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            snprintf(msg, msglen, "out of memory");
            return -2;
        }
        if (len == cap) {
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) free(buf);
            buf = nb;
            continue;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(msg, msglen, "read error");
        return -2;
    }
    *out = buf;
    *n = len;
    return 0;
}

static int decode_failure_status(size_t n, const char *emsg) {
    int trunc = n == 0 || strstr(emsg, "truncat") || strstr(emsg, "too short") ||
                strstr(emsg, "premature") || strstr(emsg, "Read Error") || strstr(emsg, "Not enough");
    return trunc ? ST_TRUNCATED : ST_UNDECODABLE;
}

// Downscale to --short-side when larger, and (re-)encode as JPEG unless the bytes are a JPEG
// kept as is. *data / *n are replaced. Returns 0 or -1 (encoding failed; *data freed).
static int shrink_encode(const PackOptions *o, Image *im, uint8_t **data, size_t *n, int *resized) {
    int is_jpeg = *n >= 3 && (*data)[0] == 0xFF && (*data)[1] == 0xD8 && (*data)[2] == 0xFF;
    int shortside = im->h < im->w ? im->h : im->w;
    if (o->short_side > 0 && shortside > o->short_side) {
        // torchvision Resize(short_side): the long side is int(short_side * long / short).
        Image small = {0};
        if (im->h <= im->w) {
            small.h = o->short_side;
            small.w = (int)((long long)o->short_side * im->w / im->h);
        } else {
            small.w = o->short_side;
            small.h = (int)((long long)o->short_side * im->h / im->w);
        }
        image_resize_bicubic(im, &small);
        image_free(im);
        *im = small;
        *resized = 1;
        is_jpeg = 0;
    }
    if (!is_jpeg) {
        free(*data);
        *data = NULL;
        if (image_encode_jpeg(im, o->quality, data, n) != 0) return -1;
    }
    return 0;
}

// nlvr: the second image of the pair, read, verified and stored like the first. Returns 0, or -1
// with r->status and r->msg set (the pair is then skipped as a whole).
static int load_image2(const PackOptions *o, const char *path, Result *r) {
    uint8_t *data = NULL;
    size_t n = 0;
    char emsg[256];
    char *full = join_path(o, path);
    int rc = full ? read_file(full, &data, &n, emsg, sizeof emsg) : -2;
    if (rc != 0) {
        r->status = rc == -1 ? ST_MISSING : ST_UNDECODABLE;
        snprintf(r->msg, sizeof r->msg, "%s (%s)", full ? full : path, emsg);
        free(full);
        return -1;
    }
    Image im = {0};
    if (image_decode(data, n, &im, emsg, sizeof emsg) != 0) {
        r->status = decode_failure_status(n, emsg);
        snprintf(r->msg, sizeof r->msg, "%s (%s)", full, n == 0 ? "empty file" : emsg);
        free(full);
        free(data);
        return -1;
    }
    if (shrink_encode(o, &im, &data, &n, &r->resized2) != 0) {
        r->status = ST_UNDECODABLE;
        snprintf(r->msg, sizeof r->msg, "%s (JPEG re-encoding failed)", full);
        image_free(&im);
        free(full);
        return -1;
    }
    r->bytes2 = data;
    r->n2 = n;
    r->h2 = im.h;
    r->w2 = im.w;
    image_free(&im);
    free(full);
    return 0;
}

static void process_item(const PackOptions *o, const PackList *L, const PackItem *it, Result *r) {
    memset(r, 0, sizeof *r);
    uint8_t *data = NULL;
    size_t n = 0;
    char emsg[256];
    char *full = join_path(o, it->path);
    int rc = full ? read_file(full, &data, &n, emsg, sizeof emsg) : -2;
    if (rc == -1 && it->alt_path) {
        char *alt = join_path(o, it->alt_path);
        if (alt && read_file(alt, &data, &n, emsg, sizeof emsg) == 0) {
            free(full);
            full = alt;
            rc = 0;
        } else {
            free(alt);
        }
    }
    if (rc != 0) {
        r->status = rc == -1 ? ST_MISSING : ST_UNDECODABLE;
        snprintf(r->msg, sizeof r->msg, "%s (%s)", full ? full : it->path, emsg);
        free(full);
        return;
    }
    Image im = {0};
    if (image_decode(data, n, &im, emsg, sizeof emsg) != 0) {
        r->status = decode_failure_status(n, emsg);
        snprintf(r->msg, sizeof r->msg, "%s (%s)", full, n == 0 ? "empty file" : emsg);
        free(full);
        free(data);
        return;
    }
    // Captions: clean; boxes: clip to the frame, normalise, drop small regions.
    int W = it->ann_w > 0 ? it->ann_w : im.w, H = it->ann_h > 0 ? it->ann_h : im.h;
    r->caps = malloc((size_t)it->ntext * sizeof(char *));
    r->boxes = malloc((size_t)it->ntext * sizeof(*r->boxes));
    r->src = malloc((size_t)it->ntext * sizeof(int64_t));
    r->fw = W, r->fh = H;
    if (!r->caps || !r->boxes || !r->src) {
        fprintf(stderr, "vlmae pack: out of memory\n");
        exit(1);
    }
    for (int k = 0; k < it->ntext; k++) {
        const RawText *t = &L->texts[it->first_text + k];
        float nb[4] = {NAN, NAN, NAN, NAN};
        if (!isnan(t->box[0])) {
            double x0 = fmax(0, t->box[0]), y0 = fmax(0, t->box[1]);
            double x1 = fmin(W, (double)t->box[0] + t->box[2]);
            double y1 = fmin(H, (double)t->box[1] + t->box[3]);
            if (!(x1 > x0 && y1 > y0)) {
                r->dropped_badbox++;
                continue;
            }
            if ((x1 - x0) * (y1 - y0) < o->min_region_frac * (double)W * H) {
                r->dropped_small++;
                continue;
            }
            nb[0] = (float)(x0 / W);
            nb[1] = (float)(y0 / H);
            nb[2] = (float)((x1 - x0) / W);
            nb[3] = (float)((y1 - y0) / H);
        }
        char *c = t->is_question ? pre_question(t->caption, o->max_words) : pre_caption(t->caption, o->max_words);
        if (!c[0]) {
            free(c);
            r->dropped_empty++;
            continue;
        }
        r->caps[r->ntext] = c;
        memcpy(r->boxes[r->ntext], nb, sizeof nb);
        r->src[r->ntext] = it->first_text + k;
        r->ntext++;
    }
    if (r->ntext == 0) {
        r->status = ST_NO_TEXT;
        snprintf(r->msg, sizeof r->msg, "%s", full);
        image_free(&im);
        free(data);
        free(full);
        return;
    }
    if (shrink_encode(o, &im, &data, &n, &r->resized) != 0) {
        r->status = ST_UNDECODABLE;
        snprintf(r->msg, sizeof r->msg, "%s (JPEG re-encoding failed)", full);
        image_free(&im);
        free(full);
        return;
    }
    if (it->path2 && load_image2(o, it->path2, r) != 0) {
        image_free(&im);
        free(data);
        free(full);
        return;
    }
    r->status = ST_OK;
    r->bytes = data;
    r->n = n;
    r->h = im.h;
    r->w = im.w;
    image_free(&im);
    free(full);
}

// ---------------------------------------------------------------------------------------------
// Ordered parallel pipeline

typedef struct {
    const PackOptions *o;
    const PackList *L;
    const int64_t *jobs;   // item index per job
    int64_t njobs;
    Result *ring;
    unsigned char *ready;
    int64_t window;
    int64_t next;          // next job to hand out
    int64_t consumed;      // jobs taken by the writer
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_space;
} Pipe;

static void *worker(void *arg) {
    Pipe *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->next < p->njobs && p->next - p->consumed >= p->window)
            pthread_cond_wait(&p->cv_space, &p->mu);
        if (p->next >= p->njobs) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        int64_t j = p->next++;
        pthread_mutex_unlock(&p->mu);
        Result r;
        process_item(p->o, p->L, &p->L->items[p->jobs[j]], &r);
        pthread_mutex_lock(&p->mu);
        p->ring[j % p->window] = r;
        p->ready[j % p->window] = 1;
        pthread_cond_broadcast(&p->cv_ready);
        pthread_mutex_unlock(&p->mu);
    }
}

// ---------------------------------------------------------------------------------------------
// Main

static int mkdir_parents(const char *prefix) {
    char *p = strdup(prefix);
    if (!p) return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "vlmae pack: cannot create directory %s: %s\n", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    free(p);
    return 0;
}

typedef struct {
    long long count[ST_NUM];
    char examples[ST_NUM][NEXAMPLES][300];
    long long texts, dropped_empty, dropped_small, dropped_badbox, resized;
    unsigned long long bytes;
} Stats;

static void fmt_duration(double s, char *buf, size_t n) {
    long long t = (long long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%lldh%02lldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%lldm%02llds", t / 60, t % 60);
    else snprintf(buf, n, "%llds", t);
}

int pack_main(int argc, char **argv) {
    PackOptions o;
    int prc = parse_options(argc, argv, &o);
    if (prc == 1) return 0;  // --help
    if (prc) return prc;
    double t0 = now_seconds();
    PackList L;
    if (!o.quiet) fprintf(stderr, "pack: reading annotations (%s)...\n", o.format);
    if (build_list(&L, &o) != 0) {
        free_list(&L);
        return 1;
    }
    if (o.limit > 0 && L.nitems > o.limit) L.nitems = o.limit;
    const int64_t N = L.nitems;
    const int64_t T = (N + o.shard_size - 1) / o.shard_size;  // shards in the whole dataset
    const int64_t s0 = T * o.shard_index / o.num_shards, s1 = T * (o.shard_index + 1) / o.num_shards;
    fprintf(stderr, "pack: %lld images with %lld captions in the annotations -> %lld shards of %d; "
            "this run: shards %lld..%lld (slice %d of %d), %d threads (%.1f s)\n",
            (long long)N, (long long)(N ? L.items[N - 1].first_text + L.items[N - 1].ntext : 0),
            (long long)T, o.shard_size, (long long)s0, (long long)s1 - 1, o.shard_index,
            o.num_shards, o.threads, now_seconds() - t0);
    if (L.bad_entries) {
        fprintf(stderr, "pack: %lld malformed annotation entries skipped, e.g.:\n", L.bad_entries);
        for (long long k = 0; k < L.bad_entries && k < NEXAMPLES; k++)
            fprintf(stderr, "pack:   %s\n", L.bad_examples[k]);
    }
    if (N == 0) {
        fprintf(stderr, "vlmae pack: no image with a caption in the annotations\n");
        free_list(&L);
        return 1;
    }
    if (mkdir_parents(o.out) != 0) {
        free_list(&L);
        return 1;
    }
    // Which shards to pack (existing complete shards are kept unless --overwrite).
    int64_t nsh = s1 - s0;
    int64_t *todo = malloc((size_t)(nsh > 0 ? nsh : 1) * sizeof(int64_t));
    int64_t ntodo = 0, present = 0;
    size_t plen = strlen(o.out) + 32;
    char *path = malloc(plen);
    for (int64_t t = s0; t < s1; t++) {
        snprintf(path, plen, "%s-%05lld.h5", o.out, (long long)t);
        if (!o.overwrite && access(path, F_OK) == 0) {
            char err[1024];
            Shard *s = shard_open_flags(path, SHARD_OPEN_NO_KEYS, err, sizeof err);
            if (s) {
                shard_close(s);
                present++;
                continue;
            }
            fprintf(stderr, "pack: %s exists but does not open (%s): packing it again\n", path, err);
        }
        todo[ntodo++] = t;
    }
    if (present)
        fprintf(stderr, "pack: %lld shards already present and valid, kept (--overwrite to "
                "repack)\n", (long long)present);
    // Jobs: the items of the shards to pack, in order.
    int64_t njobs = 0;
    for (int64_t k = 0; k < ntodo; k++) {
        int64_t a = todo[k] * o.shard_size, b = MIN_I64(a + o.shard_size, N);
        njobs += b - a;
    }
    int64_t *jobs = malloc((size_t)(njobs ? njobs : 1) * sizeof(int64_t));
    int64_t *job_shard = malloc((size_t)(ntodo ? ntodo : 1) * sizeof(int64_t));  // first job
    {
        int64_t j = 0;
        for (int64_t k = 0; k < ntodo; k++) {
            job_shard[k] = j;
            int64_t a = todo[k] * o.shard_size, b = MIN_I64(a + o.shard_size, N);
            for (int64_t i = a; i < b; i++) jobs[j++] = i;
        }
    }
    Pipe p;
    memset(&p, 0, sizeof p);
    p.o = &o;
    p.L = &L;
    p.jobs = jobs;
    p.njobs = njobs;
    p.window = 4 * (int64_t)o.threads + 8;
    p.ring = calloc((size_t)p.window, sizeof(Result));
    p.ready = calloc((size_t)p.window, 1);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv_ready, NULL);
    pthread_cond_init(&p.cv_space, NULL);
    pthread_t *th = calloc((size_t)o.threads, sizeof(pthread_t));
    int nth = 0;
    for (int i = 0; i < o.threads && njobs > 0; i++) {
        if (pthread_create(&th[nth], NULL, worker, &p) == 0) nth++;
    }
    if (njobs > 0 && nth == 0) {
        fprintf(stderr, "vlmae pack: cannot start threads\n");
        return 1;
    }
    Stats st;
    memset(&st, 0, sizeof st);
    int failed = 0, written = 0;
    ShardWriter *w = NULL;
    int64_t cur = -1;  // index into todo of the open shard
    double last = now_seconds(), tstart = now_seconds();
    for (int64_t j = 0; j < njobs; j++) {
        // Open the next shard when j is its first job.
        if (!failed && (cur + 1 < ntodo && job_shard[cur + 1] == j)) {
            cur++;
            snprintf(path, plen, "%s-%05lld.h5", o.out, (long long)todo[cur]);
            char err[1024];
            w = shard_writer_open(path, o.dataset, 0, err, sizeof err);
            if (!w) {
                fprintf(stderr, "vlmae pack: %s\n", err);
                failed = 1;
            }
        }
        pthread_mutex_lock(&p.mu);
        while (!p.ready[j % p.window]) pthread_cond_wait(&p.cv_ready, &p.mu);
        Result r = p.ring[j % p.window];
        p.ready[j % p.window] = 0;
        p.consumed = j + 1;
        pthread_cond_broadcast(&p.cv_space);
        pthread_mutex_unlock(&p.mu);
        st.count[r.status]++;
        st.dropped_empty += r.dropped_empty;
        st.dropped_small += r.dropped_small;
        st.dropped_badbox += r.dropped_badbox;
        if (r.status != ST_OK) {
            long long c = st.count[r.status];
            if (c <= NEXAMPLES) snprintf(st.examples[r.status][c - 1], 300, "%s", r.msg);
        } else if (!failed) {
            char err[1024];
            const PackItem *it = &L.items[jobs[j]];
            int64_t row = shard_writer_add_image(w, r.bytes, r.n, r.h, r.w, stripped(&o, it->path),
                                                 err, sizeof err);
            int64_t row2 = -1;
            if (row >= 0 && r.bytes2) {
                row2 = shard_writer_add_image(w, r.bytes2, r.n2, r.h2, r.w2, stripped(&o, it->path2), err,
                                              sizeof err);
                if (row2 < 0) row = -1;
            }
            for (int k = 0; k < r.ntext && row >= 0; k++) {
                int64_t ti = shard_writer_add_text(w, (uint32_t)row, r.caps[k], strlen(r.caps[k]), r.boxes[k],
                                                   err, sizeof err);
                if (ti < 0) {
                    row = -1;
                    break;
                }
                const RawText *rt = &L.texts[r.src[k]];
                if (rt->label >= 0 || row2 >= 0 || rt->answers || rt->key || rt->nprops > 0) {
                    // task fields; proposals normalised in the frame of the boxes, clipped
                    float *props = rt->nprops > 0 ? malloc((size_t)rt->nprops * 4 * sizeof(float)) : NULL;
                    for (int q = 0; q < rt->nprops && props; q++) {
                        const float *b = rt->props + 4 * q;
                        double x0 = fmax(0, b[0]), y0 = fmax(0, b[1]);
                        double x1 = fmin(r.fw, (double)b[0] + b[2]), y1 = fmin(r.fh, (double)b[1] + b[3]);
                        props[4 * q + 0] = (float)(x0 / r.fw);
                        props[4 * q + 1] = (float)(y0 / r.fh);
                        props[4 * q + 2] = (float)(x1 > x0 ? (x1 - x0) / r.fw : 0.0);
                        props[4 * q + 3] = (float)(y1 > y0 ? (y1 - y0) / r.fh : 0.0);
                    }
                    ShardTextExtra ex = {0};
                    ex.has_label = rt->label >= 0;
                    ex.label = rt->label;
                    ex.has_image2 = row2 >= 0;
                    ex.image2 = (uint32_t)row2;
                    ex.answers = rt->answers;
                    ex.answers_len = rt->answers ? strlen(rt->answers) : 0;
                    ex.proposals = props;
                    ex.n_proposals = props ? rt->nprops : 0;
                    ex.key = rt->key;
                    if (shard_writer_set_extra(w, ti, &ex, err, sizeof err) < 0) row = -1;
                    free(props);
                }
            }
            if (row < 0) {
                fprintf(stderr, "vlmae pack: %s\n", err);
                failed = 1;
            }
            st.texts += r.ntext;
            st.resized += r.resized + r.resized2;
            st.bytes += r.n + r.n2;
        }
        result_clear(&r);
        // Close the shard after its last job.
        int last_of_shard = (cur + 1 < ntodo) ? (j + 1 == job_shard[cur + 1]) : (j + 1 == njobs);
        if (last_of_shard && w) {
            char err[1024];
            long long nimg = shard_writer_num_images(w), ntxt = shard_writer_num_texts(w);
            if (failed) {
                shard_writer_abort(w);
            } else if (shard_writer_finish(w, err, sizeof err) != 0) {
                fprintf(stderr, "vlmae pack: %s\n", err);
                failed = 1;
            } else {
                written++;
                if (!o.quiet)
                    fprintf(stderr, "pack: wrote %s (%lld images, %lld captions)\n", path, nimg, ntxt);
            }
            w = NULL;
        }
        double t = now_seconds();
        if (!o.quiet && o.progress_s > 0 && t - last >= o.progress_s) {
            last = t;
            double rate = (double)(j + 1) / (t - tstart);
            char eta[32];
            fmt_duration((double)(njobs - j - 1) / (rate > 0 ? rate : 1), eta, sizeof eta);
            long long skipped = (long long)(j + 1) - st.count[ST_OK];
            fprintf(stderr, "pack: %lld/%lld images (%.0f%%), %.1f images/s, %lld skipped, eta %s\n",
                    (long long)(j + 1), (long long)njobs, 100.0 * (double)(j + 1) / (double)njobs,
                    rate, skipped, eta);
        }
        if (failed) {
            // Stop handing out work; drain what is in flight.
            pthread_mutex_lock(&p.mu);
            int64_t stop = p.next;  // results j+1 .. stop-1 are still to arrive
            p.njobs = stop;         // workers exit after their current item
            pthread_cond_broadcast(&p.cv_space);
            pthread_mutex_unlock(&p.mu);
            for (int64_t k = j + 1; k < stop; k++) {
                pthread_mutex_lock(&p.mu);
                while (!p.ready[k % p.window]) pthread_cond_wait(&p.cv_ready, &p.mu);
                p.ready[k % p.window] = 0;
                p.consumed = k + 1;
                pthread_cond_broadcast(&p.cv_space);
                pthread_mutex_unlock(&p.mu);
                result_clear(&p.ring[k % p.window]);
            }
            break;
        }
    }
    for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
    if (w) shard_writer_abort(w);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv_ready);
    pthread_cond_destroy(&p.cv_space);
    free(th);
    free(p.ring);
    free(p.ready);

    // ---- Final report
    double el = now_seconds() - t0;
    char dur[32];
    fmt_duration(el, dur, sizeof dur);
    long long skipped = st.count[ST_MISSING] + st.count[ST_TRUNCATED] + st.count[ST_UNDECODABLE] +
                        st.count[ST_NO_TEXT];
    fprintf(stderr,
            "pack: report: %s %d shard(s) written, %lld kept; %lld of %lld images packed "
            "(%lld re-encoded at short side %d), %lld captions, %.1f MB of JPEG, in %s\n",
            failed ? "FAILED after" : "done:", written, (long long)present, st.count[ST_OK],
            (long long)njobs, st.resized, o.short_side, st.texts, (double)st.bytes / 1e6, dur);
    fprintf(stderr,
            "pack: report: skipped images: %lld (missing %lld, truncated %lld, undecodable %lld, "
            "no caption left %lld)\n",
            skipped, st.count[ST_MISSING], st.count[ST_TRUNCATED], st.count[ST_UNDECODABLE],
            st.count[ST_NO_TEXT]);
    char small[96] = "";
    if (o.min_region_frac > 0)
        snprintf(small, sizeof small, ", %lld regions under %g%% of the image",
                 st.dropped_small + L.small_regions, 100 * o.min_region_frac);
    fprintf(stderr,
            "pack: report: dropped captions: %lld empty after clean-up%s, %lld boxes outside the "
            "image; %lld annotation images without captions, %lld malformed annotation entries\n",
            st.dropped_empty, small, st.dropped_badbox, L.no_text_items, L.bad_entries);
    for (int s = ST_MISSING; s < ST_NUM; s++) {
        for (long long k = 0; k < st.count[s] && k < NEXAMPLES; k++)
            fprintf(stderr, "pack: report: %s: %s\n", st_name[s], st.examples[s][k]);
        if (st.count[s] > NEXAMPLES)
            fprintf(stderr, "pack: report: %s: ... and %lld more\n", st_name[s],
                    st.count[s] - NEXAMPLES);
    }
    int rc = failed ? 1 : 0;
    if (!failed && njobs > 0 && st.count[ST_OK] == 0) {
        fprintf(stderr, "vlmae pack: no image could be packed: is --images right (%s)?\n",
                o.images ? o.images : "(not given)");
        rc = 1;
    }
    free(path);
    free(todo);
    free(jobs);
    free(job_shard);
    free_list(&L);
    return rc;
}
