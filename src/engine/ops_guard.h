// ops_guard.h: a checking backend (runtime.device: guard, and tests/test_device_step): ops_cpu's
// arithmetic on "device" memory that host code cannot touch. Every mem_alloc comes from one
// region mapped twice: the addresses handed out are PROT_NONE, so host code that reads or writes
// a device pointer directly (what would be a wild access on a GPU) dies with SIGSEGV, named by a
// handler; the backend's members translate each pointer to a read-write alias of the same memory
// before calling ops_cpu. Every pointer an op receives must lie in the region (a host pointer
// handed to a device op is reported by name), and the copies check their direction (h2d: host
// source, device destination, ...). Otherwise it computes exactly what ops_cpu computes, bit for
// bit, so a step on ops_guard must equal the same step on ops_cpu. This is how the
// device-resident step is proven on a machine without a GPU: a debugging aid, never a production
// backend (Linux only: memfd_create).
#ifndef VLMAE_OPS_GUARD_H
#define VLMAE_OPS_GUARD_H

#include <stddef.h>

#include "engine/ops.h"

extern const Ops ops_guard;

// Reserve the region (bytes of address space, not memory) and install a SIGSEGV handler that
// names the fault as a host access to device memory. Call once before using ops_guard; later
// calls do nothing.
void ops_guard_init(size_t reserve_bytes);
size_t ops_guard_used(void);   // bytes handed out so far (since the last reset)
// Forget every allocation (the caller has freed them all): later ones reuse the region. Freed
// blocks are otherwise never reused (a bump allocator), so a long test resets between runs.
void ops_guard_reset(void);
long ops_guard_calls(void);    // device pointers translated so far (>= backend calls)

#endif
