// cuda_probe.h: the smallest real CUDA code in vlmae (kernels/cuda_probe.cu). It proves that .cu
// files compile, link into libvlmae.a and run, and tells tests whether a GPU is present.
#ifndef VLMAE_CUDA_PROBE_H
#define VLMAE_CUDA_PROBE_H

#ifdef __cplusplus
extern "C" {
#endif

// Number of CUDA devices; 0 when there is none or no driver (any CUDA error).
int vlmae_cuda_device_count(void);

// Rank placement (src/train/placement.c): make device dev the calling process's current device
// (cudaSetDevice; with CUDA >= 12 this also creates its primary context). Called before
// MPI_Init, so that a CUDA-aware MPI finds the right device current. 0, or -1 (printed).
int vlmae_cuda_set_device(int dev);
// The PCI bus id of device dev ("0000:3b:00.0") into buf (len bytes); creates no context.
// 0, or -1 when there is no such device.
int vlmae_cuda_pci_bus_id(int dev, char *buf, int len);

// c = a + b for n floats (host arrays), computed by a kernel on the current device.
// Returns 0 on success, -1 on a CUDA error (printed to stderr).
int vlmae_cuda_probe_add(float *c, const float *a, const float *b, int n);

#ifdef __cplusplus
}
#endif

#endif
