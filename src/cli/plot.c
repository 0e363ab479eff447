// plot.c: `vlmae plot RUN_DIR` — the loss curves of a run (RUN_DIR/log.jsonl) as a PNG, training
// solid and validation (log lines with val_* keys) dashed, each loss divided by its first logged
// training value so the five share one axis. No plotting library: a canvas,
// lines, and a 5x7 pixel font for the labels.
#include "cli/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/json.h"
#include "engine/common.h"

enum { W = 900, H = 500, L = 70, R = 150, TOP = 40, BOT = 50 };

typedef struct {
    char c;
    unsigned char rows[7];  // 5 bits per row, MSB = leftmost of the 5
} Glyph;

static const Glyph font[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},   {'2', {14, 17, 1, 2, 4, 8, 31}},
    {'3', {30, 1, 1, 14, 1, 1, 30}},     {'4', {2, 6, 10, 18, 31, 2, 2}},  {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},    {'8', {14, 17, 17, 14, 17, 17, 14}},
    {'9', {14, 17, 17, 15, 1, 2, 12}},   {'.', {0, 0, 0, 0, 0, 12, 12}},   {'-', {0, 0, 0, 31, 0, 0, 0}},
    {'/', {1, 1, 2, 4, 8, 16, 16}},      {'a', {0, 0, 14, 1, 15, 17, 15}}, {'c', {0, 0, 14, 16, 16, 17, 14}},
    {'d', {1, 1, 13, 19, 17, 17, 15}},   {'e', {0, 0, 14, 17, 31, 16, 14}}, {'f', {6, 9, 8, 28, 8, 8, 8}},
    {'g', {0, 15, 17, 17, 15, 1, 14}},   {'i', {4, 0, 12, 4, 4, 4, 14}},   {'l', {12, 4, 4, 4, 4, 4, 14}},
    {'m', {0, 0, 26, 21, 21, 17, 17}},   {'n', {0, 0, 22, 25, 17, 17, 17}}, {'o', {0, 0, 14, 17, 17, 17, 14}},
    {'p', {0, 0, 30, 17, 30, 16, 16}},   {'r', {0, 0, 22, 25, 16, 16, 16}}, {'s', {0, 0, 15, 16, 14, 1, 30}},
    {'t', {8, 8, 28, 8, 8, 9, 6}},       {'u', {0, 0, 17, 17, 17, 19, 13}}, {'v', {0, 0, 17, 17, 17, 10, 4}},
    {'x', {0, 0, 17, 10, 4, 10, 17}},   {'h', {16, 16, 22, 25, 17, 17, 17}},
};

static void px(Image *im, int x, int y, const unsigned char c[3]) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    memcpy(im->px + ((size_t)y * im->w + x) * 3, c, 3);
}

static void text(Image *im, int x, int y, const char *s, const unsigned char c[3]) {
    for (; *s; s++, x += 7) {
        for (size_t g = 0; g < sizeof(font) / sizeof(font[0]); g++) {
            if (font[g].c != *s) continue;
            for (int r = 0; r < 7; r++)
                for (int b = 0; b < 5; b++)
                    if (font[g].rows[r] & (16 >> b)) px(im, x + b, y + r, c);
        }
    }
}

static void line(Image *im, double x0, double y0, double x1, double y1, const unsigned char c[3]) {
    int n = (int)(fabs(x1 - x0) + fabs(y1 - y0)) + 1;
    for (int i = 0; i <= n; i++) {
        double t = (double)i / n;
        int x = (int)lround(x0 + t * (x1 - x0)), y = (int)lround(y0 + t * (y1 - y0));
        px(im, x, y, c), px(im, x, y + 1, c);
    }
}

int plot_ticks(double lo, double hi, int max_ticks, double min_step, double *ticks, int cap) {
    if (!(hi >= lo) || !isfinite(lo) || !isfinite(hi) || max_ticks < 1 || cap < 1) return 0;
    if (hi == lo) {
        ticks[0] = lo;
        return 1;
    }
    // Try 1, 2, 5 x 10^k from just below span / max_ticks upwards; the first step that gives at
    // most max_ticks multiples in [lo, hi] wins. (1e-9: lo and hi that are multiples count.)
    double span = hi - lo, base = fmax(span / max_ticks, min_step > 0 ? min_step : 0);
    double p = pow(10, floor(log10(base)) - 1);
    for (int it = 0; it < 60; it++, p *= 10) {
        static const double m[3] = {1, 2, 5};
        for (int k = 0; k < 3; k++) {
            double step = m[k] * p;
            if (step < min_step) continue;
            double i0 = ceil(lo / step - 1e-9), i1 = floor(hi / step + 1e-9);
            if (i1 - i0 + 1 > max_ticks) continue;
            int n = 0;
            for (double i = i0; i <= i1 && n < cap; i++) ticks[n++] = i * step + 0.0;  // -0 -> 0
            return n;
        }
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: vlmae plot RUN_DIR [--out FILE.png]\n"
               "Draws the five losses of RUN_DIR/log.jsonl against the step into RUN_DIR/loss.png (or\n"
               "FILE.png): training losses as solid lines, held-out validation losses (data.val) dashed\n"
               "in the same colour, each loss divided by its first logged training value.\n");
}

// The series of a log: training lines (keys itc..ifr) and validation lines (val_itc..val_ifr).
typedef struct {
    int n, cap;
    double *step, *val;  // (n), (n, 5); NAN where a line lacks a loss
} Series;

static void series_push(Series *s, double step, const double v[5]) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->step = realloc(s->step, (size_t)s->cap * sizeof(double));
        s->val = realloc(s->val, (size_t)s->cap * 5 * sizeof(double));
        if (!s->step || !s->val) die("plot: out of memory");
    }
    s->step[s->n] = step;
    memcpy(s->val + (size_t)s->n * 5, v, 5 * sizeof(double));
    s->n++;
}

// Draws series s of loss k scaled by base, solid or dashed (6 px on, 6 off along the path).
static void draw_series(Image *im, const Series *s, int k, double base, double x0, double x1, double ymax,
                        int dashed, const unsigned char c[3]) {
    int pw = W - L - R, ph = H - TOP - BOT;
    double path = 0;
    for (int i = 1; i < s->n; i++) {
        double a = s->val[(i - 1) * 5 + k] / base, b = s->val[i * 5 + k] / base;
        if (!isfinite(a) || !isfinite(b)) continue;
        double xa = L + pw * (s->step[i - 1] - x0) / (x1 - x0), ya = TOP + ph - ph * a / ymax;
        double xb = L + pw * (s->step[i] - x0) / (x1 - x0), yb = TOP + ph - ph * b / ymax;
        if (!dashed) {
            line(im, xa, ya, xb, yb, c);
            continue;
        }
        double len = hypot(xb - xa, yb - ya);
        for (double t = 0; t < len; t += 1.0, path += 1.0)
            if (fmod(path, 12.0) < 6.0) {
                double u0 = t / len, u1 = fmin(t + 1.0, len) / len;
                line(im, xa + u0 * (xb - xa), ya + u0 * (yb - ya), xa + u1 * (xb - xa), ya + u1 * (yb - ya), c);
            }
    }
    if (dashed)  // a marker on each validation point: a curve of one point is still visible
        for (int i = 0; i < s->n; i++) {
            double v = s->val[i * 5 + k] / base;
            if (!isfinite(v)) continue;
            int x = (int)lround(L + pw * (s->step[i] - x0) / (x1 - x0)), y = (int)lround(TOP + ph - ph * v / ymax);
            for (int dy = -2; dy <= 2; dy++)
                for (int dx = -2; dx <= 2; dx++) px(im, x + dx, y + dy, c);
        }
}

int plot_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    char in[4096], out[4096];
    snprintf(in, sizeof(in), "%s/log.jsonl", argv[1]);
    snprintf(out, sizeof(out), "%s/loss.png", argv[1]);
    if (argc == 4 && !strcmp(argv[2], "--out")) snprintf(out, sizeof(out), "%s", argv[3]);
    else if (argc != 2) return usage(stderr), 2;
    FILE *f = fopen(in, "r");
    if (!f) die("plot: cannot read %s", in);
    const char *names[5] = {"itc", "itm", "mlm", "rmim", "ifr"};
    const char *val_names[5] = {"val_itc", "val_itm", "val_mlm", "val_rmim", "val_ifr"};
    Series tr = {0}, va = {0};
    char buf[8192], err[256];
    int lineno = 0;
    while (fgets(buf, sizeof(buf), f)) {
        lineno++;
        JsonDoc *d = json_parse(buf, strlen(buf), 4, err, sizeof(err));
        if (!d) die("plot: %s:%d: %s", in, lineno, err);
        double step, v[5], w[5];
        if (!json_number(json_get(json_root(d), "step"), &step)) die("plot: %s:%d: no step", in, lineno);
        int has_tr = 0, has_va = 0;
        for (int k = 0; k < 5; k++) {
            if (json_number(json_get(json_root(d), names[k]), &v[k])) has_tr = 1;
            else v[k] = NAN;
            if (json_number(json_get(json_root(d), val_names[k]), &w[k])) has_va = 1;
            else w[k] = NAN;
        }
        json_free(d);
        if (has_tr) series_push(&tr, step, v);
        if (has_va) series_push(&va, step, w);
    }
    fclose(f);
    if (tr.n < 2) die("plot: %s has %d training log lines; need at least 2", in, tr.n);
    // Each loss relative to its first training value (the validation curve on the same scale).
    double base[5], x0 = tr.step[0], x1 = tr.step[tr.n - 1], ymax = 1.0;
    for (int k = 0; k < 5; k++) base[k] = tr.val[k];
    for (int i = 0; i < va.n; i++) x0 = fmin(x0, va.step[i]), x1 = fmax(x1, va.step[i]);
    const Series *all[2] = {&tr, &va};
    for (int q = 0; q < 2; q++)
        for (int i = 0; i < all[q]->n; i++)
            for (int k = 0; k < 5; k++)
                if (base[k] > 0 && isfinite(all[q]->val[i * 5 + k] / base[k]))
                    ymax = fmax(ymax, all[q]->val[i * 5 + k] / base[k]);
    ymax = ceil(ymax * 5) / 5;
    Image im;
    image_alloc(&im, H, W, 3);
    memset(im.px, 255, (size_t)W * H * 3);
    const unsigned char black[3] = {0, 0, 0}, grey[3] = {215, 215, 215};
    const unsigned char col[5][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}};
    int pw = W - L - R, ph = H - TOP - BOT;
    char lab[64];
    for (int t = 0; t <= 5; t++) {  // grid and loss tick labels
        double yv = ymax * t / 5, y = TOP + ph - ph * t / 5.0;
        line(&im, L, y, L + pw, y, grey);
        snprintf(lab, sizeof(lab), "%.2f", yv);
        text(&im, L - 7 * (int)strlen(lab) - 6, (int)y - 3, lab, black);
    }
    // Step ticks at whole, round steps, each at its exact x (not rounded fractional positions).
    double xt[16];
    int nxt = plot_ticks(x0, x1, 6, 1.0, xt, 16);
    for (int t = 0; t < nxt; t++) {
        double x = L + pw * (xt[t] - x0) / (x1 - x0);
        line(&im, x, TOP + ph, x, TOP + ph + 3, black);
        snprintf(lab, sizeof(lab), "%.0f", xt[t]);
        text(&im, (int)lround(x) - 7 * (int)strlen(lab) / 2, TOP + ph + 8, lab, black);
    }
    line(&im, L, TOP, L, TOP + ph, black);
    line(&im, L, TOP + ph, L + pw, TOP + ph, black);
    text(&im, L, 15, va.n ? "loss relative to first logged value - solid train - dashed val"
                          : "loss relative to first logged value", black);
    text(&im, L + pw / 2 - 14, H - 20, "step", black);
    for (int k = 0; k < 5; k++) {
        if (!(base[k] > 0)) continue;  // a loss that is 0 (albef: rmim, ifr) is not drawn
        draw_series(&im, &tr, k, base[k], x0, x1, ymax, 0, col[k]);
        draw_series(&im, &va, k, base[k], x0, x1, ymax, 1, col[k]);
        for (int dy = 0; dy < 8; dy++) line(&im, W - R + 20, TOP + 20 * k + dy, W - R + 32, TOP + 20 * k + dy, col[k]);
        text(&im, W - R + 40, TOP + 20 * k, names[k], black);
    }
    if (image_write_png(&im, out) != 0) die("plot: cannot write %s", out);
    if (va.n) printf("wrote %s (%d training and %d validation log lines, steps %.0f..%.0f)\n", out, tr.n, va.n, x0, x1);
    else printf("wrote %s (%d log lines, steps %.0f..%.0f)\n", out, tr.n, x0, x1);
    image_free(&im);
    free(tr.step), free(tr.val), free(va.step), free(va.val);
    return 0;
}
