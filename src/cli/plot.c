// plot.c: `vlmae plot RUN_DIR` — the loss curves of a run (RUN_DIR/log.jsonl) as a PNG, each loss
// divided by its first logged value so the five share one axis. No plotting library: a canvas,
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
    {'x', {0, 0, 17, 10, 4, 10, 17}},
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

static void usage(FILE *f) {
    fprintf(f, "usage: vlmae plot RUN_DIR [--out FILE.png]\n"
               "Draws the five losses of RUN_DIR/log.jsonl, each relative to its first logged value,\n"
               "against the step, into RUN_DIR/loss.png (or FILE.png).\n");
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
    int cap = 1024, n = 0;
    double *step = mallocCheck((size_t)cap * sizeof(double)), *val = mallocCheck((size_t)cap * 5 * sizeof(double));
    char buf[8192], err[256];
    int lineno = 0;
    while (fgets(buf, sizeof(buf), f)) {
        lineno++;
        JsonDoc *d = json_parse(buf, strlen(buf), 4, err, sizeof(err));
        if (!d) die("plot: %s:%d: %s", in, lineno, err);
        if (n == cap) {
            cap *= 2;
            step = realloc(step, (size_t)cap * sizeof(double)), val = realloc(val, (size_t)cap * 5 * sizeof(double));
            if (!step || !val) die("plot: out of memory");
        }
        if (!json_number(json_get(json_root(d), "step"), &step[n])) die("plot: %s:%d: no step", in, lineno);
        for (int k = 0; k < 5; k++)
            if (!json_number(json_get(json_root(d), names[k]), &val[n * 5 + k])) val[n * 5 + k] = NAN;
        json_free(d);
        n++;
    }
    fclose(f);
    if (n < 2) die("plot: %s has %d log lines; need at least 2", in, n);
    double ymax = 1.0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 5; k++)
            if (val[k] > 0 && isfinite(val[i * 5 + k] / val[k])) ymax = fmax(ymax, val[i * 5 + k] / val[k]);
    ymax = ceil(ymax * 5) / 5;
    Image im;
    image_alloc(&im, H, W, 3);
    memset(im.px, 255, (size_t)W * H * 3);
    const unsigned char black[3] = {0, 0, 0}, grey[3] = {215, 215, 215};
    const unsigned char col[5][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}};
    int pw = W - L - R, ph = H - TOP - BOT;
    double x0 = step[0], x1 = step[n - 1];
    char lab[64];
    for (int t = 0; t <= 5; t++) {  // grid and tick labels
        double yv = ymax * t / 5, y = TOP + ph - ph * t / 5.0;
        line(&im, L, y, L + pw, y, grey);
        snprintf(lab, sizeof(lab), "%.2f", yv);
        text(&im, L - 7 * (int)strlen(lab) - 6, (int)y - 3, lab, black);
        double xv = x0 + (x1 - x0) * t / 5, x = L + pw * t / 5.0;
        snprintf(lab, sizeof(lab), "%.0f", xv);
        text(&im, (int)x - 7 * (int)strlen(lab) / 2, TOP + ph + 8, lab, black);
    }
    line(&im, L, TOP, L, TOP + ph, black);
    line(&im, L, TOP + ph, L + pw, TOP + ph, black);
    text(&im, L, 15, "loss relative to first logged value", black);
    text(&im, L + pw / 2 - 14, H - 20, "step", black);
    for (int k = 0; k < 5; k++) {
        if (!(val[k] > 0)) continue;  // a loss that is 0 (albef: rmim, ifr) is not drawn
        for (int i = 1; i < n; i++) {
            double a = val[(i - 1) * 5 + k] / val[k], b = val[i * 5 + k] / val[k];
            if (!isfinite(a) || !isfinite(b)) continue;
            line(&im, L + pw * (step[i - 1] - x0) / (x1 - x0), TOP + ph - ph * a / ymax,
                 L + pw * (step[i] - x0) / (x1 - x0), TOP + ph - ph * b / ymax, col[k]);
        }
        for (int dy = 0; dy < 8; dy++) line(&im, W - R + 20, TOP + 20 * k + dy, W - R + 32, TOP + 20 * k + dy, col[k]);
        text(&im, W - R + 40, TOP + 20 * k, names[k], black);
    }
    if (image_write_png(&im, out) != 0) die("plot: cannot write %s", out);
    printf("wrote %s (%d log lines, steps %.0f..%.0f)\n", out, n, x0, x1);
    image_free(&im);
    free(step), free(val);
    return 0;
}
