// The CUDA backend's public surface for code outside cuda/ (tests, apps, benchmarks). It
// includes no CUDA header (DESIGN.md §1), so any file may include it; it only links when the
// CUDA backend is built (ZT_HAVE_CUDA).
#pragma once
#include <cstdint>

#include "core/allocator.h"

namespace zt::cuda {

// Number of visible GPUs; 0 when there is none or no usable driver (never throws).
int device_count();
// The major compute capability of a device (9 for H100/H200).
int compute_capability_major(int device);
// Waits until all work queued on the device's current stream has finished.
void synchronize(int device);
// TF32 tensor-core math for f32 GEMM: off by default so f32 results match the CPU to ~1e-5.
void set_allow_tf32(bool allow);
bool allow_tf32();
// How many times the caching allocator has called cudaMalloc since program start: constant
// in steady state, which is how the tests show that cached blocks are reused.
int64_t device_malloc_calls();
// The pinned (page-locked) host allocator, caching, with statistics (Note [Pinned allocator] in
// cuda/pinned_allocator.h): host buffers for fast and asynchronous host<->device copies. Its
// memory is host memory: wrap it as a CPU tensor (StorageImpl's external constructor).
Allocator& pinned_allocator();
// How many times the pinned allocator has called cudaHostAlloc (constant while the cache serves).
int64_t pinned_host_alloc_calls();

}  // namespace zt::cuda
