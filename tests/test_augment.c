// test_augment.c: the RNG (src/engine/rng.c) and the image transforms (src/data/augment.c).
//
// - RNG: reproducible, streams independent, randint uniform and in range, shuffle a permutation,
//   uniform in [0,1), normal with mean 0 / variance 1.
// - Training transform: same seed => same tensor and box (per-thread and explicit workspaces
//   alike); different seeds differ; values within the normalised range of [0,1] pixels.
// - Box: with the crop fixed to the whole image (scale 1, ratio 1) a flip maps x -> 1 - x - w and
//   the pixels are mirrored; crops clip the box, a box outside the crop becomes NaN.
// - torchvision's RandomResizedCrop parameters, including the centre-crop fallback.
// - RandAugment geometry (translate, rotate) against hand-derived pixel maps, and the box moving
//   with it; autocontrast/equalize spread the histogram.
// - Eval transform = bicubic resize + normalisation.
#define _POSIX_C_SOURCE 200809L // clock_gettime
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/augment.h"
#include "data/image.h"
#include "engine/common.h"
#include "engine/rng.h"

#include "check.h"

static int near(double a, double b, double tol) { return fabs(a - b) <= tol; }

// A picture with structure everywhere (so crops and flips are visible).
static void make_image(Image *im, int h, int w) {
    image_alloc(im, h, w, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(255 * x / (w - 1));
            p[1] = (uint8_t)(255 * y / (h - 1));
            p[2] = (uint8_t)(((x / 8 + y / 8) % 2) ? 200 : 30);
        }
}

static void opts_none(AugmentOptions *o) {
    augment_defaults(o);
    o->scale_min = o->scale_max = 1.0f;
    o->ratio_min = o->ratio_max = 1.0f;
    o->randaug = o->color_jitter = o->grayscale = o->blur = 0;
}

// ------------------------------------------------------------------------------------------

static void test_rng(void) {
    Rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= rng_u64(&a) == rng_u64(&b);
    CHECKF(same, "same seed, same sequence");
    rng_seed(&b, 43);
    CHECKF(rng_u64(&a) != rng_u64(&b), "different seeds differ");

    Rng s1, s2, s3;
    rng_seed_stream(&s1, 7, 0, 1);
    rng_seed_stream(&s2, 7, 1, 0);
    rng_seed_stream(&s3, 7, 0, 1);
    uint64_t v1 = rng_u64(&s1), v2 = rng_u64(&s2), v3 = rng_u64(&s3);
    CHECKF(v1 == v3 && v1 != v2, "streams: (seed, epoch, index) reproducible and distinct");

    int counts[6] = {0};
    int inrange = 1;
    for (int i = 0; i < 60000; i++) {
        int64_t k = rng_randint(&a, 6);
        if (k < 0 || k >= 6) inrange = 0;
        else counts[k]++;
    }
    CHECKF(inrange, "randint in range");
    for (int k = 0; k < 6; k++) CHECKF(abs(counts[k] - 10000) < 500, "randint bucket %d: %d", k, counts[k]);
    CHECKF(rng_randint(&a, 1) == 0 && rng_randint(&a, 0) == 0, "randint(1) = randint(0) = 0");

    double sum = 0, sq = 0, umin = 1, umax = 0;
    for (int i = 0; i < 200000; i++) {
        double u = rng_uniform(&a);
        umin = MIN(umin, u);
        umax = MAX(umax, u);
        double z = rng_normal(&a);
        sum += z;
        sq += z * z;
    }
    CHECKF(umin >= 0 && umax < 1 && umin < 1e-4 && umax > 1 - 1e-4, "uniform in [0,1)");
    double mean = sum / 200000, var = sq / 200000 - mean * mean;
    CHECKF(fabs(mean) < 0.01 && fabs(var - 1) < 0.02, "normal mean %.4f var %.4f", mean, var);
    float f = 0;
    for (int i = 0; i < 1000; i++) {
        f = rng_uniform_f(&a);
        if (f < 0 || f >= 1) break;
    }
    CHECKF(f >= 0 && f < 1, "uniform_f in [0,1)");

    int32_t perm[100];
    rng_permutation_i32(&a, perm, 100);
    int seen[100] = {0}, ok = 1, moved = 0;
    for (int i = 0; i < 100; i++) {
        if (perm[i] < 0 || perm[i] >= 100 || seen[perm[i]]++) ok = 0;
        moved += perm[i] != i;
    }
    CHECKF(ok && moved > 80, "permutation is a shuffled permutation (moved %d)", moved);
    // Fisher-Yates is uniform: position of element 0 over many shuffles of 4.
    int pos0[4] = {0};
    for (int t = 0; t < 40000; t++) {
        int32_t q[4] = {0, 1, 2, 3};
        rng_shuffle_i32(&a, q, 4);
        for (int i = 0; i < 4; i++)
            if (q[i] == 0) pos0[i]++;
    }
    for (int i = 0; i < 4; i++) CHECKF(abs(pos0[i] - 10000) < 400, "shuffle position %d: %d", i, pos0[i]);
    int b1 = 0;
    for (int i = 0; i < 10000; i++) b1 += rng_bernoulli(&a, 0.2);
    CHECKF(abs(b1 - 2000) < 150, "bernoulli(0.2): %d / 10000", b1);
}

static void test_defaults(void) {
    AugmentOptions o;
    augment_defaults(&o);
    CHECKF(o.random_crop && near(o.scale_min, 0.2, 1e-7) && near(o.scale_max, 1, 0) &&
              near(o.ratio_min, 0.75, 1e-7) && near(o.ratio_max, 4.0 / 3, 1e-6),
           "crop defaults");
    CHECKF(o.hflip && near(o.hflip_p, 0.5, 0), "flip defaults");
    CHECKF(o.randaug && o.randaug_n == 2 && o.randaug_m == 7 && near(o.randaug_p, 0.5, 0), "randaug defaults");
    CHECKF(o.color_jitter && near(o.jitter_p, 0.8, 1e-7) && near(o.brightness, 0.4, 1e-7) &&
              near(o.contrast, 0.4, 1e-7) && near(o.saturation, 0.4, 1e-7) && near(o.hue, 0.1, 1e-7),
           "jitter defaults");
    CHECKF(o.grayscale && near(o.grayscale_p, 0.2, 1e-7), "grayscale defaults");
    CHECKF(o.blur && near(o.blur_p, 0.5, 0) && near(o.blur_sigma_min, 0.1, 1e-7) &&
              near(o.blur_sigma_max, 2.0, 0),
           "blur defaults");
    augment_albef(&o);
    CHECKF(o.randaug && !o.color_jitter && !o.grayscale && !o.blur, "ALBEF preset");
}

static void test_crop_params(void) {
    AugmentOptions o;
    augment_defaults(&o);
    Rng r;
    rng_seed(&r, 3);
    int inside = 1, shape_ok = 1, fallback = 0;
    for (int t = 0; t < 2000; t++) {
        int i, j, h, w;
        augment_crop_params(300, 400, &o, &r, &i, &j, &h, &w);
        if (i < 0 || j < 0 || h < 1 || w < 1 || i + h > 300 || j + w > 400) inside = 0;
        double frac = (double)h * w / (300.0 * 400.0), ratio = (double)w / h;
        if (frac < 0.19 || frac > 1.01 || ratio < 0.74 || ratio > 1.35) shape_ok = 0;
        if (h == 300 && w == 300) fallback++;
    }
    CHECKF(inside, "crops inside the image");
    CHECKF(shape_ok, "crop area fraction in [0.2,1] and ratio in [3/4,4/3]");
    // torchvision's fallback: no try fits (scale 1, ratio 1 on a 100x60 image) -> centre crop
    // with the ratio clamped: 60x60 at column 20.
    AugmentOptions f = o;
    f.scale_min = f.scale_max = 1.0f;
    f.ratio_min = f.ratio_max = 1.0f;
    int i, j, h, w;
    augment_crop_params(60, 100, &f, &r, &i, &j, &h, &w);
    CHECKF(i == 0 && j == 20 && h == 60 && w == 60, "fallback centre crop: %d %d %d %d", i, j, h, w);
    // Square image, scale 1, ratio 1: the whole image (the first try fits).
    augment_crop_params(64, 64, &f, &r, &i, &j, &h, &w);
    CHECKF(i == 0 && j == 0 && h == 64 && w == 64, "full crop: %d %d %d %d", i, j, h, w);
    // Fallback with a tall image and the default ratio range: w = W, h = round(W / (3/4)).
    f.ratio_min = 0.75f;
    f.ratio_max = 4.0f / 3.0f;
    f.scale_min = f.scale_max = 1.0f;
    augment_crop_params(500, 100, &f, &r, &i, &j, &h, &w);
    CHECKF(w == 100 && h == 133 && i == (500 - 133) / 2 && j == 0, "tall fallback: %d %d %d %d", i, j, h, w);
}

static void test_box_crop(void) {
    float in[4] = {0.25f, 0.5f, 0.25f, 0.25f}, out[4];
    // 200x100 image, box in pixels: x 50..100, y 50..75.
    augment_box_crop(in, 200, 100, 0, 0, 200, 100, out);
    CHECKF(near(out[0], 0.25, 1e-6) && near(out[1], 0.5, 1e-6) && near(out[2], 0.25, 1e-6) &&
              near(out[3], 0.25, 1e-6),
           "full crop keeps the box");
    augment_box_crop(in, 200, 100, 40, 40, 100, 50, out); // crop x 40..140, y 40..90
    CHECKF(near(out[0], 0.10, 1e-6) && near(out[1], 0.20, 1e-6) && near(out[2], 0.50, 1e-6) &&
              near(out[3], 0.50, 1e-6),
           "inner crop rescales: %g %g %g %g", out[0], out[1], out[2], out[3]);
    augment_box_crop(in, 200, 100, 80, 60, 100, 40, out); // crop x 80..180, y 60..100: clipped
    CHECKF(near(out[0], 0.0, 1e-6) && near(out[1], 0.0, 1e-6) && near(out[2], 0.20, 1e-6) &&
              near(out[3], 15.0 / 40, 1e-6),
           "box clipped to the crop: %g %g %g %g", out[0], out[1], out[2], out[3]);
    augment_box_crop(in, 200, 100, 120, 0, 80, 100, out); // crop x 120..200: disjoint
    CHECKF(isnan(out[0]) && isnan(out[3]), "box outside the crop -> NaN");
    float none[4] = {NAN, NAN, NAN, NAN};
    augment_box_crop(none, 200, 100, 0, 0, 200, 100, out);
    CHECKF(isnan(out[0]), "NaN box stays NaN");
}

static void test_determinism_and_range(void) {
    Image im;
    make_image(&im, 90, 120);
    AugmentOptions o;
    augment_defaults(&o);
    const int S = 64;
    float *a = mallocCheck(sizeof(float) * 3 * S * S), *b = mallocCheck(sizeof(float) * 3 * S * S);
    float box_in[4] = {0.3f, 0.3f, 0.3f, 0.3f}, ba[4], bb[4];
    AugmentWork ws;
    augment_work_init(&ws);
    int all_same = 1, differ = 0, in_range = 1;
    float lo[3], hi[3];
    for (int c = 0; c < 3; c++) lo[c] = (0 - AUG_MEAN[c]) / AUG_STD[c], hi[c] = (1 - AUG_MEAN[c]) / AUG_STD[c];
    for (uint64_t idx = 0; idx < 40; idx++) {
        Rng r1, r2;
        rng_seed_stream(&r1, 1234, 2, idx);
        rng_seed_stream(&r2, 1234, 2, idx);
        augment_train(&im, box_in, S, &o, &r1, a, ba);         // per-thread workspace
        augment_train_ws(&im, box_in, S, &o, &r2, &ws, b, bb); // explicit workspace
        int same = !memcmp(a, b, sizeof(float) * 3 * S * S) &&
                   (isnan(ba[0]) ? isnan(bb[0]) : !memcmp(ba, bb, sizeof(ba)));
        all_same &= same;
        Rng r3;
        rng_seed_stream(&r3, 1234, 3, idx); // another epoch
        augment_train_ws(&im, box_in, S, &o, &r3, &ws, b, bb);
        differ += memcmp(a, b, sizeof(float) * 3 * S * S) != 0;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < S * S; p++) {
                float v = a[c * S * S + p];
                if (!(v >= lo[c] - 1e-5f && v <= hi[c] + 1e-5f)) in_range = 0;
            }
        if (!isnan(ba[0]))
            in_range &= ba[0] >= 0 && ba[1] >= 0 && ba[2] > 0 && ba[3] > 0 &&
                        ba[0] + ba[2] <= 1.0001f && ba[1] + ba[3] <= 1.0001f;
    }
    CHECKF(all_same, "same (seed, epoch, index) -> identical tensor and box");
    CHECKF(differ >= 39, "different epochs -> different tensors (%d of 40)", differ);
    CHECKF(in_range, "values within the normalised [0,1] range, boxes inside the image");
    augment_work_free(&ws);
    augment_thread_release();
    free(a);
    free(b);
    image_free(&im);
}

static void test_flip_box(void) {
    const int S = 64;
    Image im;
    make_image(&im, S, S);
    AugmentOptions o;
    opts_none(&o);
    AugmentWork ws;
    augment_work_init(&ws);
    float box[4] = {0.1f, 0.2f, 0.3f, 0.4f}, out[4];
    Rng r;
    rng_seed(&r, 9);
    o.hflip_p = 1.0f;
    augment_train_ws(&im, box, S, &o, &r, &ws, NULL, out);
    CHECKF(near(out[0], 0.6, 1e-6) && near(out[1], 0.2, 1e-6) && near(out[2], 0.3, 1e-6) &&
              near(out[3], 0.4, 1e-6),
           "flip maps x -> 1-x-w: %g %g %g %g", out[0], out[1], out[2], out[3]);
    int mirrored = 1;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            mirrored &= !memcmp(ws.img + ((size_t)y * S + x) * 3, im.px + ((size_t)y * S + S - 1 - x) * 3, 3);
    CHECKF(mirrored, "flipped pixels are mirrored");
    o.hflip_p = 0.0f;
    augment_train_ws(&im, box, S, &o, &r, &ws, NULL, out);
    CHECKF(!memcmp(out, box, sizeof(box)) && !memcmp(ws.img, im.px, (size_t)S * S * 3),
           "no flip, full crop, same size: identity");
    // Flip probability 0.5 over many samples, seen through the box.
    o.hflip_p = 0.5f;
    int flips = 0;
    for (int t = 0; t < 2000; t++) {
        augment_train_ws(&im, box, S, &o, &r, &ws, NULL, out);
        flips += near(out[0], 0.6, 1e-6);
    }
    CHECKF(abs(flips - 1000) < 100, "flip rate %d / 2000", flips);
    // Crop that excludes the box -> NaN (RandomResizedCrop at small scales, many samples).
    AugmentOptions d;
    augment_defaults(&d);
    d.scale_min = d.scale_max = 0.2f;
    float corner[4] = {0.0f, 0.0f, 0.1f, 0.1f};
    int nan_seen = 0, valid_seen = 0;
    for (int t = 0; t < 200; t++) {
        augment_train_ws(&im, corner, S, &d, &r, &ws, NULL, out);
        if (isnan(out[0])) nan_seen++;
        else valid_seen++;
    }
    CHECKF(nan_seen > 0 && valid_seen > 0, "small crops sometimes lose a corner box (%d NaN, %d kept)",
           nan_seen, valid_seen);
    augment_work_free(&ws);
    image_free(&im);
}

static void test_randaug_ops(void) {
    const int S = 64;
    Image im;
    make_image(&im, S, S);
    uint8_t *dst = mallocCheck((size_t)S * S * 3);
    double fwd[6];
    // TranslateX by +7 pixels: dst(x) = src(x + 7), the right 7 columns grey.
    augment_randaug_op(RA_TRANSLATEX, 7.0, im.px, dst, S, S, fwd);
    int ok = 1;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t want = x + 7 < S ? im.px[((size_t)y * S + x + 7) * 3 + c] : 128;
                ok &= dst[((size_t)y * S + x) * 3 + c] == want;
            }
    CHECKF(ok, "translateX +7 shifts content left by 7 px, grey fill");
    float box[4] = {0.5f, 0.25f, 0.25f, 0.25f};
    augment_box_affine(box, fwd, S);
    CHECKF(near(box[0], 0.5 - 7.0 / S, 1e-6) && near(box[1], 0.25, 1e-6) && near(box[2], 0.25, 1e-6),
           "box follows translateX: %g %g %g %g", box[0], box[1], box[2], box[3]);
    float edge[4] = {0.0f, 0.0f, 0.05f, 0.5f};
    augment_box_affine(edge, fwd, S);
    CHECKF(isnan(edge[0]), "box translated out of the image -> NaN");

    // TranslateY by -7: dst(y) = src(y - 7).
    augment_randaug_op(RA_TRANSLATEY, -7.0, im.px, dst, S, S, NULL);
    ok = 1;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            uint8_t want = y >= 7 ? im.px[((size_t)(y - 7) * S + x) * 3] : 128;
            ok &= dst[((size_t)y * S + x) * 3] == want;
        }
    CHECKF(ok, "translateY -7 shifts content down");

    // Rotate +90 about (w/2, h/2) (cv2: counter-clockwise): dst(y, x) = src(x, S - y).
    augment_randaug_op(RA_ROTATE, 90.0, im.px, dst, S, S, fwd);
    ok = 1;
    for (int y = 1; y < S; y++)
        for (int x = 0; x < S; x++)
            ok &= !memcmp(dst + ((size_t)y * S + x) * 3, im.px + ((size_t)x * S + (S - y)) * 3, 3);
    CHECKF(ok, "rotate +90 is counter-clockwise about (w/2, h/2)");
    // A box on the right moves to the top.
    float right[4] = {0.75f, 0.4375f, 0.25f, 0.125f};
    augment_box_affine(right, fwd, S);
    CHECKF(right[1] < 0.3f && right[0] > 0.3f && right[0] + right[2] < 0.7f,
           "box on the right rotates to the top: %g %g %g %g", right[0], right[1], right[2], right[3]);

    // Shear keeps row 0 (y = 0 maps to itself) and shifts lower rows.
    augment_randaug_op(RA_SHEARX, 0.21, im.px, dst, S, S, NULL);
    CHECKF(!memcmp(dst, im.px, (size_t)S * 3), "shearX keeps row 0");

    // Identity, brightness (factor 1.36: v -> min(255, trunc(v * 1.36))).
    augment_randaug_op(RA_IDENTITY, 0, im.px, dst, S, S, NULL);
    CHECKF(!memcmp(dst, im.px, (size_t)S * S * 3), "identity");
    augment_randaug_op(RA_BRIGHTNESS, 1.36, im.px, dst, S, S, NULL);
    ok = 1;
    for (int i = 0; i < S * S * 3; i++) ok &= dst[i] == (uint8_t)MIN(255.0f, (float)im.px[i] * 1.36f);
    CHECKF(ok, "brightness 1.36");
    // Sharpness leaves a flat image and the border alone.
    augment_randaug_op(RA_SHARPNESS, 1.36, im.px, dst, S, S, NULL);
    CHECKF(!memcmp(dst, im.px, (size_t)S * 3), "sharpness keeps the border row");

    // Autocontrast / equalize on a low-contrast image stretch it to the full range.
    // (Equalize, as PIL's, leaves images with fewer than ~255 pixels per channel alone.)
    Image low;
    image_alloc(&low, 64, 64, 3);
    for (int i = 0; i < 64 * 64 * 3; i++) low.px[i] = (uint8_t)(100 + (i * 13) % 41);
    uint8_t *d2 = mallocCheck(64 * 64 * 3);
    for (int op = RA_AUTOCONTRAST; op <= RA_EQUALIZE; op++) {
        augment_randaug_op(op, 0, low.px, d2, 64, 64, NULL);
        int mn = 255, mx = 0;
        for (int i = 0; i < 64 * 64 * 3; i += 3) mn = MIN(mn, d2[i]), mx = MAX(mx, d2[i]);
        CHECKF(mn <= 5 && mx >= 240, "%s stretches [100,140] to [%d,%d]",
               op == RA_AUTOCONTRAST ? "autocontrast" : "equalize", mn, mx);
    }
    free(d2);
    image_free(&low);
    free(dst);
    image_free(&im);
}

static void test_photometric_switches(void) {
    // Each photometric stage alone, forced on (p = 1): grayscale gives R = G = B; blur and jitter
    // change the image; with all off the result is the plain crop.
    const int S = 48;
    Image im;
    make_image(&im, S, S);
    AugmentWork ws;
    augment_work_init(&ws);
    AugmentOptions o;
    Rng r;
    rng_seed(&r, 11);
    opts_none(&o);
    o.hflip = 0;
    o.grayscale = 1;
    o.grayscale_p = 1.0f;
    augment_train_ws(&im, NULL, S, &o, &r, &ws, NULL, NULL);
    int gray = 1;
    for (int p = 0; p < S * S; p++) gray &= ws.img[3 * p] == ws.img[3 * p + 1] && ws.img[3 * p] == ws.img[3 * p + 2];
    CHECKF(gray, "grayscale p=1 -> R=G=B");
    opts_none(&o);
    o.hflip = 0;
    o.blur = 1;
    o.blur_p = 1.0f;
    augment_train_ws(&im, NULL, S, &o, &r, &ws, NULL, NULL);
    CHECKF(memcmp(ws.img, im.px, (size_t)S * S * 3) != 0, "blur p=1 changes the image");
    // Blur preserves a constant image exactly.
    Image flat;
    image_alloc(&flat, S, S, 3);
    memset(flat.px, 90, (size_t)S * S * 3);
    augment_train_ws(&flat, NULL, S, &o, &r, &ws, NULL, NULL);
    int same = 1;
    for (int i = 0; i < S * S * 3; i++) same &= ws.img[i] == 90;
    CHECKF(same, "blur keeps a flat image flat");
    opts_none(&o);
    o.hflip = 0;
    o.color_jitter = 1;
    o.jitter_p = 1.0f;
    augment_train_ws(&im, NULL, S, &o, &r, &ws, NULL, NULL);
    CHECKF(memcmp(ws.img, im.px, (size_t)S * S * 3) != 0, "jitter p=1 changes the image");
    opts_none(&o);
    o.hflip = 0;
    o.random_crop = 0;
    augment_train_ws(&im, NULL, S, &o, &r, &ws, NULL, NULL);
    CHECKF(!memcmp(ws.img, im.px, (size_t)S * S * 3), "everything off: identity");
    image_free(&flat);
    augment_work_free(&ws);
    image_free(&im);
}

static void test_eval(void) {
    Image im;
    make_image(&im, 70, 110);
    const int S = 32;
    float *out = mallocCheck(sizeof(float) * 3 * S * S);
    augment_eval(&im, S, out);
    Image ref = {.h = S, .w = S};
    image_resize_bicubic(&im, &ref);
    int ok = 1;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < S * S; p++) {
            float want = ((float)ref.px[3 * p + c] / 255.0f - AUG_MEAN[c]) / AUG_STD[c];
            ok &= fabsf(out[c * S * S + p] - want) < 1e-6f;
        }
    CHECKF(ok, "eval = bicubic resize to SxS + CLIP normalisation (CHW)");
    // Normalisation constants.
    CHECKF(near(AUG_MEAN[0], 0.48145466, 1e-7) && near(AUG_STD[2], 0.27577711, 1e-7), "CLIP constants");
    image_free(&ref);
    free(out);
    image_free(&im);
    augment_thread_release();
}

static void bench(void) {
    // Not an assertion: the per-sample cost of the full default pipeline at 256 from a 384x512
    // JPEG-sized image, for the loader's thread budget.
    Image im;
    make_image(&im, 384, 512);
    AugmentOptions o;
    augment_defaults(&o);
    float *out = mallocCheck(sizeof(float) * 3 * 256 * 256);
    float box[4] = {0.2f, 0.2f, 0.5f, 0.5f}, bo[4];
    const int n = 50;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        Rng r;
        rng_seed_stream(&r, 1, 0, (uint64_t)i);
        augment_train(&im, box, 256, &o, &r, out, bo);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) / n;
    printf("augment_train 384x512 -> 256: %.2f ms/sample (one thread)\n", ms);
    free(out);
    image_free(&im);
    augment_thread_release();
}

int main(void) {
    test_rng();
    test_defaults();
    test_crop_params();
    test_box_crop();
    test_determinism_and_range();
    test_flip_box();
    test_randaug_ops();
    test_photometric_switches();
    test_eval();
    bench();
    printf("test_augment: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
