// hash_uniform.h: a counter-based uniform draw, u(seed, i) in [0, 1), shared by the CPU and CUDA
// backends so that a dropout mask depends only on (seed, index): both backends draw the same
// mask, whatever the thread or launch shape. splitmix64 of the seed and the index, 24 bits
// (exact in fp32).
#ifndef VLMAE_HASH_UNIFORM_H
#define VLMAE_HASH_UNIFORM_H

#include <stdint.h>

#ifdef __CUDACC__
#define VLMAE_HOST_DEVICE static __host__ __device__ __forceinline__
#else
#define VLMAE_HOST_DEVICE static inline
#endif

VLMAE_HOST_DEVICE uint64_t hash_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

VLMAE_HOST_DEVICE float hash_uniform(uint64_t seed, uint64_t i) {
    uint64_t s = hash_mix64(seed + 0x9E3779B97F4A7C15ull);
    uint64_t z = hash_mix64(s + (i + 1) * 0x9E3779B97F4A7C15ull);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

#endif
