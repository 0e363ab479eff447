// test_flops.c: the MAC counter must reproduce the VLMAE paper's Table 8 (per-sample MACs of one
// training forward pass at 256px and 16 text tokens, thop convention): ALBEF 60.5G, TCL 60.6G,
// VLMAE 49.6G, each within 1%. A counter that misses this is counting the wrong model. And the
// other half of MFU, the device peak (train/peak.h): data-sheet dense rates by device name.
#include <math.h>
#include <stdio.h>

#include "model/flops.h"
#include "train/peak.h"

static int check(Objective o, double want_g) {
    ModelConfig c;
    model_config_base(&c);
    c.objective = o;
    Macs m = macs_per_sample(&c, 16, 0);
    double got = (m.online + m.momentum) / 1e9, rel = fabs(got - want_g) / want_g;
    printf("%s %s: %.3f GMACs (paper %.1f), rel err %.4f\n", rel < 0.01 ? "ok" : "FAIL", objective_name(o), got, want_g, rel);
    return rel < 0.01 ? 0 : 1;
}

int main(void) {
    int fail = check(OBJ_ALBEF, 60.5) + check(OBJ_TCL, 60.6) + check(OBJ_VLMAE, 49.6);
    // The full convention adds the attention products, so it must be larger; training FLOPs
    // count the online part three times (forward + backward).
    ModelConfig c;
    model_config_base(&c);
    Macs thop = macs_per_sample(&c, 16, 0), full = macs_per_sample(&c, 16, 1);
    if (!(full.online > thop.online && full.momentum > thop.momentum)) fail++, printf("FAIL full <= thop\n");
    double tf = train_flops_per_sample(&c, 16);
    if (fabs(tf - 2.0 * (3.0 * full.online + full.momentum)) > 1.0) fail++, printf("FAIL train flops\n");

    // Peaks as cudaGetDeviceProperties names the devices (dense; bf16 tensor cores / fp32).
    const struct { const char *name; int bf16; double tflops; } peaks[] = {
        {"NVIDIA H200", 1, 989},           {"NVIDIA H100 80GB HBM3", 1, 989}, {"NVIDIA H100 PCIe", 1, 756},
        {"NVIDIA A100-SXM4-80GB", 1, 312}, {"NVIDIA A100 80GB PCIe", 0, 19.5}, {"NVIDIA GH200 480GB", 1, 989},
        {"NVIDIA H100 NVL", 0, 60},
    };
    for (size_t i = 0; i < sizeof(peaks) / sizeof(peaks[0]); i++) {
        double f = 0;
        int ok = device_peak_flops(peaks[i].name, peaks[i].bf16, &f) && fabs(f - peaks[i].tflops * 1e12) < 1e9;
        printf("%s peak %s %s: %.1f TFLOP/s (want %.1f)\n", ok ? "ok" : "FAIL", peaks[i].name,
               peaks[i].bf16 ? "bf16" : "fp32", f / 1e12, peaks[i].tflops);
        fail += !ok;
    }
    double f = -1;
    if (device_peak_flops("Some Future GPU", 1, &f) != 0 || f != -1) fail++, printf("FAIL unknown device found\n");
    return fail;
}
