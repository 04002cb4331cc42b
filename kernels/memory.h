// Host memory for tensors: 64-byte aligned blocks from a size-bucketed cache, so large
// activations are reused step after step instead of page-faulting as fresh pages.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mnemo::kernels {

inline constexpr size_t kAlignment = 64;

void* cpu_alloc(size_t bytes);          // never null; throws std::bad_alloc
void cpu_free(void* p, size_t bytes);   // bytes as passed to cpu_alloc

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
