// The caching host allocator (kernels/memory.h). Its stats are global to the process, so
// every check compares deltas taken around the code under test, never absolute values.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "autograd/tensor.h"
#include "kernels/memory.h"

namespace kn = mnemo::kernels;

namespace {

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kn::kAlignment == 0; }

}  // namespace

BOOST_AUTO_TEST_SUITE(memory)

BOOST_AUTO_TEST_CASE(freed_block_is_reused) {
  const size_t bytes = 12345;
  void* p = kn::cpu_alloc(bytes);
  std::memset(p, 0x5a, bytes);
  kn::cpu_free(p, bytes);
  const kn::MemoryStats before = kn::memory_stats();
  BOOST_TEST(before.cached_bytes >= bytes);
  void* q = kn::cpu_alloc(bytes);
  const kn::MemoryStats after = kn::memory_stats();
  BOOST_TEST(q == p);
  BOOST_TEST(after.allocations == before.allocations + 1);
  BOOST_TEST(after.cache_hits == before.cache_hits + 1);
  BOOST_TEST(after.cached_bytes + bytes <= before.cached_bytes);
  BOOST_TEST(after.live_bytes >= before.live_bytes + bytes);
  kn::cpu_free(q, bytes);
  BOOST_TEST(kn::memory_stats().live_bytes == before.live_bytes);
}

BOOST_AUTO_TEST_CASE(alignment_is_64_bytes) {
  BOOST_TEST(kn::kAlignment == 64u);
  for (int pass = 0; pass < 2; ++pass) {  // fresh blocks, then blocks from the cache
    if (pass == 0) kn::empty_cache();
    std::vector<std::pair<void*, size_t>> blocks;
    for (size_t bytes : {size_t(0), size_t(1), size_t(63), size_t(64), size_t(65), size_t(4097), size_t(1) << 20,
                         (size_t(1) << 20) + 1}) {
      void* p = kn::cpu_alloc(bytes);
      BOOST_TEST_CONTEXT("pass " << pass << ", " << bytes << " bytes") {
        BOOST_TEST(p != nullptr);
        BOOST_TEST(aligned(p), "pointer " << p << " is not 64-byte aligned");
      }
      if (bytes) std::memset(p, 0xa5, bytes);  // the whole request is usable
      blocks.emplace_back(p, bytes);
    }
    for (auto [p, bytes] : blocks) kn::cpu_free(p, bytes);
  }
  kn::cpu_free(nullptr, 123);  // freeing null is a no-op
}

BOOST_AUTO_TEST_CASE(live_and_peak_bookkeeping) {
  const size_t big = size_t(1) << 20, small = size_t(1) << 19;
  kn::reset_peak_memory();
  const kn::MemoryStats s0 = kn::memory_stats();
  BOOST_TEST(s0.peak_live_bytes == s0.live_bytes);

  void* a = kn::cpu_alloc(big);
  void* b = kn::cpu_alloc(small);
  const kn::MemoryStats s1 = kn::memory_stats();
  BOOST_TEST(s1.live_bytes >= s0.live_bytes + big + small);
  BOOST_TEST(s1.peak_live_bytes == s1.live_bytes);

  kn::cpu_free(a, big);
  const kn::MemoryStats s2 = kn::memory_stats();
  BOOST_TEST(s2.live_bytes >= s0.live_bytes + small);
  BOOST_TEST(s2.live_bytes + big <= s1.live_bytes);
  BOOST_TEST(s2.peak_live_bytes == s1.peak_live_bytes);  // the peak remembers both blocks

  kn::reset_peak_memory();
  const kn::MemoryStats s3 = kn::memory_stats();
  BOOST_TEST(s3.peak_live_bytes == s2.live_bytes);

  kn::cpu_free(b, small);
  const kn::MemoryStats s4 = kn::memory_stats();
  BOOST_TEST(s4.live_bytes == s0.live_bytes);
  BOOST_TEST(s4.peak_live_bytes == s3.peak_live_bytes);
}

BOOST_AUTO_TEST_CASE(empty_cache_releases_everything) {
  std::vector<void*> blocks;
  for (size_t i = 0; i < 8; ++i) blocks.push_back(kn::cpu_alloc(1000 * (i + 1)));
  for (size_t i = 0; i < 8; ++i) kn::cpu_free(blocks[i], 1000 * (i + 1));
  const kn::MemoryStats before = kn::memory_stats();
  BOOST_TEST(before.cached_bytes >= size_t(36000));
  kn::empty_cache();
  const kn::MemoryStats after = kn::memory_stats();
  BOOST_TEST(after.cached_bytes == 0u);
  BOOST_TEST(after.live_bytes == before.live_bytes);

  void* p = kn::cpu_alloc(8000);  // nothing cached: a fresh block, not a hit
  const kn::MemoryStats s = kn::memory_stats();
  BOOST_TEST(s.cache_hits == after.cache_hits);
  BOOST_TEST(s.allocations == after.allocations + 1);
  kn::cpu_free(p, 8000);
}

BOOST_AUTO_TEST_CASE(tensor_storage_uses_the_cache) {
  using mnemo::DType;
  using mnemo::Tensor;
  void* first = nullptr;
  {
    const Tensor t = Tensor::empty({37, 101});
    first = t.raw();
    BOOST_TEST(aligned(first));
    t.fill_(1.0);
  }
  const kn::MemoryStats before = kn::memory_stats();
  const Tensor t2 = Tensor::empty({37, 101});
  const kn::MemoryStats after = kn::memory_stats();
  BOOST_TEST(t2.raw() == first);
  BOOST_TEST(after.cache_hits == before.cache_hits + 1);
  BOOST_TEST(after.live_bytes >= before.live_bytes + t2.nbytes());
  for (const Tensor& t : {Tensor::empty({3}, DType::f64), Tensor::empty({7, 9}, DType::i32),
                          Tensor::empty({5}, DType::u8), Tensor::zeros({1, 13})})
    BOOST_TEST(aligned(t.raw()), "tensor of " << t.nbytes() << " bytes is not 64-byte aligned");
}

BOOST_AUTO_TEST_CASE(threads_allocate_and_free) {
  constexpr int kThreads = 4;
  constexpr int kBlocks = 10000;
  const size_t sizes[] = {1, 64, 100, 4096, 5000, 65536, 300000};
  const kn::MemoryStats before = kn::memory_stats();
  std::atomic<int> misaligned{0}, corrupted{0};
  auto work = [&](int tid) {
    std::mt19937 g(uint32_t(1000 + tid));
    std::vector<std::pair<unsigned char*, size_t>> held;
    const unsigned char tag = static_cast<unsigned char>(tid + 1);
    // a block's first and last bytes carry this thread's tag: a block handed to two
    // threads at once would be overwritten by the other one
    auto release = [&](size_t k) {
      auto [p, bytes] = held[k];
      if (p[0] != tag || p[bytes - 1] != tag) ++corrupted;
      kn::cpu_free(p, bytes);
      held[k] = held.back();
      held.pop_back();
    };
    for (int i = 0; i < kBlocks; ++i) {
      const size_t bytes = sizes[g() % std::size(sizes)];
      auto* p = static_cast<unsigned char*>(kn::cpu_alloc(bytes));
      if (!aligned(p)) ++misaligned;
      p[0] = p[bytes - 1] = tag;
      held.emplace_back(p, bytes);
      if (held.size() > 16 || g() % 2) release(g() % held.size());
    }
    while (!held.empty()) release(held.size() - 1);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
  for (std::thread& t : threads) t.join();
  const kn::MemoryStats after = kn::memory_stats();
  BOOST_TEST(misaligned.load() == 0);
  BOOST_TEST(corrupted.load() == 0);
  BOOST_TEST(after.live_bytes == before.live_bytes);
  BOOST_TEST(after.allocations == before.allocations + uint64_t(kThreads) * kBlocks);
  BOOST_TEST(after.cache_hits > before.cache_hits);
  BOOST_TEST(after.peak_live_bytes >= before.peak_live_bytes);
}

BOOST_AUTO_TEST_SUITE_END()
