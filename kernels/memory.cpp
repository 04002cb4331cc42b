// The caching host allocator. Sizes are rounded to a bucket (64-byte steps up to 4 KiB,
// then eight steps per power of two, so at most 12.5% is wasted) and freed blocks wait in
// a free list per bucket. The cache is capped so an odd shape pattern cannot hoard memory.
#include "kernels/memory.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace mnemo::kernels {
namespace {

constexpr size_t kCacheCap = size_t(4) << 30;

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  MemoryStats stats;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: tensors may be freed during static teardown
  return *c;
}

size_t bucket(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= 4096) return (bytes + 63) & ~size_t(63);
  size_t pow2 = size_t(1) << (63 - __builtin_clzll(bytes - 1) + 1);  // next power of two >= bytes
  const size_t step = pow2 / 16;                                       // eight steps in [pow2/2, pow2]
  return (bytes + step - 1) / step * step;
}

}  // namespace

void* cpu_alloc(size_t bytes) {
  const size_t b = bucket(bytes);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    ++c.stats.allocations;
    auto it = c.free_lists.find(b);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      ++c.stats.cache_hits;
      c.stats.cached_bytes -= b;
      c.stats.live_bytes += b;
      if (c.stats.live_bytes > c.stats.peak_live_bytes) c.stats.peak_live_bytes = c.stats.live_bytes;
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlignment, b);
  if (!p) throw std::bad_alloc();
  std::lock_guard lock(c.mu);
  c.stats.live_bytes += b;
  if (c.stats.live_bytes > c.stats.peak_live_bytes) c.stats.peak_live_bytes = c.stats.live_bytes;
  return p;
}

void cpu_free(void* p, size_t bytes) {
  if (!p) return;
  const size_t b = bucket(bytes);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    c.stats.live_bytes -= b;
    if (c.stats.cached_bytes + b <= kCacheCap) {
      c.free_lists[b].push_back(p);
      c.stats.cached_bytes += b;
      return;
    }
  }
  std::free(p);
}

MemoryStats memory_stats() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  return c.stats;
}

void reset_peak_memory() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  c.stats.peak_live_bytes = c.stats.live_bytes;
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard lock(c.mu);
  for (auto& [b, list] : c.free_lists)
    for (void* p : list) std::free(p);
  c.free_lists.clear();
  c.stats.cached_bytes = 0;
}

}  // namespace mnemo::kernels
