// rng.h: the one random number generator of vlmae (xoshiro256** seeded through splitmix64).
//
// Every random choice in the program (augmentation, masking, MLM masks, ITM negatives, epoch
// permutations, the synthetic dataset) draws from an Rng owned by the caller, so a result is
// reproducible from its seed. The state is a plain struct: copy it to fork a stream, store it in a
// checkpoint to resume. rng_seed_stream() derives independent streams from (seed, a, b), e.g.
// (run seed, epoch, sample index), so a sample's augmentation does not depend on which loader
// thread or rank handled it, nor on what was drawn before.
#ifndef VLMAE_RNG_H
#define VLMAE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

// Seed from one 64-bit value (splitmix64 expansion; any seed, including 0, is fine).
void rng_seed(Rng *r, uint64_t seed);
// Seed an independent stream from (seed, a, b), e.g. (seed, epoch, index).
void rng_seed_stream(Rng *r, uint64_t seed, uint64_t a, uint64_t b);

uint64_t rng_u64(Rng *r);
uint32_t rng_u32(Rng *r);
// Uniform double in [0, 1) with 53 random bits.
double rng_uniform(Rng *r);
// Uniform float in [0, 1) with 24 random bits.
float rng_uniform_f(Rng *r);
// Uniform double in [lo, hi).
double rng_range(Rng *r, double lo, double hi);
// Standard normal (Box-Muller, one value per call; two uniforms consumed).
double rng_normal(Rng *r);
// Uniform integer in [0, n) without modulo bias; n must be > 0. Returns 0 for n <= 1.
int64_t rng_randint(Rng *r, int64_t n);
// 1 with probability p, else 0 (consumes one uniform draw whatever p is).
int rng_bernoulli(Rng *r, double p);
// Fisher-Yates shuffle in place.
void rng_shuffle_i32(Rng *r, int32_t *a, size_t n);
// a[i] = i, then shuffled: a uniformly random permutation of 0..n-1.
void rng_permutation_i32(Rng *r, int32_t *a, size_t n);

#endif
