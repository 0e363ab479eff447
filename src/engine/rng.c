// rng.c: xoshiro256** (Blackman & Vigna) with splitmix64 seeding; see rng.h.
#include "engine/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rng_seed(Rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    // splitmix64 never yields four zero words in a row, but keep the invariant explicit.
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

void rng_seed_stream(Rng *r, uint64_t seed, uint64_t a, uint64_t b) {
    // Hash the three words through splitmix64 chains so that nearby (a, b) give unrelated states.
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ (a * 0xD1B54A32D192ED03ULL);
    h = splitmix64(&x);
    x = h ^ (b * 0x8CB92BA72F3D8DD7ULL);
    h = splitmix64(&x);
    rng_seed(r, h);
}

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t rng_u32(Rng *r) { return (uint32_t)(rng_u64(r) >> 32); }

double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

float rng_uniform_f(Rng *r) { return (float)(rng_u64(r) >> 40) * 0x1.0p-24f; }

double rng_range(Rng *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform(r); }

double rng_normal(Rng *r) {
    double u1 = rng_uniform(r);
    double u2 = rng_uniform(r);
    // 1 - u1 lies in (0, 1], so the log is finite.
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

int64_t rng_randint(Rng *r, int64_t n) {
    if (n <= 1) return 0;
    uint64_t un = (uint64_t)n;
    // Rejection sampling on the top of the range: exact uniformity.
    uint64_t limit = UINT64_MAX - (UINT64_MAX % un);
    uint64_t x;
    do {
        x = rng_u64(r);
    } while (x >= limit);
    return (int64_t)(x % un);
}

int rng_bernoulli(Rng *r, double p) { return rng_uniform(r) < p; }

void rng_shuffle_i32(Rng *r, int32_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_randint(r, (int64_t)i);
        int32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void rng_permutation_i32(Rng *r, int32_t *a, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = (int32_t)i;
    rng_shuffle_i32(r, a, n);
}
