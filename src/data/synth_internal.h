// synth_internal.h: private to the synthetic dataset generator (synth.h), shared by its two
// files: synth.c (scenes, pixels, the JSON and JPEG files) and synth_text.c (the sentences about a
// scene: captions, regions, questions, statements, referring expressions). Not an interface.
#ifndef VLMAE_SYNTH_INTERNAL_H
#define VLMAE_SYNTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/rng.h"

enum { NSHAPE = 3, NCOLOR = 6, NSIZE = 2, NPOS = 5, NBG = 3, MAXOBJ = 4 };
enum { SMALL = 0, LARGE = 1 };
enum { P_LEFT = 0, P_RIGHT, P_TOP, P_BOTTOM, P_CENTER };

// The words of the world (the colours' RGB values and the slot positions are synth.c's).
static const char *const SHAPE[NSHAPE] = {"circle", "square", "triangle"};
static const char *const SHAPES[NSHAPE] = {"circles", "squares", "triangles"};
static const char *const COLOR[NCOLOR] = {"red", "green", "blue", "yellow", "purple", "orange"};
static const char *const SIZE[NSIZE] = {"small", "large"};
static const char *const POS[NPOS] = {"left", "right", "top", "bottom", "center"};
static const char *const POS_PHRASE[NPOS] = {"on the left", "on the right", "at the top",
                                             "at the bottom", "in the center"};
static const char *const BG[NBG] = {"white", "gray", "black"};
static const char *const NUM[9] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight"};

typedef struct {
    int shape, color, size, pos;
    double cx, cy, r;
    double box[4]; // pixels x, y, w, h (clipped to the image)
} Obj;

typedef struct {
    int bg, n;
    Obj o[MAXOBJ];
} Scene;

// ---- sentences (synth_text.c)
typedef struct {
    char s[512];
    size_t n;
} Str;

static inline void sb_reset(Str *b) {
    b->n = 0;
    b->s[0] = 0;
}

enum { ART_NONE = 0, ART_A, ART_THE };

// "[a|an|the] [size] [colour] shape [position]" of o, appended to b.
void synth_phrase(Str *b, const Obj *o, int with_size, int with_color, int with_pos, int art);
// k distinct captions (best effort: 20 tries each) with kinds weighted towards partial ones.
int synth_captions(Str *out, int k, Rng *r, const Scene *sc, int S);
// k distinct captions that name only objects of `part` (a Scene holding some of an image's objects,
// same background and places): the kinds that stay true of the whole image when they name a subset
// of its objects (one object, two objects, a list of objects, a relation), never counts or
// inventories; with_background 0: no list either (the one kind of these that may name the
// background). The focal-bias probe's captions (SynthOptions.focal_probe).
int synth_captions_about(Str *out, int k, Rng *r, const Scene *part, int S, int with_background);

// VQA: up to 3 questions of distinct types that apply to the scene. Returns the count.
typedef struct {
    Str q;
    char a[16];
} QA;
int synth_vqa_questions(QA *out, Rng *r, const Scene *sc);

// SNLI-VE-like statements: label 0 entailment, 1 neutral, 2 contradiction.
static const char *const VE_LABEL[3] = {"entailment", "neutral", "contradiction"};
void synth_ve_statement(Str *b, Rng *r, const Scene *sc, int label, int S);
// NLVR2-like statement about a pair (a = left image, b = right image); returns its truth.
int synth_nlvr_statement(Str *s, Rng *r, const Scene *a, const Scene *b);
// RefCOCO+-style expression (appearance only, no location words) that picks out o; 0 if none.
int synth_refexp(Str *s, Rng *r, const Scene *sc, const Obj *o);

#endif
