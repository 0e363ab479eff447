// test_cuda_probe: the CUDA toolchain end to end. Skips (77) without a GPU; otherwise adds two
// vectors on the device and compares with the host sum (exact: one IEEE add either way).
#include <stdio.h>

#include "cuda_probe.h"
#include "engine/common.h"

int main(void) {
    int ndev = vlmae_cuda_device_count();
    if (ndev <= 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    printf("%d CUDA device(s)\n", ndev);

    const int n = 1000003;  // not a multiple of the block size: exercises the tail guard
    float *a = mallocCheck(n * sizeof(float));
    float *b = mallocCheck(n * sizeof(float));
    float *c = mallocCheck(n * sizeof(float));
    for (int i = 0; i < n; i++) {
        a[i] = 0.5f * (float)i;
        b[i] = 1.0f / (float)(i + 1);
        c[i] = -1.0f;
    }
    if (vlmae_cuda_probe_add(c, a, b, n) != 0) return 1;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (c[i] != a[i] + b[i]) {
            if (bad < 5) fprintf(stderr, "c[%d] = %g, want %g\n", i, c[i], a[i] + b[i]);
            bad++;
        }
    }
    free(a);
    free(b);
    free(c);
    if (bad) {
        fprintf(stderr, "FAIL: %d of %d wrong\n", bad, n);
        return 1;
    }
    printf("PASS: %d sums\n", n);
    return 0;
}
