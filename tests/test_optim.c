// test_optim.c: AdamW and the learning-rate schedule against an independent double-precision
// implementation of PyTorch's torch.optim.AdamW (decoupled weight decay: p -= lr*wd*p, then the
// bias-corrected Adam step), including "no decay on biases and 1-D parameters", and the warm-up +
// cosine schedule at its end points.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/common.h"
#include "engine/rng.h"
#include "train/optim.h"

static int fail = 0;

static void expect_close(const char *what, double got, double want, double tol) {
    int ok = fabs(got - want) <= tol * fmax(1.0, fabs(want));
    if (!ok) fail = 1;
    printf("%s %s: got %.9g want %.9g\n", ok ? "ok" : "FAIL", what, got, want);
}

int main(void) {
    ParamSet ps;
    params_init(&ps);
    params_add2(&ps, "w", 3, 4, 1);  // decayed
    params_add1(&ps, "b", 3, 0);     // not decayed
    params_alloc(&ps, 1);
    // The flat layout: every tensor at a multiple of PARAM_ALIGN floats (w at 0, b at 16), the
    // gap between them part of the buffers (not decayed). AdamW runs over all of it.
    const size_t boff = params_find(&ps, "b")->offset, n = ps.total;
    expect_close("offset of the second tensor (aligned)", (double)boff, 16.0, 0.0);
    expect_close("flat size (aligned)", (double)n, 32.0, 0.0);
    double p[32], m[32] = {0}, v[32] = {0};
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < n; i++) ps.data[i] = (float)rng_normal(&r), p[i] = ps.data[i];
    AdamW o;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.02;
    adamw_init(&o, &ps, (float)b1, (float)b2, (float)eps, (float)wd);
    for (int t = 1; t <= 5; t++) {
        double lr = 1e-2 * t;
        for (size_t i = 0; i < n; i++) ps.grad[i] = (float)rng_normal(&r);
        adamw_step(&o, &ps, (float)lr);
        for (size_t i = 0; i < n; i++) {
            double g = ps.grad[i], dk = i < 12 ? 1.0 : 0.0;
            p[i] -= lr * wd * dk * p[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
            p[i] -= lr * mh / (sqrt(vh) + eps);
        }
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(ps.data[i] - p[i]));
    expect_close("AdamW 5 steps, max |p - p_ref|", worst, 0.0, 1e-5);
    // The bias (1-D) must not have been decayed: with zero gradients and lr > 0, AdamW leaves it
    // unchanged apart from its moments; the matrix shrinks by (1 - lr*wd).
    memset(ps.grad, 0, n * sizeof(float));
    memset(o.m, 0, n * sizeof(float)), memset(o.v, 0, n * sizeof(float));
    float w0 = ps.data[0], b0 = ps.data[boff];
    adamw_step(&o, &ps, 0.5f);
    expect_close("weight decay on a matrix", ps.data[0], w0 * (1 - 0.5 * wd), 1e-6);
    expect_close("no weight decay on a bias", ps.data[boff], b0, 0.0);

    LrSchedule s = {.lr = 1e-4f, .warmup_lr = 1e-5f, .min_lr = 1e-5f, .warmup_steps = 1000, .total_steps = 11000};
    expect_close("lr at step 0 (warm-up start)", lr_at(&s, 0), 1e-5, 1e-6);
    expect_close("lr at step 500 (half warm-up)", lr_at(&s, 500), 5.5e-5, 1e-6);
    expect_close("lr at step 1000 (peak)", lr_at(&s, 1000), 1e-4, 1e-6);
    expect_close("lr at step 6000 (cosine midpoint)", lr_at(&s, 6000), 5.5e-5, 1e-6);
    expect_close("lr at the last step", lr_at(&s, 11000), 1e-5, 1e-6);
    adamw_free(&o);
    params_free(&ps);
    return fail;
}
