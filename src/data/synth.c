// synth.c: the synthetic dataset generator (`vlmae synth`). See synth.h and data/SYNTH.md.
// This file: scenes, pixels and the JSON + JPEG files; the sentences are synth_text.c (what the
// two share: synth_internal.h); the command line is cli/synth.c.
//
// A scene is a plain background with 2-4 shapes, each at a distinct named slot (left, right, top,
// bottom, center) with a shape, colour and size. Every caption, region, question, statement and
// referring expression is generated from the scene, so it is true of the image by construction
// (false statements are generated as false on purpose, and checked). Each image and each of its
// annotations draws from its own RNG stream (seed, kind, image index), so image k is the same
// whatever --images is.
#include "data/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "data/image.h"
#include "data/synth_internal.h"
#include "engine/common.h"
#include "engine/rng.h"

// The world's colours, slots and sizes in pixels (its words are in synth_internal.h).
static const uint8_t COLOR_RGB[NCOLOR][3] = {{220, 40, 40},  {40, 170, 60},  {40, 80, 220},
                                             {235, 210, 40}, {140, 60, 180}, {245, 140, 30}};
static const double POS_XY[NPOS][2] = {
    {0.18, 0.50}, {0.82, 0.50}, {0.50, 0.18}, {0.50, 0.82}, {0.50, 0.50}};
static const uint8_t BG_RGB[NBG][3] = {{240, 240, 240}, {128, 128, 128}, {25, 25, 25}};
static const double R_FRAC[NSIZE] = {0.08, 0.14}; // shape "radius" as a fraction of the side
static const double JITTER = 0.015;               // slot jitter, fraction of the side

// RNG stream kinds: (seed, kind, image index).
enum { S_SCENE = 1, S_PIXELS, S_CAPTION, S_REGION, S_RETRIEVAL, S_VQA, S_VE, S_NLVR, S_GROUND, S_PROBE };

void synth_defaults(SynthOptions *o) {
    memset(o, 0, sizeof(*o));
    o->seed = 0;
    o->images = 1000;
    o->size = 96;
    o->quality = 90;
}

// ------------------------------------------------------------------------------------------
// Scenes and rendering

static void shape_box(const Obj *o, int S, double b[4]) {
    double x0, y0, x1, y1;
    if (o->shape == 0) {
        x0 = o->cx - o->r, x1 = o->cx + o->r, y0 = o->cy - o->r, y1 = o->cy + o->r;
    } else if (o->shape == 1) {
        double h = 0.9 * o->r;
        x0 = o->cx - h, x1 = o->cx + h, y0 = o->cy - h, y1 = o->cy + h;
    } else {
        x0 = o->cx - 1.05 * o->r, x1 = o->cx + 1.05 * o->r;
        y0 = o->cy - 1.05 * o->r, y1 = o->cy + 0.9 * o->r;
    }
    x0 = MAX(x0, 0.0), y0 = MAX(y0, 0.0), x1 = MIN(x1, (double)S), y1 = MIN(y1, (double)S);
    b[0] = x0, b[1] = y0, b[2] = x1 - x0, b[3] = y1 - y0;
}

static int inside(const Obj *o, double x, double y) {
    double dx = x - o->cx, dy = y - o->cy, r = o->r;
    if (o->shape == 0) return dx * dx + dy * dy <= r * r;
    if (o->shape == 1) return fabs(dx) <= 0.9 * r && fabs(dy) <= 0.9 * r;
    // Triangle, apex up: apex (0, -1.05r), base corners (+-1.05r, 0.9r).
    if (dy > 0.9 * r || dy < -1.05 * r) return 0;
    double half = 1.05 * r * (dy + 1.05 * r) / (1.95 * r);
    return fabs(dx) <= half;
}

static void make_scene(uint64_t seed, int idx, int S, Scene *sc) {
    Rng r;
    rng_seed_stream(&r, seed, S_SCENE, (uint64_t)idx);
    sc->bg = (int)rng_randint(&r, NBG);
    sc->n = 2 + (int)rng_randint(&r, 3);
    int32_t slots[NPOS];
    rng_permutation_i32(&r, slots, NPOS);
    for (int k = 0; k < sc->n; k++) {
        Obj *o = &sc->o[k];
        o->pos = slots[k];
        o->shape = (int)rng_randint(&r, NSHAPE);
        o->color = (int)rng_randint(&r, NCOLOR);
        o->size = (int)rng_randint(&r, NSIZE);
        o->r = R_FRAC[o->size] * S;
        o->cx = (POS_XY[o->pos][0] + rng_range(&r, -JITTER, JITTER)) * S;
        o->cy = (POS_XY[o->pos][1] + rng_range(&r, -JITTER, JITTER)) * S;
        shape_box(o, S, o->box);
    }
}

static void render(uint64_t seed, int idx, int S, const Scene *sc, Image *im) {
    Rng r;
    rng_seed_stream(&r, seed, S_PIXELS, (uint64_t)idx);
    // Background with slight sensor-like noise, so images are not flat.
    for (int p = 0; p < S * S; p++) {
        int nz = (int)lrint(rng_normal(&r) * 3.0);
        for (int c = 0; c < 3; c++) {
            int v = BG_RGB[sc->bg][c] + nz;
            im->px[3 * p + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    for (int k = 0; k < sc->n; k++) {
        const Obj *o = &sc->o[k];
        int col[3];
        for (int c = 0; c < 3; c++) {
            int v = COLOR_RGB[o->color][c] + (int)rng_randint(&r, 25) - 12;
            col[c] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
        int x0 = (int)floor(o->box[0]), y0 = (int)floor(o->box[1]);
        int x1 = (int)ceil(o->box[0] + o->box[2]), y1 = (int)ceil(o->box[1] + o->box[3]);
        x1 = MIN(x1, S), y1 = MIN(y1, S);
        for (int y = y0; y < y1; y++) {
            for (int x = x0; x < x1; x++) {
                int cov = 0; // 4x4 supersampled coverage: anti-aliased edges
                for (int sy = 0; sy < 4; sy++)
                    for (int sx = 0; sx < 4; sx++)
                        cov += inside(o, x + (sx + 0.5) / 4.0, y + (sy + 0.5) / 4.0);
                if (!cov) continue;
                uint8_t *p = im->px + 3 * ((size_t)y * S + x);
                for (int c = 0; c < 3; c++) p[c] = (uint8_t)((p[c] * (16 - cov) + col[c] * cov + 8) / 16);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// JSON output

typedef struct {
    FILE *f;
    long n;
    char path[1100];
    int err;
} JList;

static int jl_open(JList *j, const char *dir, const char *name) {
    memset(j, 0, sizeof(*j));
    snprintf(j->path, sizeof(j->path), "%s/%s", dir, name);
    j->f = fopen(j->path, "w");
    if (!j->f) {
        fprintf(stderr, "vlmae synth: cannot create %s: %s\n", j->path, strerror(errno));
        return -1;
    }
    fputs("[\n", j->f);
    return 0;
}

static FILE *jl_next(JList *j) {
    if (j->n++) fputs(",\n", j->f);
    return j->f;
}

static int jl_close(JList *j) {
    if (!j->f) return 0;
    fputs(j->n ? "\n]\n" : "]\n", j->f);
    int bad = ferror(j->f);
    bad |= fclose(j->f) != 0;
    j->f = NULL;
    if (bad) fprintf(stderr, "vlmae synth: write error on %s\n", j->path);
    return bad ? -1 : 0;
}

static void jstr(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void jbox(FILE *f, const double b[4]) {
    fprintf(f, "[%.1f, %.1f, %.1f, %.1f]", b[0], b[1], b[2], b[3]);
}

static void image_name(char *buf, size_t n, int idx) { snprintf(buf, n, "images/%06d.jpg", idx); }

// ------------------------------------------------------------------------------------------
// The focal-bias probe (SynthOptions.focal_probe)

// 1 when the scene holds both a large and a small object.
static int scene_mixed(const Scene *sc) {
    int has[NSIZE] = {0, 0};
    for (int k = 0; k < sc->n; k++) has[sc->o[k].size] = 1;
    return has[SMALL] && has[LARGE];
}

// The objects of sc of one size, with the same background and places.
static void scene_part(const Scene *sc, int size, Scene *part) {
    memset(part, 0, sizeof(*part));
    part->bg = sc->bg;
    for (int k = 0; k < sc->n; k++)
        if (sc->o[k].size == size) part->o[part->n++] = sc->o[k];
}

// ------------------------------------------------------------------------------------------
// Splits and the VQA answer list (the sentences: synth_text.c)

enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST };
static const char *SPLIT[3] = {"train", "val", "test"};

static void answer_list(JList *j) {
    const char *extra[] = {"yes", "no", "0", "1", "2", "3", "4"};
    for (size_t i = 0; i < sizeof(extra) / sizeof(*extra); i++) jstr(jl_next(j), extra[i]);
    for (int i = 0; i < NCOLOR; i++) jstr(jl_next(j), COLOR[i]);
    for (int i = 0; i < NSHAPE; i++) jstr(jl_next(j), SHAPE[i]);
    for (int i = 0; i < NSIZE; i++) jstr(jl_next(j), SIZE[i]);
    for (int i = 0; i < NPOS; i++) jstr(jl_next(j), POS[i]);
    for (int i = 0; i < NBG; i++) jstr(jl_next(j), BG[i]);
}

// ------------------------------------------------------------------------------------------

enum {
    F_PRETRAIN, F_PRETRAIN_HELD, F_VG, F_VG_HELD, F_SCENES,
    F_RET_TRAIN, F_RET_VAL, F_RET_TEST,
    F_VQA_TRAIN, F_VQA_VAL, F_VQA_TEST, F_ANSWERS,
    F_VE_TRAIN, F_VE_VAL, F_VE_TEST,
    F_NLVR_TRAIN, F_NLVR_VAL, F_NLVR_TEST,
    F_GR_TRAIN, F_GR_VAL, F_GR_TESTA, F_GR_TESTB,
    F_COUNT
};
static const char *FNAME[F_COUNT] = {
    "pretrain.json", "pretrain_heldout.json", "vg.json", "vg_heldout.json", "scenes.json",
    "retrieval_train.json", "retrieval_val.json", "retrieval_test.json",
    "vqa_train.json", "vqa_val.json", "vqa_test.json", "answer_list.json",
    "ve_train.json", "ve_val.json", "ve_test.json",
    "nlvr_train.json", "nlvr_val.json", "nlvr_test.json",
    "grounding_train.json", "grounding_val.json", "grounding_testA.json", "grounding_testB.json"};

int synth_generate(const SynthOptions *o) {
    const int N = o->images, S = o->size;
    if (!o->out_dir || !*o->out_dir) {
        fprintf(stderr, "vlmae synth: --out DIR is required\n");
        return -1;
    }
    if (N < 3) {
        fprintf(stderr, "vlmae synth: --images must be at least 3 (train/val/test), got %d\n", N);
        return -1;
    }
    if (S < 32 || S > 4096) {
        fprintf(stderr, "vlmae synth: --size must be in 32..4096, got %d\n", S);
        return -1;
    }
    char imdir[1100];
    snprintf(imdir, sizeof(imdir), "%s/images", o->out_dir);
    if (mkdir_p(imdir) != 0) {
        fprintf(stderr, "vlmae synth: cannot create %s: %s\n", imdir, strerror(errno));
        return -1;
    }
    // Splits: the last tenth is test, the tenth before it val, the rest train (pre-training and
    // fine-tuning use train only, so val/test are held out from everything).
    int n_hold = MAX(1, N / 10);
    int n_train = N - 2 * n_hold;
    Scene *scenes = callocCheck((size_t)N, sizeof(Scene));
    int *split = callocCheck((size_t)N, sizeof(int));
    JList f[F_COUNT];
    memset(f, 0, sizeof(f));
    int rc = 0;
    for (int k = 0; k < F_COUNT && rc == 0; k++) rc = jl_open(&f[k], o->out_dir, FNAME[k]);
    JList probe; // focal_probe.json, only with the option (the default files are unchanged)
    memset(&probe, 0, sizeof(probe));
    if (rc == 0 && o->focal_probe) rc = jl_open(&probe, o->out_dir, "focal_probe.json");
    Image im;
    image_alloc(&im, S, S, 3);
    char name[64], path[1200];
    Str caps[8], tmp;
    QA qa[3];
    long qid = 0, ref_id = 0;
    for (int i = 0; i < N && rc == 0; i++) {
        int idx = i + 1;
        Scene *sc = &scenes[i];
        split[i] = i < n_train ? SPLIT_TRAIN : i < n_train + n_hold ? SPLIT_VAL : SPLIT_TEST;
        int sp = split[i];
        make_scene(o->seed, idx, S, sc);
        render(o->seed, idx, S, sc, &im);
        image_name(name, sizeof(name), idx);
        snprintf(path, sizeof(path), "%s/%s", o->out_dir, name);
        // 4:4:4: the captions are about colours, and 4:2:0 smears flat colours at shape edges.
        if (image_write_jpeg_chroma(&im, o->quality, JPEG_CHROMA_444, path) != 0) {
            fprintf(stderr, "vlmae synth: cannot write %s: %s\n", path, strerror(errno));
            rc = -1;
            break;
        }
        FILE *w;
        Rng r;

        // Ground truth.
        w = jl_next(&f[F_SCENES]);
        fputs("{\"image\": ", w);
        jstr(w, name);
        fprintf(w, ", \"split\": \"%s\", \"background\": \"%s\", \"objects\": [", SPLIT[sp], BG[sc->bg]);
        for (int k = 0; k < sc->n; k++) {
            const Obj *ob = &sc->o[k];
            fprintf(w, "%s{\"shape\": \"%s\", \"color\": \"%s\", \"size\": \"%s\", \"position\": \"%s\", \"box\": ",
                    k ? ", " : "", SHAPE[ob->shape], COLOR[ob->color], SIZE[ob->size], POS[ob->pos]);
            jbox(w, ob->box);
            fputc('}', w);
        }
        fputs("]}", w);

        // What the pre-training texts may name: every object, or with the focal-bias probe only
        // the large objects of a train image that has large and small ones.
        Scene part;
        const Scene *about = sc;
        int focal = o->focal_probe && sp == SPLIT_TRAIN && scene_mixed(sc);
        if (focal) scene_part(sc, LARGE, &part), about = &part;

        // Pre-training captions (3 per image) and regions (one per object).
        rng_seed_stream(&r, o->seed, S_CAPTION, (uint64_t)idx);
        int nc = focal ? synth_captions_about(caps, 3, &r, about, S, 1) : synth_captions(caps, 3, &r, sc, S);
        int fp = sp == SPLIT_TRAIN ? F_PRETRAIN : sp == SPLIT_TEST ? F_PRETRAIN_HELD : -1;
        for (int c = 0; c < nc && fp >= 0; c++) {
            w = jl_next(&f[fp]);
            fputs("{\"image\": ", w);
            jstr(w, name);
            fputs(", \"caption\": ", w);
            jstr(w, caps[c].s);
            fputc('}', w);
        }
        rng_seed_stream(&r, o->seed, S_REGION, (uint64_t)idx);
        int fv = sp == SPLIT_TRAIN ? F_VG : sp == SPLIT_TEST ? F_VG_HELD : -1;
        for (int k = 0; k < about->n && fv >= 0; k++) {
            sb_reset(&tmp);
            synth_phrase(&tmp, &about->o[k], rng_bernoulli(&r, 0.6), rng_bernoulli(&r, 0.9), rng_bernoulli(&r, 0.5), ART_A);
            w = jl_next(&f[fv]);
            fputs("{\"image\": ", w);
            jstr(w, name);
            fputs(", \"caption\": ", w);
            jstr(w, tmp.s);
            fputs(", \"box\": ", w);
            jbox(w, about->o[k].box);
            fputc('}', w);
        }

        // Retrieval: 5 captions per image (COCO style).
        rng_seed_stream(&r, o->seed, S_RETRIEVAL, (uint64_t)idx);
        nc = focal ? synth_captions_about(caps, 5, &r, about, S, 1) : synth_captions(caps, 5, &r, sc, S);
        if (sp == SPLIT_TRAIN) {
            for (int c = 0; c < nc; c++) {
                w = jl_next(&f[F_RET_TRAIN]);
                fputs("{\"caption\": ", w);
                jstr(w, caps[c].s);
                fputs(", \"image\": ", w);
                jstr(w, name);
                fprintf(w, ", \"image_id\": \"synth_%06d\"}", idx);
            }
        } else {
            w = jl_next(&f[sp == SPLIT_VAL ? F_RET_VAL : F_RET_TEST]);
            fputs("{\"image\": ", w);
            jstr(w, name);
            fputs(", \"caption\": [", w);
            for (int c = 0; c < nc; c++) {
                if (c) fputs(", ", w);
                jstr(w, caps[c].s);
            }
            fputs("]}", w);
        }

        // Focal-bias probe: a test image with large and small objects, 5 captions naming only its
        // small objects and not the background (retrieval_test.json's format).
        if (o->focal_probe && sp == SPLIT_TEST && scene_mixed(sc)) {
            scene_part(sc, SMALL, &part);
            rng_seed_stream(&r, o->seed, S_PROBE, (uint64_t)idx);
            nc = synth_captions_about(caps, 5, &r, &part, S, 0);
            w = jl_next(&probe);
            fputs("{\"image\": ", w);
            jstr(w, name);
            fputs(", \"caption\": [", w);
            for (int c = 0; c < nc; c++) {
                if (c) fputs(", ", w);
                jstr(w, caps[c].s);
            }
            fputs("]}", w);
        }

        // VQA.
        rng_seed_stream(&r, o->seed, S_VQA, (uint64_t)idx);
        int nq = synth_vqa_questions(qa, &r, sc);
        for (int q = 0; q < nq; q++) {
            w = jl_next(&f[F_VQA_TRAIN + sp]);
            fprintf(w, "{\"question_id\": %ld, \"image\": ", ++qid);
            jstr(w, name);
            fputs(", \"question\": ", w);
            jstr(w, qa[q].q.s);
            fputs(", \"answer\": [", w);
            jstr(w, qa[q].a);
            fputs("], \"dataset\": \"vqa\"}", w);
        }

        // SNLI-VE: one statement per label; "image" without extension, as ALBEF's ve files.
        rng_seed_stream(&r, o->seed, S_VE, (uint64_t)idx);
        for (int lab = 0; lab < 3; lab++) {
            synth_ve_statement(&tmp, &r, sc, lab, S);
            w = jl_next(&f[F_VE_TRAIN + sp]);
            fprintf(w, "{\"image\": \"images/%06d\", \"sentence\": ", idx);
            jstr(w, tmp.s);
            fprintf(w, ", \"label\": \"%s\"}", VE_LABEL[lab]);
        }

        // Grounding: every object with an appearance-only unique expression.
        rng_seed_stream(&r, o->seed, S_GROUND, (uint64_t)idx);
        for (int k = 0; k < sc->n; k++) {
            const Obj *ob = &sc->o[k];
            if (!synth_refexp(&tmp, &r, sc, ob)) continue;
            int fg = sp == SPLIT_TRAIN ? F_GR_TRAIN : sp == SPLIT_VAL ? F_GR_VAL
                     : ob->shape == 0 ? F_GR_TESTA : F_GR_TESTB;
            // Proposals: every object's box, slightly perturbed like a detector's (about one
            // pixel at 96 px), plus two random boxes, in random order.
            double props[MAXOBJ + 2][4];
            int np = 0;
            const double jit = S / 96.0; // about a pixel at the default size
            for (int q = 0; q < sc->n; q++) {
                for (int c = 0; c < 4; c++) props[np][c] = sc->o[q].box[c] + rng_range(&r, -jit, jit);
                props[np][0] = MAX(props[np][0], 0.0);
                props[np][1] = MAX(props[np][1], 0.0);
                np++;
            }
            for (int q = 0; q < 2; q++) {
                double bw = rng_range(&r, 0.1, 0.4) * S, bh = rng_range(&r, 0.1, 0.4) * S;
                props[np][0] = rng_range(&r, 0, S - bw);
                props[np][1] = rng_range(&r, 0, S - bh);
                props[np][2] = bw;
                props[np][3] = bh;
                np++;
            }
            int32_t ord[MAXOBJ + 2];
            rng_permutation_i32(&r, ord, (size_t)np);
            w = jl_next(&f[fg]);
            fputs("{\"image\": ", w);
            jstr(w, name);
            fputs(", \"text\": ", w);
            jstr(w, tmp.s);
            fprintf(w, ", \"ref_id\": %ld, \"bbox\": ", ++ref_id);
            jbox(w, ob->box);
            fputs(", \"proposals\": [", w);
            for (int q = 0; q < np; q++) {
                if (q) fputs(", ", w);
                jbox(w, props[ord[q]]);
            }
            fputs("]}", w);
        }
    }
    image_free(&im);

    // NLVR2: one pair per image of each split, labels alternating True/False.
    long n_nlvr = 0;
    for (int sp = 0; sp < 3 && rc == 0; sp++) {
        int lo = sp == SPLIT_TRAIN ? 0 : sp == SPLIT_VAL ? n_train : n_train + n_hold;
        int cnt = sp == SPLIT_TRAIN ? n_train : n_hold;
        Rng r;
        rng_seed_stream(&r, o->seed, S_NLVR, (uint64_t)sp);
        for (int k = 0; k < cnt; k++) {
            int a = lo + k, b = lo + (int)rng_randint(&r, cnt);
            if (cnt > 1 && b == a) b = lo + (k + 1) % cnt;
            int want = k % 2 == 0, got = 0;
            for (int t = 0; t < 100; t++) {
                got = synth_nlvr_statement(&tmp, &r, &scenes[a], &scenes[b]);
                if (got == want) break;
            }
            char na[64], nb[64];
            image_name(na, sizeof(na), a + 1);
            image_name(nb, sizeof(nb), b + 1);
            FILE *w = jl_next(&f[F_NLVR_TRAIN + sp]);
            fputs("{\"images\": [", w);
            jstr(w, na);
            fputs(", ", w);
            jstr(w, nb);
            fputs("], \"sentence\": ", w);
            jstr(w, tmp.s);
            fprintf(w, ", \"label\": \"%s\"}", got ? "True" : "False");
            n_nlvr++;
        }
    }
    if (rc == 0) answer_list(&f[F_ANSWERS]);
    for (int k = 0; k < F_COUNT; k++) {
        if (jl_close(&f[k]) != 0) rc = -1;
    }
    if (jl_close(&probe) != 0) rc = -1;
    if (rc == 0 && !o->quiet) {
        printf("vlmae synth: %d images (%d train, %d val, %d test) of %dx%d in %s/images; "
               "%ld pretrain captions, %ld regions, %ld VQA questions, %ld VE statements, "
               "%ld NLVR pairs, %ld referring expressions\n",
               N, n_train, n_hold, n_hold, S, S, o->out_dir, f[F_PRETRAIN].n, f[F_VG].n, qid,
               f[F_VE_TRAIN].n + f[F_VE_VAL].n + f[F_VE_TEST].n, n_nlvr, ref_id);
        if (o->focal_probe)
            printf("vlmae synth: focal-bias probe: pre-training texts of train images with large and small objects "
                   "name the large ones only; %ld mixed test images in focal_probe.json\n", probe.n);
    }
    free(scenes);
    free(split);
    return rc;
}
