// nccl_dist.cu: NCCL collectives for data-parallel training (see nccl_dist.h).
//
// The mean all-reduce uses ncclAvg (NCCL >= 2.10): NCCL sums and divides by the number of ranks
// inside the collective, and every rank receives the same bits, so parameters updated from the
// averaged gradients stay bit-identical across ranks. Older NCCL: ncclSum, then a scale kernel
// (also identical on every rank).
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"  // VLMAE_HAVE_NCCL
#include "cuda_common.h"
#include "nccl_dist.h"
#include "ops_cuda.h"

#if VLMAE_HAVE_NCCL
#include <nccl.h>

static_assert(sizeof(ncclUniqueId) == NCCL_DIST_ID_BYTES, "ncclUniqueId size changed");

struct NcclDist {
    ncclComm_t comm;
    int rank, world;
    int *dint;  // device scratch for nccl_sum_int
};

static cudaStream_t stream(void) { return (cudaStream_t)cuda_backend_stream(); }

extern "C" int nccl_dist_available(void) { return 1; }

extern "C" void nccl_dist_unique_id(void *id) {
    ncclUniqueId u;
    ncclCheck(ncclGetUniqueId(&u));
    memcpy(id, &u, sizeof(u));
}

extern "C" NcclDist *nccl_dist_create(const void *id, int rank, int world) {
    if (!cuda_backend_stream()) {
        fprintf(stderr, "vlmae: nccl_dist_create: initialise the CUDA backend first\n");
        exit(1);
    }
    NcclDist *d = (NcclDist *)calloc(1, sizeof(NcclDist));
    if (!d) {
        fprintf(stderr, "vlmae: nccl_dist_create: out of memory\n");
        exit(1);
    }
    ncclUniqueId u;
    memcpy(&u, id, sizeof(u));
    ncclCheck(ncclCommInitRank(&d->comm, world, u, rank));
    d->rank = rank, d->world = world;
    cudaCheck(cudaMalloc((void **)&d->dint, sizeof(int)));
    return d;
}

extern "C" void nccl_dist_destroy(NcclDist *d) {
    if (!d) return;
    cudaCheck(cudaStreamSynchronize(stream()));
    ncclCheck(ncclCommDestroy(d->comm));
    cudaCheck(cudaFree(d->dint));
    free(d);
}

extern "C" void nccl_allreduce_mean(NcclDist *d, float *x, size_t n, size_t bucket_elems) {
    if (!n) return;
    if (!bucket_elems) bucket_elems = (size_t)1 << 28;
    for (size_t off = 0; off < n; off += bucket_elems) {
        size_t cnt = n - off < bucket_elems ? n - off : bucket_elems;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
        ncclCheck(ncclAllReduce(x + off, x + off, cnt, ncclFloat32, ncclAvg, d->comm, stream()));
#else
        ncclCheck(ncclAllReduce(x + off, x + off, cnt, ncclFloat32, ncclSum, d->comm, stream()));
        cuda_scale(x + off, 1.0f / (float)d->world, cnt);
#endif
    }
}

extern "C" void nccl_allgather(NcclDist *d, const float *send, float *recv, size_t n) {
    if (!n) return;
    ncclCheck(ncclAllGather(send, recv, n, ncclFloat32, d->comm, stream()));
}

extern "C" int nccl_sum_int(NcclDist *d, int x) {
    int h = x;
    cudaCheck(cudaMemcpyAsync(d->dint, &h, sizeof(int), cudaMemcpyHostToDevice, stream()));
    ncclCheck(ncclAllReduce(d->dint, d->dint, 1, ncclInt32, ncclSum, d->comm, stream()));
    cudaCheck(cudaMemcpyAsync(&h, d->dint, sizeof(int), cudaMemcpyDeviceToHost, stream()));
    cudaCheck(cudaStreamSynchronize(stream()));
    return h;
}

extern "C" int nccl_dist_async_error(NcclDist *d, char *msg, size_t n) {
    if (!d) return 0;
    ncclResult_t async = ncclSuccess, r = ncclCommGetAsyncError(d->comm, &async);
    if (r != ncclSuccess) {
        snprintf(msg, n, "NCCL: ncclCommGetAsyncError failed: %s", ncclGetErrorString(r));
        return 1;
    }
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
    if (async == ncclInProgress) return 0;  // (non-blocking communicators only: still working)
#endif
    if (async == ncclSuccess) return 0;
    snprintf(msg, n, "NCCL asynchronous error on rank %d of %d: %s", d->rank, d->world, ncclGetErrorString(async));
    return 1;
}

#else  // built without NCCL

static void no_nccl(const char *what) {
    fprintf(stderr, "vlmae: %s: this vlmae was built without NCCL (configure --with-nccl)\n", what);
    exit(1);
}

extern "C" int nccl_dist_available(void) { return 0; }
extern "C" void nccl_dist_unique_id(void *id) { (void)id, no_nccl(__func__); }
extern "C" NcclDist *nccl_dist_create(const void *id, int rank, int world) {
    (void)id, (void)rank, (void)world, no_nccl(__func__);
    return NULL;
}
extern "C" void nccl_dist_destroy(NcclDist *d) { (void)d; }
extern "C" void nccl_allreduce_mean(NcclDist *d, float *x, size_t n, size_t bucket_elems) {
    (void)d, (void)x, (void)n, (void)bucket_elems, no_nccl(__func__);
}
extern "C" void nccl_allgather(NcclDist *d, const float *send, float *recv, size_t n) {
    (void)d, (void)send, (void)recv, (void)n, no_nccl(__func__);
}
extern "C" int nccl_sum_int(NcclDist *d, int x) {
    (void)d, (void)x, no_nccl(__func__);
    return 0;
}
extern "C" int nccl_dist_async_error(NcclDist *d, char *msg, size_t n) {
    (void)d, (void)msg, (void)n;
    return 0;
}

#endif
