#include "kernels/cuda/block_cache.h"

#include <new>
#include <sstream>
#include <stdexcept>

namespace mnemo::kernels::cuda {
namespace {

// std::bad_alloc carries no message; this one says what failed and how full the cache was.
struct OutOfMemory : std::bad_alloc {
  std::string msg;
  explicit OutOfMemory(std::string m) : msg(std::move(m)) {}
  const char* what() const noexcept override { return msg.c_str(); }
};

}  // namespace

BlockCache::BlockCache(Backing backing) : backing_(std::move(backing)) {}

BlockCache::~BlockCache() {
  empty_cache();
  for (auto& [p, size] : live_) backing_.free(p);
}

size_t BlockCache::round_size(size_t bytes) {
  const size_t q = bytes < kLargeThreshold ? kSmallQuantum : kLargeQuantum;
  return (bytes + q - 1) / q * q;
}

void* BlockCache::take_cached(size_t size) {
  auto it = free_.lower_bound(size);
  if (it == free_.end() || it->first / 2 > size) return nullptr;
  void* p = it->second;
  live_.emplace(p, it->first);
  stats_.cached_bytes -= it->first;
  stats_.live_bytes += it->first;
  free_.erase(it);
  return p;
}

void* BlockCache::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  ++stats_.allocations;
  const size_t size = round_size(bytes);
  void* p = take_cached(size);
  if (p) {
    ++stats_.cache_hits;
  } else {
    p = backing_.alloc(size);
    if (!p && !free_.empty()) {  // cached blocks of the wrong sizes may be what is missing
      empty_cache();
      p = backing_.alloc(size);
    }
    if (!p) {
      std::ostringstream msg;
      msg << "[cuda allocator] out of " << backing_.what << " memory: " << bytes << " bytes requested (" << size
          << " rounded) with " << stats_.live_bytes << " bytes live";
      throw OutOfMemory(msg.str());
    }
    ++stats_.backing_allocs;
    live_.emplace(p, size);
    stats_.live_bytes += size;
    stats_.reserved_bytes += size;
  }
  if (stats_.live_bytes > stats_.peak_live_bytes) stats_.peak_live_bytes = stats_.live_bytes;
  if (stats_.reserved_bytes > stats_.peak_reserved_bytes) stats_.peak_reserved_bytes = stats_.reserved_bytes;
  return p;
}

void BlockCache::release(void* p) {
  if (!p) return;
  auto it = live_.find(p);
  if (it == live_.end()) throw std::invalid_argument("[cuda allocator] release of a pointer it did not hand out");
  free_.emplace(it->second, p);
  stats_.live_bytes -= it->second;
  stats_.cached_bytes += it->second;
  live_.erase(it);
}

void BlockCache::empty_cache() {
  for (auto& [size, p] : free_) {
    backing_.free(p);
    ++stats_.backing_frees;
    stats_.reserved_bytes -= size;
  }
  free_.clear();
  stats_.cached_bytes = 0;
}

void BlockCache::reset_peaks() {
  stats_.peak_live_bytes = stats_.live_bytes;
  stats_.peak_reserved_bytes = stats_.reserved_bytes;
}

size_t BlockCache::block_size(void* p) const {
  auto it = live_.find(p);
  if (it == live_.end()) throw std::invalid_argument("[cuda allocator] block_size of a pointer it did not hand out");
  return it->second;
}

}  // namespace mnemo::kernels::cuda
