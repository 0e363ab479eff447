// nccl_dist.h: GPU collectives for data-parallel training over NCCL (kernels/nccl_dist.cu).
// Callable from C; needs no MPI header: the MPI side (src/train/dist.c) moves the unique id.
//
// Setup, one process (rank) per GPU, after cuda_backend_init() chose the device:
//     char id[NCCL_DIST_ID_BYTES];
//     if (rank == 0) nccl_dist_unique_id(id);
//     MPI_Bcast(id, NCCL_DIST_ID_BYTES, MPI_BYTE, 0, MPI_COMM_WORLD);   // dist_bcast_bytes
//     NcclDist *nd = nccl_dist_create(id, rank, world);
// Every collective is enqueued on the CUDA backend's stream (ops_cuda.h), in order with the ops,
// and returns at once; cuda_synchronize() (or any op returning a host value) waits for it.
//
// Built without NCCL (VLMAE_HAVE_NCCL 0), nccl_dist_available() is 0 and every other function
// prints a message and exits.
#ifndef VLMAE_NCCL_DIST_H
#define VLMAE_NCCL_DIST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// The size of ncclUniqueId (NCCL_UNIQUE_ID_BYTES, 128 in every NCCL release).
#define NCCL_DIST_ID_BYTES 128

typedef struct NcclDist NcclDist;

int nccl_dist_available(void);
// Rank 0 only: a fresh unique id into id (NCCL_DIST_ID_BYTES bytes).
void nccl_dist_unique_id(void *id);
// Every rank, with the id rank 0 made (collective: blocks until all ranks have joined).
NcclDist *nccl_dist_create(const void *id, int rank, int world);
void nccl_dist_destroy(NcclDist *d);

// In place: x (n, device) <- mean over ranks, in buckets of at most bucket_elems values (0: one
// call per 2^28 values), so a caller can also reduce a prefix of the gradients as soon as
// backward has finished it. All ranks must call with the same n and bucket size.
void nccl_allreduce_mean(NcclDist *d, float *x, size_t n, size_t bucket_elems);
// recv (world * n, device) <- every rank's send (n, device), in rank order.
void nccl_allgather(NcclDist *d, const float *send, float *recv, size_t n);
// Sum over ranks of one int (host in, host out; waits): e.g. "any rank saw a non-finite value".
int nccl_sum_int(NcclDist *d, int x);
// The communicator's asynchronous error state (ncclCommGetAsyncError): 0 while it is healthy; 1
// with a one-line reason in msg (n bytes) when NCCL reported an error (a peer or the network
// failed: the communicator is unusable and its pending collectives may never complete). Cheap
// and callable from another thread while collectives run: the watchdog (src/train/watchdog.h)
// polls it. Built without NCCL: always 0.
int nccl_dist_async_error(NcclDist *d, char *msg, size_t n);

#ifdef __cplusplus
}
#endif

#endif
