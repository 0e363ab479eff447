// placement.h: which GPU each rank uses (runtime.device: cuda), one MPI rank per GPU.
//
// The GPU is chosen from the node-local rank BEFORE MPI_Init (placement_bind_early), so that a
// CUDA-aware MPI finds that device current and no rank creates a context on GPU 0. Before
// MPI_Init the local rank can only come from the launcher's environment, the first of
//     OMPI_COMM_WORLD_LOCAL_RANK  (Open MPI's mpirun)
//     MPI_LOCALRANKID             (MPICH / Intel MPI hydra)
//     PMI_LOCAL_RANK              (PMI launchers)
//     SLURM_LOCALID               (srun; last: under mpirun inside an allocation every rank
//                                  inherits the batch step's 0)
// After MPI_Init, placement_check compares it with MPI's shared-memory split (authoritative),
// picks again from the split (binding then if nothing was bound early) and checks that the ranks
// of a node use distinct GPUs.
//
// The rule (placement_pick_gpu): the rank with node-local rank L of S ranks on a node whose
// process sees N GPUs uses GPU L mod N:
//   S <= N      GPU L, one per rank;
//   N == 1      GPU 0: each rank sees one GPU of its own (srun --gpus-per-task=1, --gpu-bind,
//               a per-rank CUDA_VISIBLE_DEVICES); placement_check verifies they are distinct;
//   S > N > 1   an error naming both counts, unless VLMAE_ALLOW_GPU_SHARING=1 (several ranks on
//               one GPU: for debugging; slow, and the memory is shared).
#ifndef VLMAE_PLACEMENT_H
#define VLMAE_PLACEMENT_H

#include <stddef.h>

#include "train/config.h"
#include "train/dist.h"

typedef struct {
    int env_local_rank, env_local_size;  // from the environment, -1 when unknown
    const char *env_var;                 // the variable env_local_rank came from (NULL: none)
    int n_devices;                       // GPUs this process sees (-1: not asked)
    int device;                          // the GPU bound before MPI_Init, -1 when none
} Placement;

// The node-local rank from the launcher's environment (the list above; a value that is not a
// non-negative integer is ignored). Returns 1 with *local_rank, *local_size (-1 when the
// launcher gives none) and *var set, or 0 when no variable is set.
int placement_env_local_rank(int *local_rank, int *local_size, const char **var);
// VLMAE_ALLOW_GPU_SHARING set to anything but "" or "0".
int placement_allow_sharing(void);
// The rule above, as a pure function: the device index, or -1 with a one-line reason in err.
int placement_pick_gpu(int local_rank, int local_size, int n_devices, int allow_sharing, char *err,
                       size_t errlen);
// Before MPI_Init (nothing but the environment and the CUDA runtime): with device cuda and a
// local rank in the environment, make the rule's GPU current. Never fails: what it could not do
// is left to placement_check (p->device stays -1).
void placement_bind_early(Placement *p, RuntimeDevice device);
// After dist_init, on every rank (collective when device is cuda): the checks above. Returns 0;
// -1 with err when the node's placement is wrong (the same error on every rank of the node);
// -2 with err for an error of this rank alone (its launcher's local rank disagrees with MPI's).
// Other devices, and builds without CUDA (backend_open reports those): 0 at once.
int placement_check(Placement *p, const Dist *d, RuntimeDevice device, char *err, size_t errlen);

#endif
