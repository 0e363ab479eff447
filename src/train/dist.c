// dist.c: MPI collectives for data-parallel training (see dist.h).
#include "train/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"  // configure results (VLMAE_HAVE_*)
#include "engine/common.h"

#if VLMAE_HAVE_MPI
#include <mpi.h>

#define mpiCheck(call)                                                                  \
    do {                                                                                \
        int rc_ = (call);                                                               \
        if (rc_ != MPI_SUCCESS) {                                                       \
            char msg_[MPI_MAX_ERROR_STRING];                                            \
            int len_ = 0;                                                               \
            MPI_Error_string(rc_, msg_, &len_);                                         \
            fprintf(stderr, "vlmae: %s:%d: MPI error: %s\n", __FILE__, __LINE__, msg_); \
            MPI_Abort(MPI_COMM_WORLD, 1);                                               \
        }                                                                               \
    } while (0)
#endif

#if VLMAE_HAVE_MPI
static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : fallback;
}
#endif

void dist_init(Dist *d, int *argc, char ***argv) {
    memset(d, 0, sizeof(*d));
    d->world = 1, d->local_world = 1;
#if VLMAE_HAVE_MPI
    int inited = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) die("MPI was already finalized in this process");
    MPI_Initialized(&inited);
    if (!inited) {
        int provided;
        mpiCheck(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
        d->initialized_mpi = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    mpiCheck(MPI_Comm_rank(MPI_COMM_WORLD, &d->rank));
    mpiCheck(MPI_Comm_size(MPI_COMM_WORLD, &d->world));
    MPI_Comm node;
    mpiCheck(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    int lr, lw;
    MPI_Comm_rank(node, &lr);
    MPI_Comm_size(node, &lw);
    MPI_Comm_free(&node);
    // The shared-memory split is right under every launcher; SLURM_LOCALID is not under mpirun
    // inside an allocation (every rank inherits 0), so the environment is only a cross-check.
    d->local_rank = lr;
    int env_lr = env_int("OMPI_COMM_WORLD_LOCAL_RANK", -1);
    if (env_lr >= 0 && env_lr != lr && d->rank == 0)
        fprintf(stderr, "vlmae: note: OMPI_COMM_WORLD_LOCAL_RANK=%d but the node-local rank is %d; using %d\n", env_lr, lr, lr);
    d->local_world = lw;
#else
    (void)argc, (void)argv;
#endif
}

void dist_finalize(Dist *d) {
#if VLMAE_HAVE_MPI
    if (d->initialized_mpi) MPI_Finalize();
#endif
    d->initialized_mpi = 0;
}

void dist_allreduce_sum(const Dist *d, float *x, size_t n) {
    if (d->world == 1) return;
#if VLMAE_HAVE_MPI
    // MPI counts are int: reduce in chunks.
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        int cnt = (int)(n - off < chunk ? n - off : chunk);
        mpiCheck(MPI_Allreduce(MPI_IN_PLACE, x + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
#else
    (void)x, (void)n;
#endif
}

void dist_allreduce_mean(const Dist *d, float *x, size_t n) {
    if (d->world == 1) return;
    dist_allreduce_sum(d, x, n);
#if VLMAE_HAVE_MPI
    float inv = 1.0f / (float)d->world;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) x[i] *= inv;
#else
    (void)x, (void)n;
#endif
}

void dist_allgather(const Dist *d, const float *send, float *recv, size_t n) {
    if (d->world == 1) {
        memmove(recv, send, n * sizeof(float));
        return;
    }
#if VLMAE_HAVE_MPI
    mpiCheck(MPI_Allgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, MPI_COMM_WORLD));
#endif
}

int dist_any(const Dist *d, int flag) {
    if (d->world == 1) return flag != 0;
#if VLMAE_HAVE_MPI
    int in = flag != 0, out = 0;
    mpiCheck(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD));
    return out;
#else
    return flag != 0;
#endif
}

double dist_sum(const Dist *d, double x) {
    if (d->world == 1) return x;
#if VLMAE_HAVE_MPI
    double out = 0.0;
    mpiCheck(MPI_Allreduce(&x, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    return out;
#else
    return x;
#endif
}

void dist_bcast_bytes(const Dist *d, void *buf, size_t n, int root) {
    if (d->world == 1) return;
#if VLMAE_HAVE_MPI
    mpiCheck(MPI_Bcast(buf, (int)n, MPI_BYTE, root, MPI_COMM_WORLD));
#else
    (void)buf, (void)n, (void)root;
#endif
}

void dist_barrier(const Dist *d) {
    if (d->world == 1) return;
#if VLMAE_HAVE_MPI
    mpiCheck(MPI_Barrier(MPI_COMM_WORLD));
#endif
}

void dist_abort(const Dist *d, int code) {
#if VLMAE_HAVE_MPI
    if (d->world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)d;
    exit(code);
}

void dist_abort_now(const Dist *d, int code) {
#if VLMAE_HAVE_MPI
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (d->world > 1 && inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)d;
    _exit(code);
}

int dist_node_distinct(const Dist *d, const void *key, size_t n) {
    if (d->world == 1) return 1;
#if VLMAE_HAVE_MPI
    MPI_Comm node;
    mpiCheck(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    int lw;
    MPI_Comm_size(node, &lw);
    char *all = mallocCheck((size_t)lw * n);
    mpiCheck(MPI_Allgather(key, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, node));
    MPI_Comm_free(&node);
    int distinct = 0;
    for (int i = 0; i < lw; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = !memcmp(all + (size_t)i * n, all + (size_t)j * n, n);
        distinct += !seen;
    }
    free(all);
    return distinct;
#else
    (void)key, (void)n;
    return 1;
#endif
}

// (dist.h) The rare path of the non-finite guards: who saw a bad value, and the lowest one's words.
void dist_nonfinite_where(const Dist *d, int bad, char *what, size_t n) {
    float mine = (float)bad, *all = mallocCheck((size_t)d->world * sizeof(float));
    dist_allgather(d, &mine, all, 1);
    int first = -1, count = 0;
    for (int r = 0; r < d->world; r++)
        if (all[r] != 0.0f) count++, first = first < 0 ? r : first;
    free(all);
    if (first < 0) first = 0;  // (not reached: some rank voted bad)
    dist_bcast_bytes(d, what, n, first);
    size_t k = strlen(what);
    if (d->world > 1 && count == d->world) snprintf(what + k, n - k, " (on all %d ranks)", d->world);
    else if (d->world > 1)
        snprintf(what + k, n - k, " (on rank %d%s of %d)", first, count > 1 ? " and others" : "", d->world);
}
