// cuda_probe.cu: device detection and a vector-add kernel (see cuda_probe.h).
#include <cuda_runtime.h>
#include <stdio.h>

#include "cuda_probe.h"

__global__ static void add_kernel(float *c, const float *a, const float *b, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

extern "C" int vlmae_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky error so later calls start clean
        return 0;
    }
    return n;
}

static int check(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return 0;
    fprintf(stderr, "vlmae: cuda_probe: %s: %s\n", what, cudaGetErrorString(err));
    return -1;
}

extern "C" int vlmae_cuda_set_device(int dev) {
    return check(cudaSetDevice(dev), "cudaSetDevice");
}

extern "C" int vlmae_cuda_pci_bus_id(int dev, char *buf, int len) {
    if (cudaDeviceGetPCIBusId(buf, len, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        if (len > 0) buf[0] = 0;
        return -1;
    }
    return 0;
}

extern "C" int vlmae_cuda_probe_add(float *c, const float *a, const float *b, int n) {
    size_t bytes = (size_t)n * sizeof(float);
    float *da = NULL, *db = NULL, *dc = NULL;
    int rc = -1;
    if (check(cudaMalloc(&da, bytes), "cudaMalloc") || check(cudaMalloc(&db, bytes), "cudaMalloc") ||
        check(cudaMalloc(&dc, bytes), "cudaMalloc"))
        goto out;
    if (check(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice), "cudaMemcpy a") ||
        check(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice), "cudaMemcpy b"))
        goto out;
    add_kernel<<<(n + 255) / 256, 256>>>(dc, da, db, n);
    if (check(cudaGetLastError(), "add_kernel launch") ||
        check(cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy c"))
        goto out;
    rc = 0;
out:
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    return rc;
}
