#!/bin/sh
# test_dist.sh: tests/test_dist on 2 MPI ranks (skips without MPI).
set -eu
if [ -z "${MPIEXEC:-}" ]; then echo "SKIP: built without MPI"; exit 77; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
exec $MPIEXEC -np 2 "${top_builddir:-.}/tests/test_dist"
