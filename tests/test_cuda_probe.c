// test_cuda_probe: the CUDA toolchain end to end. Skips (77) without a GPU; otherwise checks the
// device calls of rank placement (distinct PCI bus ids, cudaSetDevice), adds two vectors on the
// device and compares with the host sum (exact: one IEEE add either way).
#include <stdio.h>
#include <string.h>

#include "cuda_probe.h"
#include "engine/common.h"

int main(void) {
    int ndev = vlmae_cuda_device_count();
    if (ndev <= 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    printf("%d CUDA device(s)\n", ndev);

    // Rank placement's device calls (src/train/placement.c): distinct PCI bus ids, cudaSetDevice.
    char ids[16][64];
    for (int i = 0; i < ndev && i < 16; i++) {
        if (vlmae_cuda_pci_bus_id(i, ids[i], (int)sizeof(ids[i])) != 0 || !ids[i][0]) {
            fprintf(stderr, "FAIL: no PCI bus id for device %d\n", i);
            return 1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(ids[i], ids[j])) {
                fprintf(stderr, "FAIL: devices %d and %d have the same PCI bus id %s\n", j, i, ids[i]);
                return 1;
            }
        printf("device %d: PCI bus id %s\n", i, ids[i]);
    }
    char none[64];
    if (vlmae_cuda_pci_bus_id(ndev, none, (int)sizeof(none)) == 0 || vlmae_cuda_set_device(ndev - 1) != 0 ||
        vlmae_cuda_set_device(0) != 0) {
        fprintf(stderr, "FAIL: vlmae_cuda_pci_bus_id / vlmae_cuda_set_device\n");
        return 1;
    }

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
