// Host memory for tensors: 64-byte aligned blocks from a size-bucketed cache, so large
// activations are reused step after step instead of page-faulting as fresh pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mnemo::kernels {

inline constexpr size_t kAlignment = 64;

void* cpu_alloc(size_t bytes);          // never null; throws std::bad_alloc
void cpu_free(void* p, size_t bytes);   // bytes as passed to cpu_alloc

// Scratch buffers for kernels from the same cache: std::vector's own storage is only 16-byte
// aligned, so every 64-byte vector load of a tile would straddle two cache lines.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(cpu_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { cpu_free(p, n * sizeof(T)); }
  friend bool operator==(const AlignedAllocator&, const AlignedAllocator&) { return true; }
};
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

struct MemoryStats {
  size_t live_bytes = 0;      // handed out and not yet freed
  size_t peak_live_bytes = 0;
  size_t cached_bytes = 0;    // freed blocks kept for reuse
  uint64_t allocations = 0;
  uint64_t cache_hits = 0;
};
MemoryStats memory_stats();
void reset_peak_memory();
void empty_cache();             // returns every cached block to the system

}  // namespace mnemo::kernels
