// backend.c: opening the op backend of a run (see backend.h).
#include "train/backend.h"

#include <stdio.h>
#include <string.h>

#include "build_config.h"
#include "engine/common.h"
#include "engine/ops_guard.h"
#include "train/peak.h"
#if VLMAE_HAVE_CUDA
#include "ops_cuda.h"
#endif

const Ops *backend_open(RuntimeDevice device, Precision precision, int local_rank, char *err,
                        size_t err_len) {
    if (device == DEVICE_CPU || device == DEVICE_GUARD) {
        if (precision != PRECISION_FP32) {
            snprintf(err, err_len, "precision bf16 needs the cuda device (the CPU backend is fp32)");
            return NULL;
        }
        if (device == DEVICE_CPU) return &ops_cpu;
        ops_guard_init((size_t)64 << 30);  // address space only (MAP_NORESERVE)
        return &ops_guard;
    }
#if VLMAE_HAVE_CUDA
    int n = cuda_device_count();
    if (n < 1) {
        snprintf(err, err_len, "device cuda: no CUDA device is visible (driver or CUDA_VISIBLE_DEVICES)");
        return NULL;
    }
    int dev = local_rank % n;
    if (cuda_backend_init(dev, precision == PRECISION_BF16) != 0) {
        snprintf(err, err_len, "cannot initialise CUDA device %d", dev);
        return NULL;
    }
    return &ops_cuda;
#else
    (void)precision, (void)local_rank;
    snprintf(err, err_len, "device cuda: this vlmae was built without CUDA (configure found no nvcc; see "
             "./configure --help, --with-cuda)");
    return NULL;
#endif
}

void backend_close(const Ops *ops) {
#if VLMAE_HAVE_CUDA
    if (ops == &ops_cuda) cuda_backend_shutdown();
#else
    (void)ops;
#endif
}

double backend_memory_mib(const Ops *ops) {
#if VLMAE_HAVE_CUDA
    if (ops == &ops_cuda) return (double)cuda_memory_used() / 1048576.0;
#endif
    (void)ops;
    return -1.0;
}

void backend_describe(const Ops *ops, char *line, size_t len, double *peak_flops) {
    *peak_flops = 0.0;
#if VLMAE_HAVE_CUDA
    if (ops == &ops_cuda) {
        char name[128];
        double bf16, fp32;
        cuda_device_info(name, sizeof(name), &bf16, &fp32);
        int b = cuda_backend_bf16();
        // The data-sheet peak of a known device; else the estimate from SM count and clock.
        int known = device_peak_flops(name, b, peak_flops);
        if (!known) *peak_flops = b ? bf16 : fp32;
        snprintf(line, len, "cuda %s (%s GEMMs; peak %.0f TFLOP/s%s)", name, b ? "bf16" : "fp32", *peak_flops / 1e12,
                 known ? "" : ", estimated from clocks");
        return;
    }
#endif
    snprintf(line, len, "%s (fp32)", ops->name);
}
