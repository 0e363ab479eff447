// placement.c: the GPU of each rank (see placement.h).
#include "train/placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#if VLMAE_HAVE_CUDA
#include "cuda_probe.h"
#endif

// A non-negative decimal integer, or -1 (unset, empty, or not a number).
static int env_index(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > 1 << 24) return -1;
    return (int)x;
}

int placement_env_local_rank(int *local_rank, int *local_size, const char **var) {
    static const char *const vars[][2] = {{"OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
                                          {"MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
                                          {"PMI_LOCAL_RANK", "PMI_LOCAL_SIZE"},
                                          {"SLURM_LOCALID", NULL}};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        int r = env_index(vars[i][0]);
        if (r < 0) continue;
        int s = vars[i][1] ? env_index(vars[i][1]) : -1;
        *local_rank = r, *local_size = s > r ? s : -1, *var = vars[i][0];
        return 1;
    }
    *local_rank = *local_size = -1, *var = NULL;
    return 0;
}

int placement_allow_sharing(void) {
    const char *v = getenv("VLMAE_ALLOW_GPU_SHARING");
    return v && *v && strcmp(v, "0") != 0;
}

int placement_pick_gpu(int local_rank, int local_size, int n_devices, int allow_sharing, char *err,
                       size_t errlen) {
    if (n_devices < 1) {
        snprintf(err, errlen, "device cuda: no CUDA device is visible (driver or CUDA_VISIBLE_DEVICES)");
        return -1;
    }
    if (local_rank < 0 || local_size < 1 || local_rank >= local_size) {
        snprintf(err, errlen, "invalid node-local rank %d of %d", local_rank, local_size);
        return -1;
    }
    if (local_size <= n_devices || n_devices == 1 || allow_sharing) return local_rank % n_devices;
    snprintf(err, errlen, "%d ranks on this node but only %d GPUs visible to each: one rank per GPU (start at most %d "
             "ranks per node, or set VLMAE_ALLOW_GPU_SHARING=1 to let ranks share GPUs: GPU = local rank mod %d)",
             local_size, n_devices, n_devices, n_devices);
    return -1;
}

void placement_bind_early(Placement *p, RuntimeDevice device) {
    memset(p, 0, sizeof(*p));
    p->n_devices = -1, p->device = -1;
    placement_env_local_rank(&p->env_local_rank, &p->env_local_size, &p->env_var);
#if VLMAE_HAVE_CUDA
    if (device != DEVICE_CUDA || !p->env_var) return;
    p->n_devices = vlmae_cuda_device_count();
    // The node's rank count is often unknown here (srun): at least L + 1. placement_check repeats
    // the choice with MPI's exact count.
    int size = p->env_local_size > p->env_local_rank ? p->env_local_size : p->env_local_rank + 1;
    char err[512];
    int dev = placement_pick_gpu(p->env_local_rank, size, p->n_devices, placement_allow_sharing(), err, sizeof(err));
    if (dev >= 0 && vlmae_cuda_set_device(dev) == 0) p->device = dev;
#else
    (void)device;
#endif
}

int placement_check(Placement *p, const Dist *d, RuntimeDevice device, char *err, size_t errlen) {
#if VLMAE_HAVE_CUDA
    if (device != DEVICE_CUDA) return 0;
    char host[256] = "?";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = 0;
    // This rank's own error, kept until the collective below has been joined by every rank.
    int mine = 0;
    if (p->env_var && p->env_local_rank != d->local_rank) {
        snprintf(err, errlen, "%s=%d but MPI's node-local rank on %s is %d: the launcher's environment does not "
                 "describe this job (e.g. a variable inherited from an enclosing job step), so the GPU chosen "
                 "before MPI_Init is wrong; launch with srun or mpirun directly, or unset %s",
                 p->env_var, p->env_local_rank, host, d->local_rank, p->env_var);
        mine = -2;
    }
    if (p->n_devices < 0) p->n_devices = vlmae_cuda_device_count();
    int allow = placement_allow_sharing();
    char why[512];
    int dev = placement_pick_gpu(d->local_rank, d->local_world, p->n_devices, allow, why, sizeof(why));
    if (!mine && dev < 0) snprintf(err, errlen, "%s: %s", host, why), mine = -1;
    if (!mine && p->device < 0) {  // no local rank before MPI_Init: bind now
        if (vlmae_cuda_set_device(dev) != 0) {
            snprintf(err, errlen, "%s: cannot make CUDA device %d current", host, dev);
            mine = -2;
        } else {
            p->device = dev;
        }
    }
    // Distinct GPUs among the node's ranks (their PCI bus ids), every rank joining.
    char bus[64] = {0};
    if (!mine) vlmae_cuda_pci_bus_id(p->device, bus, (int)sizeof(bus));
    else snprintf(bus, sizeof(bus), "error on rank %d", d->rank);  // distinct from every id
    int distinct = dist_node_distinct(d, bus, sizeof(bus));
    if (!mine && !allow && distinct < d->local_world) {
        const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
        snprintf(err, errlen, "%d ranks on %s share %d GPU(s) (each rank sees %d; CUDA_VISIBLE_DEVICES=%s): one rank "
                 "per GPU (start at most %d ranks per node, or set VLMAE_ALLOW_GPU_SHARING=1 to let ranks share GPUs)",
                 d->local_world, host, distinct, p->n_devices, cvd ? cvd : "(unset)", distinct);
        mine = -1;
    }
    return mine;
#else
    (void)p, (void)d, (void)device, (void)err, (void)errlen;
    return 0;  // (device cuda: backend_open explains that this build has no CUDA)
#endif
}
