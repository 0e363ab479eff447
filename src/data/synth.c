// synth.c: the synthetic dataset generator (`vlmae synth`). See synth.h and data/SYNTH.md.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "data/image.h"
#include "engine/common.h"
#include "engine/rng.h"

enum { NSHAPE = 3, NCOLOR = 6, NSIZE = 2, NPOS = 5, NBG = 3, MAXOBJ = 4 };
enum { SMALL = 0, LARGE = 1 };
enum { P_LEFT = 0, P_RIGHT, P_TOP, P_BOTTOM, P_CENTER };

static const char *SHAPE[NSHAPE] = {"circle", "square", "triangle"};
static const char *SHAPES[NSHAPE] = {"circles", "squares", "triangles"};
static const char *COLOR[NCOLOR] = {"red", "green", "blue", "yellow", "purple", "orange"};
static const uint8_t COLOR_RGB[NCOLOR][3] = {{220, 40, 40},  {40, 170, 60},  {40, 80, 220},
                                             {235, 210, 40}, {140, 60, 180}, {245, 140, 30}};
static const char *SIZE[NSIZE] = {"small", "large"};
static const char *POS[NPOS] = {"left", "right", "top", "bottom", "center"};
static const char *POS_PHRASE[NPOS] = {"on the left", "on the right", "at the top",
                                       "at the bottom", "in the center"};
static const double POS_XY[NPOS][2] = {
    {0.18, 0.50}, {0.82, 0.50}, {0.50, 0.18}, {0.50, 0.82}, {0.50, 0.50}};
static const char *BG[NBG] = {"white", "gray", "black"};
static const uint8_t BG_RGB[NBG][3] = {{240, 240, 240}, {128, 128, 128}, {25, 25, 25}};
static const char *NUM[9] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight"};
static const double R_FRAC[NSIZE] = {0.08, 0.14}; // shape "radius" as a fraction of the side
static const double JITTER = 0.015;               // slot jitter, fraction of the side

// RNG stream kinds: (seed, kind, image index).
enum { S_SCENE = 1, S_PIXELS, S_CAPTION, S_REGION, S_RETRIEVAL, S_VQA, S_VE, S_NLVR, S_GROUND };

typedef struct {
    int shape, color, size, pos;
    double cx, cy, r;
    double box[4]; // pixels x, y, w, h (clipped to the image)
} Obj;

typedef struct {
    int bg, n;
    Obj o[MAXOBJ];
} Scene;

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
// Language

typedef struct {
    char s[512];
    size_t n;
} Str;

static void sb_reset(Str *b) {
    b->n = 0;
    b->s[0] = 0;
}

static void sb_add(Str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(Str *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
    va_end(ap);
    if (k > 0) b->n = MIN(b->n + (size_t)k, sizeof(b->s) - 1);
}

static const char *article(const char *word) { return strchr("aeiou", word[0]) ? "an" : "a"; }

enum { ART_NONE = 0, ART_A, ART_THE };

// "[a|an|the] [size] [colour] shape [position]"
static void phrase(Str *b, const Obj *o, int with_size, int with_color, int with_pos, int art) {
    const char *first = with_size ? SIZE[o->size] : with_color ? COLOR[o->color] : SHAPE[o->shape];
    if (art == ART_A) sb_add(b, "%s ", article(first));
    if (art == ART_THE) sb_add(b, "the ");
    if (with_size) sb_add(b, "%s ", SIZE[o->size]);
    if (with_color) sb_add(b, "%s ", COLOR[o->color]);
    sb_add(b, "%s", SHAPE[o->shape]);
    if (with_pos) sb_add(b, " %s", POS_PHRASE[o->pos]);
}

// Objects matching (shape, colour, size); -1 = any.
static int count_match(const Scene *sc, int shape, int color, int size) {
    int n = 0;
    for (int k = 0; k < sc->n; k++) {
        const Obj *o = &sc->o[k];
        if ((shape < 0 || o->shape == shape) && (color < 0 || o->color == color) &&
            (size < 0 || o->size == size))
            n++;
    }
    return n;
}

static void random_phrase(Str *b, Rng *r, const Obj *o, double p_pos) {
    int sz = rng_bernoulli(r, 0.5), col = rng_bernoulli(r, 0.85), pos = rng_bernoulli(r, p_pos);
    phrase(b, o, sz, col, pos, ART_A);
}

// Two distinct object indices.
static void two_objects(Rng *r, const Scene *sc, int *a, int *b) {
    *a = (int)rng_randint(r, sc->n);
    *b = (int)rng_randint(r, sc->n - 1);
    if (*b >= *a) (*b)++;
}

enum { CAP_SINGLE, CAP_PAIR, CAP_ALL, CAP_COUNT, CAP_INVENTORY, CAP_RELATION, CAP_KINDS };

// Spatial relation of a to b that clearly holds: 0 left of, 1 right of, 2 above, 3 below; -1 none.
static int relation(const Scene *sc, const Obj *a, const Obj *b, Rng *r, int S) {
    (void)sc;
    int ok[4], n = 0;
    double gap = 0.2 * S;
    if (a->cx < b->cx - gap) ok[n++] = 0;
    if (a->cx > b->cx + gap) ok[n++] = 1;
    if (a->cy < b->cy - gap) ok[n++] = 2;
    if (a->cy > b->cy + gap) ok[n++] = 3;
    return n ? ok[rng_randint(r, n)] : -1;
}

static void caption(Str *b, Rng *r, const Scene *sc, int kind, int S) {
    static const char *REL[4] = {"to the left of", "to the right of", "above", "below"};
    sb_reset(b);
    switch (kind) {
    case CAP_SINGLE: {
        static const char *pre[4] = {"", "there is ", "an image of ", "a picture with "};
        sb_add(b, "%s", pre[rng_randint(r, 4)]);
        random_phrase(b, r, &sc->o[rng_randint(r, sc->n)], 0.6);
        break;
    }
    case CAP_PAIR: {
        static const char *pre[3] = {"", "there is ", "an image of "};
        int i, j;
        two_objects(r, sc, &i, &j);
        sb_add(b, "%s", pre[rng_randint(r, 3)]);
        random_phrase(b, r, &sc->o[i], 0.5);
        sb_add(b, " and ");
        random_phrase(b, r, &sc->o[j], 0.5);
        break;
    }
    case CAP_ALL: {
        int32_t ord[MAXOBJ];
        rng_permutation_i32(r, ord, (size_t)sc->n);
        int pos = rng_bernoulli(r, 0.5);
        for (int k = 0; k < sc->n; k++) {
            if (k) sb_add(b, k == sc->n - 1 ? " and " : ", ");
            phrase(b, &sc->o[ord[k]], rng_bernoulli(r, 0.5), 1, pos, ART_A);
        }
        if (rng_bernoulli(r, 0.5)) sb_add(b, " on a %s background", BG[sc->bg]);
        break;
    }
    case CAP_COUNT: {
        int v = (int)rng_randint(r, 3);
        if (v == 0) {
            sb_add(b, "%s shapes on a %s background", NUM[sc->n], BG[sc->bg]);
        } else if (v == 1) {
            sb_add(b, "%s colored shapes including ", NUM[sc->n]);
            random_phrase(b, r, &sc->o[rng_randint(r, sc->n)], 0.3);
        } else {
            sb_add(b, "a %s background with %s shapes", BG[sc->bg], NUM[sc->n]);
        }
        break;
    }
    case CAP_INVENTORY: {
        int kinds = 0, done = 0;
        for (int s = 0; s < NSHAPE; s++) kinds += count_match(sc, s, -1, -1) > 0;
        for (int s = 0; s < NSHAPE; s++) {
            int c = count_match(sc, s, -1, -1);
            if (!c) continue;
            if (done) sb_add(b, done == kinds - 1 ? " and " : ", ");
            if (c == 1) sb_add(b, "%s %s", article(SHAPE[s]), SHAPE[s]);
            else sb_add(b, "%s %s", NUM[c], SHAPES[s]);
            done++;
        }
        if (rng_bernoulli(r, 0.5)) sb_add(b, " on a %s background", BG[sc->bg]);
        break;
    }
    case CAP_RELATION: {
        for (int t = 0; t < 8; t++) {
            int i, j;
            two_objects(r, sc, &i, &j);
            int rel = relation(sc, &sc->o[i], &sc->o[j], r, S);
            if (rel < 0) continue;
            phrase(b, &sc->o[i], rng_bernoulli(r, 0.4), 1, 0, ART_A);
            sb_add(b, " %s ", REL[rel]);
            phrase(b, &sc->o[j], rng_bernoulli(r, 0.4), 1, 0, ART_A);
            return;
        }
        caption(b, r, sc, CAP_PAIR, S);
        break;
    }
    default: die("bad caption kind %d", kind);
    }
}

// k distinct captions (best effort: 20 tries each) with kinds weighted towards partial ones.
static int captions(Str *out, int k, Rng *r, const Scene *sc, int S) {
    static const int w[CAP_KINDS] = {3, 3, 1, 1, 1, 2}; // single, pair, all, count, inv, relation
    int total = 0, n = 0;
    for (int i = 0; i < CAP_KINDS; i++) total += w[i];
    for (int c = 0; c < k; c++) {
        for (int t = 0; t < 20; t++) {
            int x = (int)rng_randint(r, total), kind = 0;
            while (x >= w[kind]) x -= w[kind++];
            caption(&out[n], r, sc, kind, S);
            int dup = 0;
            for (int q = 0; q < n; q++) dup |= !strcmp(out[q].s, out[n].s);
            if (!dup) break;
        }
        n++;
    }
    return n;
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
// Downstream annotations

enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST };
static const char *SPLIT[3] = {"train", "val", "test"};

// VQA: up to 3 questions of distinct types that apply to the scene. Returns the count.
typedef struct {
    Str q;
    char a[16];
} QA;

static int vqa_questions(QA *out, Rng *r, const Scene *sc) {
    enum { Q_KINDS = 9 };
    int32_t ord[Q_KINDS];
    rng_permutation_i32(r, ord, Q_KINDS);
    int n = 0;
    for (int t = 0; t < Q_KINDS && n < 3; t++) {
        QA *qa = &out[n];
        sb_reset(&qa->q);
        const Obj *o = &sc->o[rng_randint(r, sc->n)];
        int ok = 1;
        switch (ord[t]) {
        case 0: // colour of a shape that occurs once
            if (count_match(sc, o->shape, -1, -1) != 1) { ok = 0; break; }
            sb_add(&qa->q, "what color is the %s?", SHAPE[o->shape]);
            snprintf(qa->a, sizeof(qa->a), "%s", COLOR[o->color]);
            break;
        case 1:
            sb_add(&qa->q, "what shape is %s?", POS_PHRASE[o->pos]);
            snprintf(qa->a, sizeof(qa->a), "%s", SHAPE[o->shape]);
            break;
        case 2:
            sb_add(&qa->q, "how many shapes are there?");
            snprintf(qa->a, sizeof(qa->a), "%d", sc->n);
            break;
        case 3: {
            int c = rng_bernoulli(r, 0.5) ? o->color : (int)rng_randint(r, NCOLOR);
            sb_add(&qa->q, "how many %s shapes are there?", COLOR[c]);
            snprintf(qa->a, sizeof(qa->a), "%d", count_match(sc, -1, c, -1));
            break;
        }
        case 4: {
            int s = o->shape, c = o->color;
            if (rng_bernoulli(r, 0.5)) s = (int)rng_randint(r, NSHAPE), c = (int)rng_randint(r, NCOLOR);
            sb_add(&qa->q, "is there %s %s %s?", article(COLOR[c]), COLOR[c], SHAPE[s]);
            snprintf(qa->a, sizeof(qa->a), "%s", count_match(sc, s, c, -1) ? "yes" : "no");
            break;
        }
        case 5:
            sb_add(&qa->q, "what color is the background?");
            snprintf(qa->a, sizeof(qa->a), "%s", BG[sc->bg]);
            break;
        case 6:
            if (count_match(sc, o->shape, o->color, -1) != 1) { ok = 0; break; }
            sb_add(&qa->q, "is the %s %s large or small?", COLOR[o->color], SHAPE[o->shape]);
            snprintf(qa->a, sizeof(qa->a), "%s", SIZE[o->size]);
            break;
        case 7:
            if (count_match(sc, o->shape, o->color, -1) != 1) { ok = 0; break; }
            sb_add(&qa->q, "where is the %s %s?", COLOR[o->color], SHAPE[o->shape]);
            snprintf(qa->a, sizeof(qa->a), "%s", POS[o->pos]);
            break;
        default: // colour of the only shape of its kind and size, when the kind alone is ambiguous
            if (count_match(sc, o->shape, -1, o->size) != 1 || count_match(sc, o->shape, -1, -1) < 2) {
                ok = 0;
                break;
            }
            sb_add(&qa->q, "what color is the %s %s?", SIZE[o->size], SHAPE[o->shape]);
            snprintf(qa->a, sizeof(qa->a), "%s", COLOR[o->color]);
            break;
        }
        if (ok) n++;
    }
    return n;
}

static void answer_list(JList *j) {
    const char *extra[] = {"yes", "no", "0", "1", "2", "3", "4"};
    for (size_t i = 0; i < sizeof(extra) / sizeof(*extra); i++) jstr(jl_next(j), extra[i]);
    for (int i = 0; i < NCOLOR; i++) jstr(jl_next(j), COLOR[i]);
    for (int i = 0; i < NSHAPE; i++) jstr(jl_next(j), SHAPE[i]);
    for (int i = 0; i < NSIZE; i++) jstr(jl_next(j), SIZE[i]);
    for (int i = 0; i < NPOS; i++) jstr(jl_next(j), POS[i]);
    for (int i = 0; i < NBG; i++) jstr(jl_next(j), BG[i]);
}

// A definite description that picks out o alone: colour+shape, else size+colour+shape, else
// with the position.
static void unique_the(Str *b, const Scene *sc, const Obj *o) {
    if (count_match(sc, o->shape, o->color, -1) == 1) phrase(b, o, 0, 1, 0, ART_THE);
    else if (count_match(sc, o->shape, o->color, o->size) == 1) phrase(b, o, 1, 1, 0, ART_THE);
    else phrase(b, o, 0, 1, 1, ART_THE);
}

// SNLI-VE-like statements: label 0 entailment, 1 neutral, 2 contradiction.
static const char *VE_LABEL[3] = {"entailment", "neutral", "contradiction"};

static void ve_statement(Str *b, Rng *r, const Scene *sc, int label, int S) {
    sb_reset(b);
    if (label == 0) {
        static const int kinds[5] = {CAP_SINGLE, CAP_PAIR, CAP_COUNT, CAP_INVENTORY, CAP_RELATION};
        caption(b, r, sc, kinds[rng_randint(r, 5)], S);
        return;
    }
    if (label == 1) {
        static const char *material[5] = {"wood", "metal", "paper", "plastic", "glass"};
        static const char *adj[6] = {"heavy", "warm", "cold", "soft", "new", "old"};
        const Obj *o = &sc->o[rng_randint(r, sc->n)];
        unique_the(b, sc, o);
        if (rng_bernoulli(r, 0.5)) sb_add(b, " is made of %s", material[rng_randint(r, 5)]);
        else sb_add(b, " is %s", adj[rng_randint(r, 6)]);
        return;
    }
    for (;;) { // contradiction: each variant is checked false against the scene
        int v = (int)rng_randint(r, 5);
        const Obj *o = &sc->o[rng_randint(r, sc->n)];
        if (v == 0) { // an absent colour+shape
            int s = (int)rng_randint(r, NSHAPE), c = (int)rng_randint(r, NCOLOR);
            if (count_match(sc, s, c, -1)) continue;
            sb_add(b, "there is %s %s %s", article(COLOR[c]), COLOR[c], SHAPE[s]);
            return;
        } else if (v == 1) { // a present colour+shape at a wrong place
            if (count_match(sc, o->shape, o->color, -1) != 1) continue;
            int p = (int)rng_randint(r, NPOS - 1);
            if (p >= o->pos) p++;
            Obj moved = *o;
            moved.pos = p;
            phrase(b, &moved, 0, 1, 1, ART_A);
            return;
        } else if (v == 2) { // a wrong count
            int k = 2 + (int)rng_randint(r, 2);
            if (k >= sc->n) k++;
            sb_add(b, "%s shapes on a %s background", NUM[k], BG[sc->bg]);
            return;
        } else if (v == 3) { // a present colour+shape with the wrong size
            if (count_match(sc, o->shape, o->color, 1 - o->size) != 0) continue;
            Obj resized = *o;
            resized.size = 1 - o->size;
            phrase(b, &resized, 1, 1, 0, ART_A);
            return;
        } else { // the wrong background
            int g = (int)rng_randint(r, NBG - 1);
            if (g >= sc->bg) g++;
            sb_add(b, "%s shapes on a %s background", NUM[sc->n], BG[g]);
            return;
        }
    }
}

// NLVR2-like statement about a pair (a = left image, b = right image); returns its truth.
static int nlvr_statement(Str *s, Rng *r, const Scene *a, const Scene *b) {
    sb_reset(s);
    // Arguments drawn half the time from the images, so true statements are common.
    const Scene *src = rng_bernoulli(r, 0.5) ? a : b;
    const Obj *o = &src->o[rng_randint(r, src->n)];
    int shape = o->shape, color = o->color;
    if (rng_bernoulli(r, 0.4)) shape = (int)rng_randint(r, NSHAPE), color = (int)rng_randint(r, NCOLOR);
    int ina = count_match(a, shape, color, -1) > 0, inb = count_match(b, shape, color, -1) > 0;
    switch (rng_randint(r, 8)) {
    case 0:
        sb_add(s, "the left image contains %s %s %s", article(COLOR[color]), COLOR[color], SHAPE[shape]);
        return ina;
    case 1:
        sb_add(s, "the right image contains %s %s %s", article(COLOR[color]), COLOR[color], SHAPE[shape]);
        return inb;
    case 2:
        sb_add(s, "both images contain %s %s", article(SHAPE[shape]), SHAPE[shape]);
        return count_match(a, shape, -1, -1) > 0 && count_match(b, shape, -1, -1) > 0;
    case 3:
        sb_add(s, "both images contain %s %s shape", article(COLOR[color]), COLOR[color]);
        return count_match(a, -1, color, -1) > 0 && count_match(b, -1, color, -1) > 0;
    case 4:
        sb_add(s, "the left image has more shapes than the right image");
        return a->n > b->n;
    case 5: {
        int total = a->n + b->n;
        int k = total + (rng_bernoulli(r, 0.5) ? 0 : (rng_bernoulli(r, 0.5) ? 1 : -1));
        if (k > 8) k = total - 1; // NUM goes to eight; the total is at most 8
        sb_add(s, "there are %s shapes in total", NUM[k]);
        return k == total;
    }
    case 6:
        sb_add(s, "exactly one image contains %s %s %s", article(COLOR[color]), COLOR[color], SHAPE[shape]);
        return ina != inb;
    default: {
        int g = src->bg;
        sb_add(s, "both images have a %s background", BG[g]);
        return a->bg == g && b->bg == g;
    }
    }
}

// RefCOCO+-style expression (appearance only, no location words) that picks out o; 0 if none.
static int refexp(Str *s, Rng *r, const Scene *sc, const Obj *o) {
    int cand[4][2], n = 0; // (with_size, with_color)
    if (count_match(sc, o->shape, -1, -1) == 1) cand[n][0] = 0, cand[n][1] = 0, n++;
    if (count_match(sc, o->shape, o->color, -1) == 1) cand[n][0] = 0, cand[n][1] = 1, n++;
    if (count_match(sc, o->shape, -1, o->size) == 1) cand[n][0] = 1, cand[n][1] = 0, n++;
    if (count_match(sc, o->shape, o->color, o->size) == 1) cand[n][0] = 1, cand[n][1] = 1, n++;
    if (!n) return 0;
    int k = (int)rng_randint(r, n);
    sb_reset(s);
    phrase(s, o, cand[k][0], cand[k][1], 0, rng_bernoulli(r, 0.5) ? ART_THE : ART_NONE);
    return 1;
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
        if (image_write_jpeg(&im, o->quality, path) != 0) {
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

        // Pre-training captions (3 per image) and regions (one per object).
        rng_seed_stream(&r, o->seed, S_CAPTION, (uint64_t)idx);
        int nc = captions(caps, 3, &r, sc, S);
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
        for (int k = 0; k < sc->n && fv >= 0; k++) {
            sb_reset(&tmp);
            phrase(&tmp, &sc->o[k], rng_bernoulli(&r, 0.6), rng_bernoulli(&r, 0.9), rng_bernoulli(&r, 0.5), ART_A);
            w = jl_next(&f[fv]);
            fputs("{\"image\": ", w);
            jstr(w, name);
            fputs(", \"caption\": ", w);
            jstr(w, tmp.s);
            fputs(", \"box\": ", w);
            jbox(w, sc->o[k].box);
            fputc('}', w);
        }

        // Retrieval: 5 captions per image (COCO style).
        rng_seed_stream(&r, o->seed, S_RETRIEVAL, (uint64_t)idx);
        nc = captions(caps, 5, &r, sc, S);
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

        // VQA.
        rng_seed_stream(&r, o->seed, S_VQA, (uint64_t)idx);
        int nq = vqa_questions(qa, &r, sc);
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
            ve_statement(&tmp, &r, sc, lab, S);
            w = jl_next(&f[F_VE_TRAIN + sp]);
            fprintf(w, "{\"image\": \"images/%06d\", \"sentence\": ", idx);
            jstr(w, tmp.s);
            fprintf(w, ", \"label\": \"%s\"}", VE_LABEL[lab]);
        }

        // Grounding: every object with an appearance-only unique expression.
        rng_seed_stream(&r, o->seed, S_GROUND, (uint64_t)idx);
        for (int k = 0; k < sc->n; k++) {
            const Obj *ob = &sc->o[k];
            if (!refexp(&tmp, &r, sc, ob)) continue;
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
                got = nlvr_statement(&tmp, &r, &scenes[a], &scenes[b]);
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
    if (rc == 0 && !o->quiet) {
        printf("vlmae synth: %d images (%d train, %d val, %d test) of %dx%d in %s/images; "
               "%ld pretrain captions, %ld regions, %ld VQA questions, %ld VE statements, "
               "%ld NLVR pairs, %ld referring expressions\n",
               N, n_train, n_hold, n_hold, S, S, o->out_dir, f[F_PRETRAIN].n, f[F_VG].n, qid,
               f[F_VE_TRAIN].n + f[F_VE_VAL].n + f[F_VE_TEST].n, n_nlvr, ref_id);
    }
    free(scenes);
    free(split);
    return rc;
}

static void usage(FILE *f) {
    fputs("usage: vlmae synth --out DIR [--seed N] [--images N] [--size PX] [--quality Q] [--quiet]\n"
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
          "  --quiet        no summary line\n",
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
