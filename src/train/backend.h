// backend.h: choosing the op backend (ops.h) of a run from runtime.device / runtime.precision:
// ops_cpu, or ops_cuda on this rank's GPU (local rank modulo the node's GPUs).
#ifndef VLMAE_BACKEND_H
#define VLMAE_BACKEND_H

#include <stddef.h>

#include "engine/ops.h"
#include "train/config.h"

// Returns the backend, or NULL with a message in err (a build without CUDA, no GPU, ...).
// cpu takes only fp32 (bf16 on the CPU is refused rather than silently ignored).
const Ops *backend_open(RuntimeDevice device, Precision precision, int local_rank, char *err,
                        size_t err_len);
void backend_close(const Ops *ops);
// One line for logs: "cpu (fp32)" or "cuda:0 NVIDIA H200 (bf16 GEMMs)". peak_flops: the device's
// estimated dense peak for this precision (FLOP/s), 0 for the CPU (the caller estimates it).
void backend_describe(const Ops *ops, char *line, size_t len, double *peak_flops);

// Device memory in use (MiB) for a device backend; -1 for host memory (use the RSS).
double backend_memory_mib(const Ops *ops);

#endif
