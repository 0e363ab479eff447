// dist.h: the data-parallel collectives of training, over MPI (CPU) — one process per rank.
// Without MPI (configure --without-mpi) or without a launcher every call is the single-rank
// identity, so the same program runs standalone and under mpirun / srun.
#ifndef VLMAE_DIST_H
#define VLMAE_DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, world;
    int local_rank, local_world;  // within the node (GPU selection)
    int initialized_mpi;          // we called MPI_Init (and so call MPI_Finalize)
} Dist;

void dist_init(Dist *d, int *argc, char ***argv);
void dist_finalize(Dist *d);
// In place: x (n) <- mean over ranks of x.
void dist_allreduce_mean(const Dist *d, float *x, size_t n);
// In place: x (n) <- sum over ranks of x.
void dist_allreduce_sum(const Dist *d, float *x, size_t n);
// recv (world * n) <- every rank's send (n), in rank order.
void dist_allgather(const Dist *d, const float *send, float *recv, size_t n);
// Logical OR of a flag over ranks (every rank gets the same answer).
int dist_any(const Dist *d, int flag);
// Sum of a double over ranks.
double dist_sum(const Dist *d, double x);
void dist_bcast_bytes(const Dist *d, void *buf, size_t n, int root);
void dist_barrier(const Dist *d);
// The non-finite guards' report, after dist_any found a bad value (collective): every rank gets
// the `what` (n bytes) of the lowest rank that saw one, followed by " (on rank R of W)",
// " (on rank R and others of W)" or " (on all W ranks)"; nothing is added on a single rank.
void dist_nonfinite_where(const Dist *d, int bad, char *what, size_t n);
// Abort every rank (a fatal error on one rank must not leave the others waiting).
void dist_abort(const Dist *d, int code);
// The same from any thread (the watchdog, src/train/watchdog.h), while the main thread may be
// blocked inside a collective: MPI_Abort when several ranks run, otherwise _exit(code) (no atexit
// handlers, no stdio flush: the blocked thread may hold their locks). Does not return.
void dist_abort_now(const Dist *d, int code);
// How many different keys (n bytes each) the ranks of this node hold (collective over every
// rank): e.g. whether the node's ranks use distinct GPUs. 1 on a single rank.
int dist_node_distinct(const Dist *d, const void *key, size_t n);

#endif
