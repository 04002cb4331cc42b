// What the oneDNN kernels share: the CPU engine, a stream per thread, and a small
// thread-safe cache of primitives keyed by a plain struct (creating a primitive costs
// far more than running a small one).
#pragma once

#include <functional>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

namespace mnemo::kernels::onednn {

dnnl::engine& engine();
dnnl::stream& stream();  // one per thread

template <class Key, class Value, class Hash>
class Cache {
 public:
  // Returns the cached value for `key`, building it with make() the first time.
  template <class Make>
  Value& get(const Key& key, Make&& make) {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) it = map_.emplace(key, make()).first;
    return it->second;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return map_.size();
  }

 private:
  std::mutex mu_;
  std::unordered_map<Key, Value, Hash> map_;
};

// FNV-1a over the bytes of a trivially copyable key struct (no padding in our keys).
template <class Key>
struct BytesHash {
  size_t operator()(const Key& k) const {
    const auto* p = reinterpret_cast<const unsigned char*>(&k);
    size_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < sizeof(Key); ++i) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
  }
};

}  // namespace mnemo::kernels::onednn
