// test_placement: which GPU a rank uses (src/train/placement.h), on the CPU: the pure rule
// placement_pick_gpu over (local rank, ranks on the node, visible GPUs, sharing allowed), the
// launcher variables it reads before MPI_Init and their order, and VLMAE_ALLOW_GPU_SHARING.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/placement.h"

#include "check.h"

static const char *const VARS[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALRANKID",
                                   "MPI_LOCALNRANKS", "PMI_LOCAL_RANK", "PMI_LOCAL_SIZE", "SLURM_LOCALID",
                                   "VLMAE_ALLOW_GPU_SHARING"};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof(VARS) / sizeof(VARS[0]); i++) unsetenv(VARS[i]);
}

static int pick(int l, int s, int n, int allow, char *err) {
    err[0] = 0;
    return placement_pick_gpu(l, s, n, allow, err, 512);
}

static void test_rule(void) {
    char err[512];
    // One GPU per rank: GPU = local rank.
    for (int l = 0; l < 8; l++) CHECK(pick(l, 8, 8, 0, err) == l);
    for (int l = 0; l < 4; l++) CHECK(pick(l, 4, 8, 0, err) == l);  // fewer ranks than GPUs
    CHECK(pick(0, 1, 1, 0, err) == 0);
    // Each rank sees one GPU of its own (srun --gpus-per-task=1): GPU 0 (distinctness is checked
    // after MPI_Init across the node).
    for (int l = 0; l < 8; l++) CHECK(pick(l, 8, 1, 0, err) == 0);
    // More ranks than GPUs: an error naming both counts and the override.
    CHECK(pick(5, 8, 4, 0, err) == -1);
    CHECKF(strstr(err, "8 ranks on this node but only 4 GPUs") && strstr(err, "VLMAE_ALLOW_GPU_SHARING=1"), "%s", err);
    CHECK(pick(0, 3, 2, 0, err) == -1);  // also for the ranks that would get a GPU of their own
    CHECKF(strstr(err, "3 ranks on this node but only 2 GPUs"), "%s", err);
    // ... unless sharing is allowed: local rank mod GPUs.
    for (int l = 0; l < 8; l++) CHECK(pick(l, 8, 4, 1, err) == l % 4);
    CHECK(pick(2, 3, 2, 1, err) == 0);
    // No GPU, nonsense ranks.
    CHECK(pick(0, 1, 0, 0, err) == -1);
    CHECKF(strstr(err, "no CUDA device is visible"), "%s", err);
    CHECK(pick(0, 1, 0, 1, err) == -1);
    CHECK(pick(-1, 2, 2, 0, err) == -1);
    CHECK(pick(2, 2, 2, 0, err) == -1);
    CHECK(pick(0, 0, 2, 0, err) == -1);
    ok("placement_pick_gpu: GPU = local rank; one visible GPU each; more ranks than GPUs an error unless shared");
}

static void test_env(void) {
    int r, s;
    const char *var;
    clear_env();
    CHECK(placement_env_local_rank(&r, &s, &var) == 0 && r == -1 && s == -1 && var == NULL);
    setenv("SLURM_LOCALID", "3", 1);
    CHECK(placement_env_local_rank(&r, &s, &var) == 1 && r == 3 && s == -1 && !strcmp(var, "SLURM_LOCALID"));
    // A launcher's own variable wins over SLURM_LOCALID (mpirun inside an allocation: inherited 0).
    setenv("SLURM_LOCALID", "0", 1);
    setenv("PMI_LOCAL_RANK", "2", 1);
    setenv("PMI_LOCAL_SIZE", "4", 1);
    CHECK(placement_env_local_rank(&r, &s, &var) == 1 && r == 2 && s == 4 && !strcmp(var, "PMI_LOCAL_RANK"));
    setenv("MPI_LOCALRANKID", "1", 1);
    setenv("MPI_LOCALNRANKS", "6", 1);
    CHECK(placement_env_local_rank(&r, &s, &var) == 1 && r == 1 && s == 6 && !strcmp(var, "MPI_LOCALRANKID"));
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "8", 1);
    CHECK(placement_env_local_rank(&r, &s, &var) == 1 && r == 5 && s == 8 &&
          !strcmp(var, "OMPI_COMM_WORLD_LOCAL_RANK"));
    // A size that cannot hold the rank is ignored; values that are not numbers are skipped.
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "5", 1);
    CHECK(placement_env_local_rank(&r, &s, &var) == 1 && r == 5 && s == -1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "x1", 1);
    CHECK(placement_env_local_rank(&r, &s, &var) == 1 && r == 1 && !strcmp(var, "MPI_LOCALRANKID"));
    setenv("MPI_LOCALRANKID", "", 1);
    setenv("PMI_LOCAL_RANK", "-1", 1);
    CHECK(placement_env_local_rank(&r, &s, &var) == 1 && r == 0 && !strcmp(var, "SLURM_LOCALID"));
    setenv("SLURM_LOCALID", "2junk", 1);
    CHECK(placement_env_local_rank(&r, &s, &var) == 0);

    clear_env();
    CHECK(!placement_allow_sharing());
    setenv("VLMAE_ALLOW_GPU_SHARING", "0", 1);
    CHECK(!placement_allow_sharing());
    setenv("VLMAE_ALLOW_GPU_SHARING", "", 1);
    CHECK(!placement_allow_sharing());
    setenv("VLMAE_ALLOW_GPU_SHARING", "1", 1);
    CHECK(placement_allow_sharing());
    clear_env();
    ok("launcher local rank: OMPI > MPI_LOCALRANKID > PMI_LOCAL_RANK > SLURM_LOCALID; bad values skipped; sharing switch");
}

// Devices other than cuda need nothing: no binding, no check, no collective.
static void test_cpu(void) {
    clear_env();
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    Placement p;
    placement_bind_early(&p, DEVICE_CPU);
    CHECK(p.device == -1 && p.env_local_rank == 1);
    Dist d = {.rank = 0, .world = 1, .local_rank = 0, .local_world = 1};
    char err[256] = "";
    CHECK(placement_check(&p, &d, DEVICE_CPU, err, sizeof(err)) == 0);
    CHECK(placement_check(&p, &d, DEVICE_GUARD, err, sizeof(err)) == 0);
    clear_env();
    ok("runtime.device cpu / guard: no GPU binding and no placement check");
}

int main(void) {
    test_rule();
    test_env();
    test_cpu();
    return failures ? 1 : 0;
}
