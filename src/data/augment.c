// augment.c: the training and evaluation image transforms; see augment.h for the pipeline and
// the sources of its parameters. All stages work on 8-bit HWC buffers (as the PIL/numpy
// pipelines they reproduce do, rounding between stages) held in a reusable workspace; the last
// stage writes the normalised float CHW tensor.
#include "data/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

const float AUG_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float AUG_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static const uint8_t FILL = 128; // ALBEF's replace_value for the geometric ops

void augment_defaults(AugmentOptions *o) {
    memset(o, 0, sizeof(*o));
    o->random_crop = 1;
    o->scale_min = 0.2f;
    o->scale_max = 1.0f;
    o->ratio_min = 3.0f / 4.0f;
    o->ratio_max = 4.0f / 3.0f;
    o->hflip = 1;
    o->hflip_p = 0.5f;
    o->randaug = 1;
    o->randaug_n = 2;
    o->randaug_m = 7;
    o->randaug_p = 0.5f;
    o->color_jitter = 1;
    o->jitter_p = 0.8f;
    o->brightness = 0.4f;
    o->contrast = 0.4f;
    o->saturation = 0.4f;
    o->hue = 0.1f;
    o->grayscale = 1;
    o->grayscale_p = 0.2f;
    o->blur = 1;
    o->blur_p = 0.5f;
    o->blur_sigma_min = 0.1f;
    o->blur_sigma_max = 2.0f;
    o->box_follow_randaug = 1;
}

void augment_albef(AugmentOptions *o) {
    augment_defaults(o);
    o->color_jitter = 0;
    o->grayscale = 0;
    o->blur = 0;
}

void augment_work_init(AugmentWork *w) { memset(w, 0, sizeof(*w)); }

void augment_work_free(AugmentWork *w) {
    if (!w) return;
    resample_buf_free(&w->rs);
    free(w->a);
    free(w->b);
    free(w->f);
    memset(w, 0, sizeof(*w));
}

static void work_reserve(AugmentWork *w, int size) {
    size_t n = (size_t)size * size * 3;
    if (n > w->cap_ab) {
        free(w->a);
        free(w->b);
        free(w->f);
        w->a = mallocCheck(n);
        w->b = mallocCheck(n);
        w->f = mallocCheck((n + 3 * ((size_t)size + 64)) * sizeof(float)); // blur: image + one row
        w->cap_ab = n;
        w->cap_f = n + 3 * ((size_t)size + 64);
    }
    w->size = size;
}

static _Thread_local AugmentWork *tls_work;

static AugmentWork *thread_work(void) {
    if (!tls_work) {
        tls_work = callocCheck(1, sizeof(AugmentWork));
    }
    return tls_work;
}

void augment_thread_release(void) {
    if (tls_work) {
        augment_work_free(tls_work);
        free(tls_work);
        tls_work = NULL;
    }
}

// ------------------------------------------------------------------------------------------
// Crop and box

void augment_crop_params(int H, int W, const AugmentOptions *o, Rng *rng, int *pi, int *pj,
                         int *ph, int *pw) {
    double area = (double)H * W;
    double lr0 = log(o->ratio_min), lr1 = log(o->ratio_max);
    for (int t = 0; t < 10; t++) {
        double target = area * rng_range(rng, o->scale_min, o->scale_max);
        double ar = exp(rng_range(rng, lr0, lr1));
        // Python's round(): half to even, which rint() does in the default rounding mode.
        int w = (int)rint(sqrt(target * ar));
        int h = (int)rint(sqrt(target / ar));
        if (0 < w && w <= W && 0 < h && h <= H) {
            *pi = (int)rng_randint(rng, H - h + 1);
            *pj = (int)rng_randint(rng, W - w + 1);
            *ph = h;
            *pw = w;
            return;
        }
    }
    // Fallback: central crop with the ratio clamped to the allowed range.
    double in_ratio = (double)W / H;
    int w, h;
    if (in_ratio < o->ratio_min) {
        w = W;
        h = (int)rint(w / (double)o->ratio_min);
    } else if (in_ratio > o->ratio_max) {
        h = H;
        w = (int)rint(h * (double)o->ratio_max);
    } else {
        w = W;
        h = H;
    }
    if (h > H) h = H;
    if (w > W) w = W;
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    *pi = (H - h) / 2;
    *pj = (W - w) / 2;
    *ph = h;
    *pw = w;
}

static int box_valid(const float b[4]) {
    return b && !isnan(b[0]) && !isnan(b[1]) && !isnan(b[2]) && !isnan(b[3]);
}

static void box_nan(float b[4]) { b[0] = b[1] = b[2] = b[3] = NAN; }

void augment_box_crop(const float in[4], int W, int H, int j, int i, int cw, int ch,
                      float out[4]) {
    if (!box_valid(in)) {
        box_nan(out);
        return;
    }
    double x0 = (double)in[0] * W, y0 = (double)in[1] * H;
    double x1 = x0 + (double)in[2] * W, y1 = y0 + (double)in[3] * H;
    double nx0 = MAX(x0, (double)j), nx1 = MIN(x1, (double)(j + cw));
    double ny0 = MAX(y0, (double)i), ny1 = MIN(y1, (double)(i + ch));
    if (nx1 <= nx0 || ny1 <= ny0) {
        box_nan(out);
        return;
    }
    out[0] = (float)((nx0 - j) / cw);
    out[1] = (float)((ny0 - i) / ch);
    out[2] = (float)((nx1 - nx0) / cw);
    out[3] = (float)((ny1 - ny0) / ch);
}

// Box (normalised, in an S x S image) through a forward pixel map in cv2's convention (pixel
// centres at integer coordinates): bounding box of the mapped corners, clipped to the image.
void augment_box_affine(float b[4], const double m[6], int S) {
    if (!box_valid(b)) return;
    double ex[2] = {(double)b[0] * S, ((double)b[0] + b[2]) * S};
    double ey[2] = {(double)b[1] * S, ((double)b[1] + b[3]) * S};
    double lo_x = INFINITY, hi_x = -INFINITY, lo_y = INFINITY, hi_y = -INFINITY;
    for (int a = 0; a < 2; a++) {
        for (int c = 0; c < 2; c++) {
            double x = ex[a] - 0.5, y = ey[c] - 0.5; // edge -> centre coordinates
            double X = m[0] * x + m[1] * y + m[2] + 0.5;
            double Y = m[3] * x + m[4] * y + m[5] + 0.5;
            lo_x = MIN(lo_x, X);
            hi_x = MAX(hi_x, X);
            lo_y = MIN(lo_y, Y);
            hi_y = MAX(hi_y, Y);
        }
    }
    lo_x = MAX(lo_x, 0.0);
    lo_y = MAX(lo_y, 0.0);
    hi_x = MIN(hi_x, (double)S);
    hi_y = MIN(hi_y, (double)S);
    if (hi_x <= lo_x || hi_y <= lo_y) {
        box_nan(b);
        return;
    }
    b[0] = (float)(lo_x / S);
    b[1] = (float)(lo_y / S);
    b[2] = (float)((hi_x - lo_x) / S);
    b[3] = (float)((hi_y - lo_y) / S);
}

// ------------------------------------------------------------------------------------------
// RandAugment ops (ALBEF's numpy/cv2 versions)

static void apply_lut3(const uint8_t *src, uint8_t *dst, size_t npx, uint8_t lut[3][256]) {
    for (size_t p = 0; p < npx; p++) {
        dst[3 * p + 0] = lut[0][src[3 * p + 0]];
        dst[3 * p + 1] = lut[1][src[3 * p + 1]];
        dst[3 * p + 2] = lut[2][src[3 * p + 2]];
    }
}

static void histograms(const uint8_t *src, size_t npx, uint32_t hist[3][256]) {
    memset(hist, 0, sizeof(uint32_t) * 3 * 256);
    for (size_t p = 0; p < npx; p++) {
        hist[0][src[3 * p + 0]]++;
        hist[1][src[3 * p + 1]]++;
        hist[2][src[3 * p + 2]]++;
    }
}

static void op_autocontrast(const uint8_t *src, uint8_t *dst, size_t npx) {
    uint32_t hist[3][256];
    uint8_t lut[3][256];
    histograms(src, npx, hist);
    for (int c = 0; c < 3; c++) {
        int lo = 0, hi = 255;
        while (lo < 255 && !hist[c][lo]) lo++;
        while (hi > 0 && !hist[c][hi]) hi--;
        if (hi <= lo) {
            for (int i = 0; i < 256; i++) lut[c][i] = (uint8_t)i;
            continue;
        }
        double scale = 255.0 / (hi - lo), offset = -lo * scale;
        for (int i = 0; i < 256; i++) {
            double v = i * scale + offset;
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            lut[c][i] = (uint8_t)v;
        }
    }
    apply_lut3(src, dst, npx, lut);
}

// PIL.ImageOps.equalize, as ALBEF's equalize_func reproduces it.
static void op_equalize(const uint8_t *src, uint8_t *dst, size_t npx) {
    uint32_t hist[3][256];
    uint8_t lut[3][256];
    histograms(src, npx, hist);
    for (int c = 0; c < 3; c++) {
        int last = 255;
        while (last > 0 && !hist[c][last]) last--;
        uint64_t total = 0; // all non-zero bins but the last one
        for (int i = 0; i < last; i++) total += hist[c][i];
        uint64_t step = total / 255;
        if (step == 0) {
            for (int i = 0; i < 256; i++) lut[c][i] = (uint8_t)i;
            continue;
        }
        uint64_t acc = step / 2;
        for (int i = 0; i < 256; i++) {
            uint64_t v = acc / step;
            lut[c][i] = (uint8_t)(v > 255 ? 255 : v);
            acc += hist[c][i];
        }
    }
    apply_lut3(src, dst, npx, lut);
}

static void op_brightness(const uint8_t *src, uint8_t *dst, size_t npx, float factor) {
    uint8_t lut[3][256];
    for (int i = 0; i < 256; i++) {
        float v = (float)i * factor;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        lut[0][i] = lut[1][i] = lut[2][i] = (uint8_t)v;
    }
    apply_lut3(src, dst, npx, lut);
}

static inline int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

// Blend towards a 3x3 smoothing ([1 1 1; 1 5 1; 1 1 1] / 13), border pixels unchanged (ALBEF;
// with factor 0 the border takes cv2.filter2D's reflect-101 smoothing too).
static inline uint8_t sharp_px(int s13, int v, float factor) {
    float deg = rintf((float)s13 / 13.0f);
    float o = deg + factor * ((float)v - deg);
    o = o < 0 ? 0 : o > 255 ? 255 : o;
    return (uint8_t)o;
}

static void op_sharpness(const uint8_t *src, uint8_t *dst, int h, int w, float factor) {
    const size_t stride = (size_t)w * 3;
    memcpy(dst, src, (size_t)h * stride);
    for (int y = 1; y < h - 1; y++) {
        const uint8_t *a = src + (size_t)(y - 1) * stride, *b = a + stride, *c = b + stride;
        uint8_t *o = dst + (size_t)y * stride;
        for (size_t i = 3; i + 3 < stride; i++) {
            int s = a[i - 3] + a[i] + a[i + 3] + b[i - 3] + 5 * b[i] + b[i + 3] + c[i - 3] + c[i] + c[i + 3];
            o[i] = sharp_px(s, b[i], factor);
        }
    }
    if (factor != 0.0f) return;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            if (!(y == 0 || x == 0 || y == h - 1 || x == w - 1)) continue;
            for (int ch = 0; ch < 3; ch++) {
                size_t at = (size_t)y * stride + (size_t)x * 3 + ch;
                int s = 4 * src[at];
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                        s += src[(size_t)reflect101(y + dy, h) * stride +
                                 (size_t)reflect101(x + dx, w) * 3 + ch];
                dst[at] = sharp_px(s, src[at], factor);
            }
        }
    }
}

// dst(x, y) = src(inv(x, y)), bilinear at 1/32-pixel resolution with rounding (cv2.warpAffine's
// INTER_LINEAR fixed-point scheme), taps outside the image read the fill value.
static void warp_affine(const uint8_t *src, uint8_t *dst, int h, int w, const double inv[6]) {
    const size_t stride = (size_t)w * 3;
    for (int y = 0; y < h; y++) {
        uint8_t *o = dst + (size_t)y * stride;
        for (int x = 0; x < w; x++) {
            double sx = inv[0] * x + inv[1] * y + inv[2];
            double sy = inv[3] * x + inv[4] * y + inv[5];
            long X = lrint(sx * 32.0), Y = lrint(sy * 32.0);
            long x0 = X >> 5, y0 = Y >> 5; // arithmetic shift: floor for negatives
            int fx = (int)(X & 31), fy = (int)(Y & 31);
            int wts[4] = {(32 - fx) * (32 - fy), fx * (32 - fy), (32 - fx) * fy, fx * fy};
            long xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};
            int acc[3] = {512, 512, 512};
            for (int t = 0; t < 4; t++) {
                if (!wts[t]) continue;
                if (xs[t] < 0 || xs[t] >= w || ys[t] < 0 || ys[t] >= h) {
                    for (int c = 0; c < 3; c++) acc[c] += wts[t] * FILL;
                } else {
                    const uint8_t *p = src + (size_t)ys[t] * stride + (size_t)xs[t] * 3;
                    for (int c = 0; c < 3; c++) acc[c] += wts[t] * p[c];
                }
            }
            for (int c = 0; c < 3; c++) o[3 * x + c] = (uint8_t)(acc[c] >> 10);
        }
    }
}

// Invert a 2x3 affine map.
static void affine_invert(const double m[6], double inv[6]) {
    double det = m[0] * m[4] - m[1] * m[3];
    double a = m[4] / det, b = -m[1] / det, d = -m[3] / det, e = m[0] / det;
    inv[0] = a;
    inv[1] = b;
    inv[2] = -(a * m[2] + b * m[5]);
    inv[3] = d;
    inv[4] = e;
    inv[5] = -(d * m[2] + e * m[5]);
}

void augment_randaug_op(int op, double arg, const uint8_t *src, uint8_t *dst, int h, int w,
                        double fwd[6]) {
    const size_t npx = (size_t)h * w;
    double m[6] = {1, 0, 0, 0, 1, 0}; // forward map (src -> dst), cv2's M
    int geometric = 0;
    switch (op) {
    case RA_IDENTITY: memcpy(dst, src, npx * 3); break;
    case RA_AUTOCONTRAST: op_autocontrast(src, dst, npx); break;
    case RA_EQUALIZE: op_equalize(src, dst, npx); break;
    case RA_BRIGHTNESS: op_brightness(src, dst, npx, (float)arg); break;
    case RA_SHARPNESS: op_sharpness(src, dst, h, w, (float)arg); break;
    case RA_SHEARX: m[1] = arg; geometric = 1; break;
    case RA_SHEARY: m[3] = arg; geometric = 1; break;
    case RA_TRANSLATEX: m[2] = -arg; geometric = 1; break;
    case RA_TRANSLATEY: m[5] = -arg; geometric = 1; break;
    case RA_ROTATE: {
        // cv2.getRotationMatrix2D((w/2, h/2), degrees, 1): counter-clockwise on screen.
        double rad = arg * 3.14159265358979323846 / 180.0;
        double al = cos(rad), be = sin(rad), cx = w / 2.0, cy = h / 2.0;
        m[0] = al;
        m[1] = be;
        m[2] = (1 - al) * cx - be * cy;
        m[3] = -be;
        m[4] = al;
        m[5] = be * cx + (1 - al) * cy;
        geometric = 1;
        break;
    }
    default: die("unknown RandAugment op %d", op);
    }
    if (geometric) {
        double inv[6];
        affine_invert(m, inv);
        warp_affine(src, dst, h, w, inv);
    }
    if (fwd) memcpy(fwd, m, sizeof(m));
}

// ------------------------------------------------------------------------------------------
// Colour jitter, grayscale, blur (PIL semantics, as torchvision applies them to PIL images)

static inline uint8_t pil_L(const uint8_t *p) {
    return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

// PIL's ImagingBlend(degenerate, image, alpha) with a per-pixel or constant degenerate.
static inline uint8_t blend(int deg, int v, float alpha) {
    float t = (float)deg + alpha * (float)(v - deg);
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

static void jit_brightness(uint8_t *px, size_t npx, float f) {
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) lut[i] = blend(0, i, f);
    for (size_t p = 0; p < npx * 3; p++) px[p] = lut[px[p]];
}

static void jit_contrast(uint8_t *px, size_t npx, float f) {
    uint64_t sum = 0;
    for (size_t p = 0; p < npx; p++) sum += pil_L(px + 3 * p);
    int mean = (int)((double)sum / (double)npx + 0.5);
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) lut[i] = blend(mean, i, f);
    for (size_t p = 0; p < npx * 3; p++) px[p] = lut[px[p]];
}

static void jit_saturation(uint8_t *px, size_t npx, float f) {
    for (size_t p = 0; p < npx; p++) {
        uint8_t *q = px + 3 * p;
        int l = pil_L(q);
        q[0] = blend(l, q[0], f);
        q[1] = blend(l, q[1], f);
        q[2] = blend(l, q[2], f);
    }
}

static inline int clip8i(int v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

// torchvision adjust_hue on a PIL image: RGB -> PIL's 8-bit HSV, hue += uint8(f * 255) with
// wrap-around, back to RGB.
static void jit_hue(uint8_t *px, size_t npx, float f) {
    uint8_t shift = (uint8_t)((int)(f * 255.0f) & 255);
    // The float/double mix below is Pillow's (Convert.c rgb2hsv_row / hsv2rgb), kept so the 8-bit
    // results agree with it exactly; what depends on H or S alone is tabulated per call.
    int sector[256];
    float frac[256], fsat[256];
    for (int H = 0; H < 256; H++) {
        int i = (int)floor((float)H * 6.0 / 255.0);
        frac[H] = (float)((float)H * 6.0 / 255.0 - (float)i);
        sector[H] = i % 6;
        fsat[H] = (float)((float)H / 255.0);
    }
    for (size_t p = 0; p < npx; p++) {
        uint8_t *q = px + 3 * p;
        int r = q[0], g = q[1], b = q[2];
        int maxc = MAX(r, MAX(g, b)), minc = MIN(r, MIN(g, b));
        if (maxc == minc) continue; // s = 0: hue has no effect
        float cr = (float)(maxc - minc);
        float s = cr / (float)maxc;
        float hh;
        if (r == maxc) {
            hh = (float)(maxc - b) / cr - (float)(maxc - g) / cr;
        } else if (g == maxc) {
            hh = (float)(2.0 + (float)(maxc - r) / cr - (float)(maxc - b) / cr);
        } else {
            hh = (float)(4.0 + (float)(maxc - g) / cr - (float)(maxc - r) / cr);
        }
        double h6 = hh / 6.0 + 1.0; // in [5/6, 2): fmod(h6, 1) is this subtraction, exactly
        hh = (float)(h6 >= 1.0 ? h6 - 1.0 : h6);
        int H = clip8i((int)(hh * 255.0));
        int S = clip8i((int)(s * 255.0));
        int V = maxc;
        H = (H + shift) & 255;
        if (S == 0) {
            q[0] = q[1] = q[2] = (uint8_t)V;
            continue;
        }
        float fr = frac[H], fs = fsat[S];
        // round() of a non-negative value: + 0.5 and truncate.
        uint8_t up = (uint8_t)clip8i((int)((float)V * (1.0 - fs) + 0.5));
        uint8_t uq = (uint8_t)clip8i((int)((float)V * (1.0 - fs * fr) + 0.5));
        uint8_t ut = (uint8_t)clip8i((int)((float)V * (1.0 - fs * (1.0 - fr)) + 0.5));
        uint8_t v = (uint8_t)V;
        switch (sector[H]) {
        case 0: q[0] = v; q[1] = ut; q[2] = up; break;
        case 1: q[0] = uq; q[1] = v; q[2] = up; break;
        case 2: q[0] = up; q[1] = v; q[2] = ut; break;
        case 3: q[0] = up; q[1] = uq; q[2] = v; break;
        case 4: q[0] = ut; q[1] = up; q[2] = v; break;
        default: q[0] = v; q[1] = up; q[2] = uq; break;
        }
    }
}

static void to_grayscale(uint8_t *px, size_t npx) {
    for (size_t p = 0; p < npx; p++) {
        uint8_t *q = px + 3 * p;
        q[0] = q[1] = q[2] = pil_L(q);
    }
}

// Separable Gaussian blur, radius ceil(3 sigma) (capped below the image size and at 31), reflect
// padding, float accumulation, rounded back to 8 bits. tmp: h*w*3 floats, then row: 3*(w+64).
static void gaussian_blur(uint8_t *px, int h, int w, float sigma, float *tmp, float *row) {
    int r = (int)ceilf(3.0f * sigma);
    if (r > MIN(h, w) - 1) r = MIN(h, w) - 1;
    if (r > 31) r = 31;
    if (r < 1) return;
    float k[64];
    float sum = 0;
    for (int t = -r; t <= r; t++) {
        float x = (float)t / sigma;
        k[t + r] = expf(-0.5f * x * x);
        sum += k[t + r];
    }
    for (int t = 0; t <= 2 * r; t++) k[t] /= sum;
    const size_t stride = (size_t)w * 3;
    // Horizontal: a reflect-padded copy of each row, then a straight convolution.
    const int pw = w + 2 * r;
    for (int y = 0; y < h; y++) {
        const uint8_t *in = px + (size_t)y * stride;
        for (int x = 0; x < pw; x++) {
            const uint8_t *p = in + (size_t)reflect101(x - r, w) * 3;
            row[3 * x] = p[0], row[3 * x + 1] = p[1], row[3 * x + 2] = p[2];
        }
        float *o = tmp + (size_t)y * stride;
        for (size_t i = 0; i < stride; i++) {
            float a = 0;
            for (int t = 0; t <= 2 * r; t++) a += k[t] * row[i + 3 * (size_t)t];
            o[i] = a;
        }
    }
    // Vertical: accumulate whole rows (reflected row indices).
    for (int y = 0; y < h; y++) {
        float *acc = row; // reused: stride <= 3 * (w + 64)
        for (size_t i = 0; i < stride; i++) acc[i] = 0;
        for (int t = -r; t <= r; t++) {
            const float *in = tmp + (size_t)reflect101(y + t, h) * stride;
            const float kt = k[t + r];
            for (size_t i = 0; i < stride; i++) acc[i] += kt * in[i];
        }
        uint8_t *o = px + (size_t)y * stride;
        for (size_t i = 0; i < stride; i++) o[i] = (uint8_t)clip8i((int)lrintf(acc[i]));
    }
}

// ------------------------------------------------------------------------------------------

void augment_normalize(const uint8_t *hwc, int h, int w, float *chw) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256; i++) lut[c][i] = ((float)i / 255.0f - AUG_MEAN[c]) / AUG_STD[c];
    const size_t plane = (size_t)h * w;
    float *r = chw, *g = chw + plane, *b = chw + 2 * plane;
    for (size_t p = 0; p < plane; p++) {
        r[p] = lut[0][hwc[3 * p + 0]];
        g[p] = lut[1][hwc[3 * p + 1]];
        b[p] = lut[2][hwc[3 * p + 2]];
    }
}

static double randaug_arg(int op, int m, Rng *rng) {
    double level = m / 10.0;
    switch (op) {
    case RA_BRIGHTNESS:
    case RA_SHARPNESS: return level * 1.8 + 0.1;
    case RA_SHEARX:
    case RA_SHEARY: {
        double v = level * 0.3;
        return rng_uniform(rng) > 0.5 ? -v : v;
    }
    case RA_TRANSLATEX:
    case RA_TRANSLATEY: {
        double v = level * 10.0;
        return rng_uniform(rng) > 0.5 ? -v : v;
    }
    case RA_ROTATE: {
        double v = level * 30.0;
        return rng_uniform(rng) < 0.5 ? -v : v;
    }
    default: return 0.0;
    }
}

void augment_train_ws(const Image *in, const float box_in[4], int size, const AugmentOptions *o,
                      Rng *rng, AugmentWork *ws, float *out_chw, float box_out[4]) {
    if (in->c != 3) die("augment: expected an RGB image, got %d channels", in->c);
    if (size <= 0) die("augment: bad output size %d", size);
    work_reserve(ws, size);
    const size_t npx = (size_t)size * size;
    float box[4];

    // 1. Crop + resize.
    int ci = 0, cj = 0, ch = in->h, cw = in->w;
    if (o->random_crop) augment_crop_params(in->h, in->w, o, rng, &ci, &cj, &ch, &cw);
    Image dst = {.h = size, .w = size, .c = 3, .px = ws->a};
    image_resize_bicubic_region(in, cj, ci, cw, ch, &dst, &ws->rs);
    augment_box_crop(box_in, in->w, in->h, cj, ci, cw, ch, box);
    uint8_t *cur = ws->a, *other = ws->b;

    // 2. Horizontal flip.
    if (o->hflip && rng_uniform(rng) < o->hflip_p) {
        for (int y = 0; y < size; y++) {
            uint8_t *row = cur + (size_t)y * size * 3;
            for (int x = 0; x < size / 2; x++) {
                uint8_t *p = row + 3 * x, *q = row + 3 * (size - 1 - x);
                for (int c = 0; c < 3; c++) {
                    uint8_t t = p[c];
                    p[c] = q[c];
                    q[c] = t;
                }
            }
        }
        if (box_valid(box)) box[0] = 1.0f - box[0] - box[2];
    }

    // 3. RandAugment: draw the ops first (with replacement), then per op the coin and its sign.
    if (o->randaug && o->randaug_n > 0) {
        int ops[16];
        int n = MIN(o->randaug_n, 16);
        for (int k = 0; k < n; k++) ops[k] = (int)rng_randint(rng, RA_NUM_OPS);
        for (int k = 0; k < n; k++) {
            if (rng_uniform(rng) > o->randaug_p) continue;
            double arg = randaug_arg(ops[k], o->randaug_m, rng);
            if (ops[k] == RA_IDENTITY) continue;
            double fwd[6];
            augment_randaug_op(ops[k], arg, cur, other, size, size, fwd);
            uint8_t *t = cur;
            cur = other;
            other = t;
            if (ops[k] >= RA_SHEARX && o->box_follow_randaug) augment_box_affine(box, fwd, size);
        }
    }

    // 4. Colour jitter: order first, then the four factors (torchvision's get_params order).
    if (o->color_jitter && rng_uniform(rng) < o->jitter_p) {
        int32_t order[4];
        rng_permutation_i32(rng, order, 4);
        float fb = (float)rng_range(rng, MAX(0.0, 1.0 - o->brightness), 1.0 + o->brightness);
        float fc = (float)rng_range(rng, MAX(0.0, 1.0 - o->contrast), 1.0 + o->contrast);
        float fs = (float)rng_range(rng, MAX(0.0, 1.0 - o->saturation), 1.0 + o->saturation);
        float fh = (float)rng_range(rng, -o->hue, o->hue);
        for (int k = 0; k < 4; k++) {
            switch (order[k]) {
            case 0: if (o->brightness > 0) jit_brightness(cur, npx, fb); break;
            case 1: if (o->contrast > 0) jit_contrast(cur, npx, fc); break;
            case 2: if (o->saturation > 0) jit_saturation(cur, npx, fs); break;
            default: if (o->hue > 0) jit_hue(cur, npx, fh); break;
            }
        }
    }

    // 5. Random grayscale.
    if (o->grayscale && rng_uniform(rng) < o->grayscale_p) to_grayscale(cur, npx);

    // 6. Gaussian blur.
    if (o->blur && rng_uniform(rng) < o->blur_p) {
        float sigma = (float)rng_range(rng, o->blur_sigma_min, o->blur_sigma_max);
        if (sigma > 0) gaussian_blur(cur, size, size, sigma, ws->f, ws->f + npx * 3);
    }

    ws->img = cur;
    if (out_chw) augment_normalize(cur, size, size, out_chw);
    if (box_out) memcpy(box_out, box, sizeof(box));
}

void augment_train(const Image *in, const float box_in[4], int size, const AugmentOptions *o,
                   Rng *rng, float *out_chw, float box_out[4]) {
    augment_train_ws(in, box_in, size, o, rng, thread_work(), out_chw, box_out);
}

void augment_eval_ws(const Image *in, int size, AugmentWork *ws, float *out_chw) {
    if (in->c != 3) die("augment: expected an RGB image, got %d channels", in->c);
    work_reserve(ws, size);
    Image dst = {.h = size, .w = size, .c = 3, .px = ws->a};
    image_resize_bicubic_region(in, 0, 0, in->w, in->h, &dst, &ws->rs);
    ws->img = ws->a;
    if (out_chw) augment_normalize(ws->a, size, size, out_chw);
}

void augment_eval(const Image *in, int size, float *out_chw) {
    augment_eval_ws(in, size, thread_work(), out_chw);
}
