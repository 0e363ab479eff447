// synth_text.c: the sentences of the synthetic dataset (synth.h, data/SYNTH.md): captions, region
// phrases, VQA questions and answers, SNLI-VE statements, NLVR2 statements and referring
// expressions, each generated from the scene (synth_internal.h) so that it is true of the image
// by construction (false statements are generated false on purpose, and checked). synth.c draws
// the scenes, renders them and writes the files.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "data/synth_internal.h"
#include "engine/common.h"
#include "engine/rng.h"

// ------------------------------------------------------------------------------------------
// Language

static void sb_add(Str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(Str *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
    va_end(ap);
    if (k > 0) b->n = MIN(b->n + (size_t)k, sizeof(b->s) - 1);
}

static const char *article(const char *word) { return strchr("aeiou", word[0]) ? "an" : "a"; }

// "[a|an|the] [size] [colour] shape [position]"
void synth_phrase(Str *b, const Obj *o, int with_size, int with_color, int with_pos, int art) {
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
    synth_phrase(b, o, sz, col, pos, ART_A);
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
            synth_phrase(b, &sc->o[ord[k]], rng_bernoulli(r, 0.5), 1, pos, ART_A);
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
            synth_phrase(b, &sc->o[i], rng_bernoulli(r, 0.4), 1, 0, ART_A);
            sb_add(b, " %s ", REL[rel]);
            synth_phrase(b, &sc->o[j], rng_bernoulli(r, 0.4), 1, 0, ART_A);
            return;
        }
        caption(b, r, sc, CAP_PAIR, S);
        break;
    }
    default: die("bad caption kind %d", kind);
    }
}

// k distinct captions (best effort: 20 tries each) of the kinds drawn with weights w.
static int captions_weighted(Str *out, int k, Rng *r, const Scene *sc, int S, const int *w) {
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

// k distinct captions with kinds weighted towards partial ones.
int synth_captions(Str *out, int k, Rng *r, const Scene *sc, int S) {
    static const int w[CAP_KINDS] = {3, 3, 1, 1, 1, 2}; // single, pair, all, count, inv, relation
    return captions_weighted(out, k, r, sc, S, w);
}

// Captions naming objects of `part` only: no count or inventory (they would count the objects the
// part leaves out); one object: single and list captions (a pair needs two); lists (which may
// name the background) only with_background.
int synth_captions_about(Str *out, int k, Rng *r, const Scene *part, int S, int with_background) {
    static const int w[2][2][CAP_KINDS] = {{{3, 0, 0, 0, 0, 0}, {3, 3, 0, 0, 0, 2}},
                                           {{3, 0, 1, 0, 0, 0}, {3, 3, 1, 0, 0, 2}}};
    return captions_weighted(out, k, r, part, S, w[with_background != 0][part->n >= 2]);
}

// ------------------------------------------------------------------------------------------
// Downstream annotations

// VQA: up to 3 questions of distinct types that apply to the scene. Returns the count.
int synth_vqa_questions(QA *out, Rng *r, const Scene *sc) {
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

// A definite description that picks out o alone: colour+shape, else size+colour+shape, else
// with the position.
static void unique_the(Str *b, const Scene *sc, const Obj *o) {
    if (count_match(sc, o->shape, o->color, -1) == 1) synth_phrase(b, o, 0, 1, 0, ART_THE);
    else if (count_match(sc, o->shape, o->color, o->size) == 1) synth_phrase(b, o, 1, 1, 0, ART_THE);
    else synth_phrase(b, o, 0, 1, 1, ART_THE);
}

// SNLI-VE-like statements: label 0 entailment, 1 neutral, 2 contradiction (VE_LABEL).
void synth_ve_statement(Str *b, Rng *r, const Scene *sc, int label, int S) {
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
            synth_phrase(b, &moved, 0, 1, 1, ART_A);
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
            synth_phrase(b, &resized, 1, 1, 0, ART_A);
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
int synth_nlvr_statement(Str *s, Rng *r, const Scene *a, const Scene *b) {
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
int synth_refexp(Str *s, Rng *r, const Scene *sc, const Obj *o) {
    int cand[4][2], n = 0; // (with_size, with_color)
    if (count_match(sc, o->shape, -1, -1) == 1) cand[n][0] = 0, cand[n][1] = 0, n++;
    if (count_match(sc, o->shape, o->color, -1) == 1) cand[n][0] = 0, cand[n][1] = 1, n++;
    if (count_match(sc, o->shape, -1, o->size) == 1) cand[n][0] = 1, cand[n][1] = 0, n++;
    if (count_match(sc, o->shape, o->color, o->size) == 1) cand[n][0] = 1, cand[n][1] = 1, n++;
    if (!n) return 0;
    int k = (int)rng_randint(r, n);
    sb_reset(s);
    synth_phrase(s, o, cand[k][0], cand[k][1], 0, rng_bernoulli(r, 0.5) ? ART_THE : ART_NONE);
    return 1;
}
