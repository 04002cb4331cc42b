// The caching policy of the CUDA device allocator (and of its pinned host buffers), kept
// apart from cudaMalloc so that the CPU build tests it: blocks are rounded to size classes,
// freed blocks stay cached and the best-fitting one is handed out again, so a training step
// whose shapes repeat calls the backing allocator only in its first steps. A step is
// "steady" when it made no backing call; the CUDA runtime counts them (and the check script
// asserts it on the GPU).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>

namespace mnemo::kernels::cuda {

struct CacheStats {
  size_t live_bytes = 0;  // handed out (rounded sizes) and not yet released
  size_t peak_live_bytes = 0;
  size_t cached_bytes = 0;    // released, kept for reuse
  size_t reserved_bytes = 0;  // live + cached: what the backing allocator holds for us
  size_t peak_reserved_bytes = 0;
  uint64_t allocations = 0;     // allocate() calls
  uint64_t cache_hits = 0;      // ... served from the cache
  uint64_t backing_allocs = 0;  // calls to the backing allocator (cudaMalloc)
  uint64_t backing_frees = 0;
};

class BlockCache {
 public:
  // alloc returns null when the backing memory is exhausted; free takes what alloc returned.
  struct Backing {
    std::function<void*(size_t)> alloc;
    std::function<void(void*)> free;
    std::string what;  // "device" or "pinned host", for error messages
  };

  explicit BlockCache(Backing backing);
  ~BlockCache();  // returns every block, live ones included, to the backing allocator
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // Never null for bytes > 0 (0 bytes gives null); throws std::bad_alloc with a message naming
  // the request and the cache's state when even an emptied cache cannot get the memory.
  void* allocate(size_t bytes);
  void release(void* p);  // null is ignored; a pointer not from allocate() throws
  void empty_cache();     // returns the cached (not the live) blocks
  CacheStats stats() const { return stats_; }
  void reset_peaks();
  size_t block_size(void* p) const;                         // the rounded size behind a live pointer
  bool owns(void* p) const { return live_.count(p) != 0; }  // a live block of this cache

  // Size classes: multiples of 512 bytes up to 1 MiB, then of 2 MiB; a cached block is only
  // reused for a request of at least half its size (no 1 GB block for a 4 KB tensor).
  static size_t round_size(size_t bytes);
  static constexpr size_t kSmallQuantum = 512, kLargeThreshold = size_t(1) << 20, kLargeQuantum = size_t(2) << 20;

 private:
  void* take_cached(size_t size);
  Backing backing_;
  std::multimap<size_t, void*> free_;       // size -> block
  std::unordered_map<void*, size_t> live_;  // block -> size
  CacheStats stats_;
};

}  // namespace mnemo::kernels::cuda
