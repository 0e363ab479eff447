// ops_guard.h: a checking backend for tests: ops_cpu's arithmetic on "device" memory that host
// code cannot touch. Every mem_alloc comes from one reserved region that is PROT_NONE except
// while a backend member runs, so host code that reads or writes a device pointer directly
// (what would be a wild access on a GPU) dies with SIGSEGV; every pointer an op receives must lie
// in that region, and the copies check their direction (h2d: host source, device destination,
// ...). Otherwise it computes exactly what ops_cpu computes, bit for bit, so a step on ops_guard
// must equal the same step on ops_cpu. This is how the device-resident step is proven on a
// machine without a GPU.
#ifndef VLMAE_OPS_GUARD_H
#define VLMAE_OPS_GUARD_H

#include <stddef.h>

#include "ops.h"

extern const Ops ops_guard;

// Reserve the region (bytes of address space, not memory) and install a SIGSEGV handler that
// names the fault as a host access to device memory. Call once before using ops_guard.
void ops_guard_init(size_t reserve_bytes);
size_t ops_guard_used(void);   // bytes handed out so far (since the last reset)
// Forget every allocation (the caller has freed them all): later ones reuse the region. Freed
// blocks are otherwise never reused, and each backend call re-protects all of the used region,
// so a long test resets between independent runs.
void ops_guard_reset(void);
long ops_guard_calls(void);    // backend calls made so far

#endif
