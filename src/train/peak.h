// peak.h: the dense peak FLOP/s of known GPUs, from their vendors' data sheets, for the MFU that
// `vlmae pretrain` logs and `vlmae bench` reports. MFU = model FLOPs / time / peak: the peak must
// be the dense (no 2:4 sparsity) tensor-core rate of the precision the GEMMs run in, not an
// estimate from clocks, or MFU is not comparable with other trainers' numbers.
#ifndef VLMAE_PEAK_H
#define VLMAE_PEAK_H

// The dense peak of the device called `name` (as cudaGetDeviceProperties reports it, e.g.
// "NVIDIA H100 80GB HBM3"): bf16 tensor cores with fp32 accumulation when bf16, else plain fp32
// (CUDA cores; our fp32 GEMMs do not use TF32). Returns 1 and sets *flops when the device is in
// the table, 0 otherwise (the caller then estimates from clocks and says so).
int device_peak_flops(const char *name, int bf16, double *flops);

#endif
