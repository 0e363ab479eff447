// test_plot.c: `vlmae plot` (src/cli/plot.c): the step axis is labelled at whole, round steps at
// their exact positions (plot_ticks), and a plot of a small log.jsonl is written.
//
// The bug this guards: ticks were placed at fifths of the step range and their labels rounded, so
// a run of 28 steps showed a "6" at step 5.6.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/plot.h"
#include "data/image.h"

#include "check.h"

// ticks(lo, hi) must be exactly want[0..n).
static void expect_ticks(double lo, double hi, const double *want, int n) {
    double t[32];
    int got = plot_ticks(lo, hi, 6, 1.0, t, 32);
    int same = got == n;
    for (int i = 0; same && i < n; i++) same = t[i] == want[i];
    if (!same) {
        fail("plot_ticks(%g, %g): %d ticks, want %d", lo, hi, got, n);
        for (int i = 0; i < got; i++) fprintf(stderr, "  tick %d: %.17g\n", i, t[i]);
    }
    checks++;
}

static void test_ticks(void) {
    expect_ticks(0, 28, (const double[]){0, 5, 10, 15, 20, 25}, 6);
    expect_ticks(1, 4, (const double[]){1, 2, 3, 4}, 4);
    expect_ticks(0, 3, (const double[]){0, 1, 2, 3}, 4);          // never half steps
    expect_ticks(5, 7, (const double[]){5, 6, 7}, 3);
    expect_ticks(3, 3, (const double[]){3}, 1);
    expect_ticks(10, 300000, (const double[]){50000, 100000, 150000, 200000, 250000, 300000}, 6);
    expect_ticks(7, 93, (const double[]){20, 40, 60, 80}, 4);
    // Every tick is a whole step inside the range, at most 6, for many ranges.
    for (int lo = 0; lo < 40; lo += 3)
        for (int hi = lo + 1; hi < lo + 2000; hi = hi * 3 / 2 + 1) {
            double t[32];
            int n = plot_ticks(lo, hi, 6, 1.0, t, 32);
            int good = n >= 1 && n <= 6;
            for (int i = 0; good && i < n; i++)
                good = t[i] == floor(t[i]) && t[i] >= lo && t[i] <= hi && (i == 0 || t[i] > t[i - 1]);
            CHECKF(good, "plot_ticks(%d, %d): %d ticks, first %g", lo, hi, n, n ? t[0] : NAN);
        }
    double t[4];
    CHECK(plot_ticks(0, 28, 6, 1.0, t, 4) == 4 && !signbit(t[0]));  // labelled "0", not "-0"
    CHECK(plot_ticks(5, 1, 6, 1.0, t, 4) == 0);  // an empty range
    CHECK(plot_ticks(0, 100, 6, 1.0, t, 2) == 2 && t[0] == 0 && t[1] == 20);  // cap respected
}

// A small run directory: 29 log lines, steps 0..28.
static void test_plot_file(void) {
    char dir[256], path[512];
    if (make_temp_dir(dir, sizeof dir, "test_plot.XXXXXX") != 0) {
        failures++;
        return;
    }
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int s = 0; s <= 28; s++)
        fprintf(f, "{\"step\": %d, \"itc\": %.3f, \"itm\": 0.7, \"mlm\": %.3f, \"rmim\": 1.0, \"ifr\": 0.3}\n", s,
                5.0 - s * 0.05, 10.0 - s * 0.1);
    fclose(f);
    char out[600];
    snprintf(out, sizeof out, "%s/loss.png", dir);
    char *argv[] = {"plot", dir, NULL};
    fflush(stdout);
    CHECK(plot_main(2, argv) == 0);
    Image im;
    CHECKF(image_read_file(out, &im, NULL, 0) == 0 && im.w == 900 && im.h == 500, "no 900x500 %s", out);
    image_free(&im);
    unlink(out);
    unlink(path);
    rmdir(dir);
}

// Pixels of exactly colour c.
static long count_colour(const Image *im, const unsigned char c[3]) {
    long n = 0;
    for (size_t i = 0; i < (size_t)im->w * im->h; i++) n += !memcmp(im->px + 3 * i, c, 3);
    return n;
}

// Writes a log of 20 training lines (steps 5..100) and, with val, validation lines at steps 0, 50
// and 100 (the step-0 line first, as `vlmae pretrain` writes it); plots it; returns the pixel
// counts of the five loss colours in counts[5]. 0 on success.
static int plot_counts(int with_val, long counts[5]) {
    char dir[256], path[512], out[600];
    if (make_temp_dir(dir, sizeof dir, "test_plot.XXXXXX") != 0) return -1;
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    FILE *f = fopen(path, "w");
    if (with_val)
        fprintf(f, "{\"step\": 0, \"val_itc\": 9.0, \"val_itm\": 0.72, \"val_mlm\": 10.3, \"val_rmim\": 1.0, "
                   "\"val_ifr\": 0.07, \"val_total\": 21.1, \"val_batches\": 4}\n");
    for (int s = 5; s <= 100; s += 5) {
        fprintf(f, "{\"step\": %d, \"itc\": %.3f, \"itm\": %.4f, \"mlm\": %.3f, \"rmim\": %.4f, \"ifr\": %.4f}\n",
                s, 5.0 - s * 0.01, 0.7 - s * 0.0005, 6.0 - s * 0.02, 0.9 - s * 0.004, 0.05 + s * 0.0003);
        if (with_val && s % 50 == 0)
            fprintf(f, "{\"step\": %d, \"val_itc\": %.3f, \"val_itm\": 0.69, \"val_mlm\": 5.0, \"val_rmim\": 0.85, "
                       "\"val_ifr\": 0.03, \"val_total\": 10.0, \"val_batches\": 4}\n", s, 4.5 - s * 0.01);
    }
    fclose(f);
    snprintf(out, sizeof out, "%s/loss.png", dir);
    char *argv[] = {"plot", dir, NULL};
    fflush(stdout);
    int rc = plot_main(2, argv);
    Image im;
    if (rc == 0 && image_read_file(out, &im, NULL, 0) == 0) {
        static const unsigned char col[5][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}};
        for (int k = 0; k < 5; k++) counts[k] = count_colour(&im, col[k]);
        image_free(&im);
    } else {
        rc = -1;
    }
    unlink(out);
    unlink(path);
    rmdir(dir);
    return rc;
}

// Validation lines (val_* keys, the first at step 0) must neither hide the training curves nor be
// dropped: every training curve is drawn, and each loss gets more ink with its dashed val curve.
// (The bug this guards: the first log line set each loss's scale, and a validation line has no
// training value there, so nothing at all was drawn.)
static void test_plot_validation(void) {
    long plain[5], with_val[5];
    CHECK(plot_counts(0, plain) == 0);
    CHECK(plot_counts(1, with_val) == 0);
    for (int k = 0; k < 5; k++) {
        // the legend swatch alone is 13 x 8 px; a drawn curve adds hundreds
        CHECKF(plain[k] > 300, "loss %d: %ld pixels without validation lines", k, plain[k]);
        CHECKF(with_val[k] > plain[k] + 20, "loss %d: %ld pixels with validation lines, %ld without", k, with_val[k],
               plain[k]);
    }
}

int main(void) {
    test_ticks();
    test_plot_file();
    test_plot_validation();
    printf("test_plot: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
