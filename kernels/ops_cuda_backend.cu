// ops_cuda_backend.cu: the CUDA backend's state and lifetime (device selection, stream, cuBLAS
// handle, workspace, the device scalars the host-returning ops read back) and device memory
// (cudaMalloc / cudaMemsetAsync / cudaMemcpy(2D)Async on the backend stream). The declarations
// are in ops_cuda.h (callable from C) and ops_cuda_internal.h (the other kernels/ops_cuda*.cu).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_cuda_internal.h"

// ---------------------------------------------------------------------------------------------
// Backend state.

namespace ops_cuda_internal {
CudaBackend be;
}

void not_ready(const char *what) {
    fprintf(stderr, "vlmae: ops_cuda: %s called before cuda_backend_init()\n", what);
    exit(1);
}

// The workspace: one device block reused by every op (ops run in stream order, so one op's use
// ends before the next op's kernels start). Growing it waits for the stream first, since
// kernels already queued may still read the old block.
char *workspace(size_t bytes) {
    if (bytes > be.ws_cap) {
        cudaCheck(cudaStreamSynchronize(be.stream));
        if (be.ws) cudaCheck(cudaFree(be.ws));
        size_t cap = bytes + bytes / 4 + ((size_t)1 << 20);
        cudaCheck(cudaMalloc((void **)&be.ws, cap));
        be.ws_cap = cap;
    }
    return be.ws;
}

// Copy the device scalars to the host, wait, and check the error flag.
const DevScalars *fetch_scalars(void) {
    cudaCheck(cudaMemcpyAsync(be.hsc, be.dsc, sizeof(DevScalars), cudaMemcpyDeviceToHost, be.stream));
    cudaCheck(cudaStreamSynchronize(be.stream));
    if (be.hsc->err) {
        fprintf(stderr, "vlmae: ops_cuda: xent: a label outside [0, V) (device check)\n");
        exit(1);
    }
    return be.hsc;
}

// ---------------------------------------------------------------------------------------------
// Backend lifetime and device memory (ops_cuda.h).

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the error so later calls start clean
        return 0;
    }
    return n;
}

extern "C" int cuda_backend_init(int device, int bf16) {
    if (be.ready) {
        if (device != be.device)
            fprintf(stderr, "vlmae: ops_cuda: already initialised on device %d (not %d)\n", be.device,
                    device);
        be.bf16 = bf16 ? 1 : 0;
        return 0;
    }
    int n = cuda_device_count();
    if (device < 0 || device >= n) {
        fprintf(stderr, "vlmae: ops_cuda: no CUDA device %d (%d found)\n", device, n);
        return -1;
    }
    cudaCheck(cudaSetDevice(device));
    cudaCheck(cudaStreamCreate(&be.stream));
    cublasCheck(cublasCreate(&be.blas));
    cublasCheck(cublasSetStream(be.blas, be.stream));
    cublasCheck(cublasSetPointerMode(be.blas, CUBLAS_POINTER_MODE_HOST));
    cudaCheck(cudaMalloc((void **)&be.dsc, sizeof(DevScalars)));
    cudaCheck(cudaMemset(be.dsc, 0, sizeof(DevScalars)));
    cudaCheck(cudaMallocHost((void **)&be.hsc, sizeof(DevScalars)));
    memset(be.hsc, 0, sizeof(DevScalars));
    int max_pitch = 0;
    cudaCheck(cudaDeviceGetAttribute(&max_pitch, cudaDevAttrMaxPitch, device));
    be.max_pitch = max_pitch > 0 ? (size_t)max_pitch : 0;
    be.device = device;
    be.bf16 = bf16 ? 1 : 0;
    const char *det = getenv("VLMAE_CUDA_DETERMINISTIC");
    be.deterministic = det && *det && strcmp(det, "0") != 0;
    be.ready = 1;
    workspace((size_t)16 << 20);
    return 0;
}

extern "C" void cuda_backend_shutdown(void) {
    if (!be.ready) return;
    cudaCheck(cudaStreamSynchronize(be.stream));
    if (be.ws) cudaCheck(cudaFree(be.ws));
    cudaCheck(cudaFree(be.dsc));
    cudaCheck(cudaFreeHost(be.hsc));
    cublasCheck(cublasDestroy(be.blas));
    cudaCheck(cudaStreamDestroy(be.stream));
    memset(&be, 0, sizeof(be));
}

extern "C" int cuda_backend_bf16(void) { return be.bf16; }
extern "C" void cuda_set_bf16(int bf16) { be.bf16 = bf16 ? 1 : 0; }
extern "C" void cuda_set_deterministic(int on) { be.deterministic = on ? 1 : 0; }
extern "C" void *cuda_backend_stream(void) { return (void *)be.stream; }

extern "C" void cuda_reserve_workspace(size_t bytes) {
    READY();
    workspace(bytes);
}

extern "C" void cuda_device_info(char *name, size_t name_len, double *peak_bf16, double *peak_fp32) {
    cudaDeviceProp prop;
    int dev = be.ready ? be.device : 0;
    cudaCheck(cudaGetDeviceProperties(&prop, dev));
    if (name && name_len) snprintf(name, name_len, "%s", prop.name);
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev) != cudaSuccess || khz <= 0) {
        (void)cudaGetLastError();
        khz = 1500000;
    }
    // Dense FLOPs per clock per SM: Hopper 4096 bf16 (tensor cores) / 256 fp32; Ampere and
    // Ada 2048 / 256 (A100: 128 fp32 lanes -> 256 would overstate it; close enough for MFU).
    double bf16_clk = prop.major >= 9 ? 4096.0 : prop.major == 8 ? 2048.0 : 1024.0;
    double fp32_clk = prop.major == 8 && prop.minor == 0 ? 128.0 : 256.0;
    double hz = khz * 1e3, sms = prop.multiProcessorCount;
    if (peak_bf16) *peak_bf16 = sms * hz * bf16_clk;
    if (peak_fp32) *peak_fp32 = sms * hz * fp32_clk;
}

extern "C" size_t cuda_memory_used(void) {
    size_t free_b = 0, total_b = 0;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    return total_b - free_b;
}

extern "C" void *cuda_malloc(size_t bytes) {
    READY();  // before init cudaMalloc would silently pick device 0, whatever the rank's device
    // 0 bytes: NULL, which every member accepts for a 0-byte region (copies, zero and free
    // return before touching it).
    if (!bytes) return NULL;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
        // Out of memory is the usual cause (a batch too large for the card): say how much.
        size_t fr = 0, tot = 0;
        if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) fr = tot = 0;
        fprintf(stderr, "vlmae: %s:%d: cudaMalloc of %zu bytes failed: %s (%s); device %d has %zu "
                "of %zu MiB free\n", __FILE__, __LINE__, bytes, cudaGetErrorName(err),
                cudaGetErrorString(err), be.device, fr >> 20, tot >> 20);
        exit(1);
    }
    return p;
}

extern "C" void cuda_free(void *p) {
    if (p) cudaCheck(cudaFree(p));
}

extern "C" void *cuda_malloc_host(size_t bytes) {
    if (!bytes) return NULL;
    void *p = NULL;
    cudaCheck(cudaMallocHost(&p, bytes));
    return p;
}

extern "C" void cuda_free_host(void *p) {
    if (p) cudaCheck(cudaFreeHost(p));
}

extern "C" void cuda_memset(void *dst, int value, size_t bytes) {
    READY();
    if (bytes) cudaCheck(cudaMemsetAsync(dst, value, bytes, be.stream));
}

extern "C" void cuda_memcpy_h2d(void *dst, const void *src, size_t bytes) {
    READY();
    if (bytes) cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, be.stream));
}

extern "C" void cuda_memcpy_h2d_sync(void *dst, const void *src, size_t bytes) {
    READY();
    if (!bytes) return;
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, be.stream));
    cudaCheck(cudaStreamSynchronize(be.stream));
}

extern "C" void cuda_memcpy_d2h(void *dst, const void *src, size_t bytes) {
    READY();
    if (!bytes) return;
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, be.stream));
    cudaCheck(cudaStreamSynchronize(be.stream));
}

extern "C" void cuda_memcpy_d2d(void *dst, const void *src, size_t bytes) {
    READY();
    if (bytes) cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, be.stream));
}

extern "C" void cuda_memcpy_d2h_2d(void *dst, size_t dpitch, const void *src, size_t spitch,
                                   size_t width, size_t rows) {
    READY();
    if (!width || !rows) return;
    if (rows == 1 || (spitch == width && dpitch == width)) {
        // one row, or rows back to back on both sides: a plain copy (no pitch limits apply)
        cuda_memcpy_d2h(dst, src, width * rows);
        return;
    }
    if (width > spitch || width > dpitch) {
        fprintf(stderr, "vlmae: ops_cuda: copy_d2h_2d: rows of %zu bytes are wider than the "
                "source pitch %zu or the destination pitch %zu\n", width, spitch, dpitch);
        exit(1);
    }
    if (spitch <= be.max_pitch && dpitch <= be.max_pitch) {
        cudaCheck(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToHost,
                                    be.stream));
    } else {  // a pitch beyond cudaMemcpy2D's limit (cudaDevAttrMaxPitch, ~2 GiB): row by row
        for (size_t r = 0; r < rows; r++)
            cudaCheck(cudaMemcpyAsync((char *)dst + r * dpitch, (const char *)src + r * spitch, width,
                                      cudaMemcpyDeviceToHost, be.stream));
    }
    cudaCheck(cudaStreamSynchronize(be.stream));  // dst holds the data on return
}

extern "C" void cuda_synchronize(void) {
    READY();
    fetch_scalars();  // waits for the stream and checks the device-side error flag
}
