// The CUDA runtime's host-side policies on the CPU build: the caching allocator (over a
// counting malloc standing in for cudaMalloc) and the CUDA Graph capture plan.
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <new>
#include <map>
#include <vector>

#include "kernels/cuda/block_cache.h"
#include "kernels/cuda/graph_plan.h"

namespace cu = mnemo::kernels::cuda;

namespace {

// malloc with a budget, counting its calls: what cudaMalloc is to the device cache.
struct FakeDevice {
  size_t budget = size_t(1) << 30, used = 0;
  int allocs = 0, frees = 0;
  std::map<void*, size_t> held;
  cu::BlockCache::Backing backing() {
    return {[this](size_t n) -> void* {
              if (used + n > budget) return nullptr;
              void* p = std::malloc(n);
              used += n, ++allocs, held[p] = n;
              return p;
            },
            [this](void* p) {
              ++frees, used -= held.at(p), held.erase(p);
              std::free(p);
            },
            "fake device"};
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(cuda_host)

BOOST_AUTO_TEST_CASE(sizes_round_to_classes) {
  BOOST_TEST(cu::BlockCache::round_size(1) == 512u);
  BOOST_TEST(cu::BlockCache::round_size(512) == 512u);
  BOOST_TEST(cu::BlockCache::round_size(513) == 1024u);
  BOOST_TEST(cu::BlockCache::round_size((size_t(1) << 20) - 1) == size_t(1) << 20);
  BOOST_TEST(cu::BlockCache::round_size((size_t(1) << 20) + 1) == size_t(2) << 20);
  BOOST_TEST(cu::BlockCache::round_size((size_t(5) << 20) + 1) == size_t(6) << 20);
}

BOOST_AUTO_TEST_CASE(a_repeated_step_makes_no_backing_call) {
  FakeDevice dev;
  cu::BlockCache cache(dev.backing());
  const std::vector<size_t> step = {4096, 100, 3 << 20, 4096, 77777, 1 << 22};
  auto run_step = [&] {
    std::vector<void*> ps;
    for (size_t n : step) ps.push_back(cache.allocate(n));
    for (void* p : ps) BOOST_TEST(p != nullptr);
    for (auto it = ps.rbegin(); it != ps.rend(); ++it) cache.release(*it);
  };
  run_step();
  const int first = dev.allocs;
  BOOST_TEST(first == int(step.size()));
  for (int i = 0; i < 5; ++i) run_step();
  BOOST_TEST(dev.allocs == first, "steady steps called the backing allocator");
  const cu::CacheStats s = cache.stats();
  BOOST_TEST(s.live_bytes == 0u);
  BOOST_TEST(s.allocations == 6 * step.size());
  BOOST_TEST(s.cache_hits == 5 * step.size());
  BOOST_TEST(s.cached_bytes == s.reserved_bytes);
  BOOST_TEST(s.peak_live_bytes >= size_t(7) << 20);
}

BOOST_AUTO_TEST_CASE(best_fit_and_no_huge_block_for_a_small_request) {
  FakeDevice dev;
  cu::BlockCache cache(dev.backing());
  void* big = cache.allocate(size_t(64) << 20);
  void* mid = cache.allocate(8192);
  cache.release(big);
  cache.release(mid);
  void* small = cache.allocate(4096);  // 8192 is within 2x: reused; 64 MiB is not
  BOOST_TEST(small == mid);
  void* tiny = cache.allocate(100);
  BOOST_TEST(tiny != big);
  BOOST_TEST(cache.block_size(small) == 8192u);
  cache.release(small);
  cache.release(tiny);
}

BOOST_AUTO_TEST_CASE(out_of_memory_empties_the_cache_then_throws_with_the_sizes) {
  FakeDevice dev;
  dev.budget = size_t(10) << 20;
  cu::BlockCache cache(dev.backing());
  cache.release(cache.allocate(size_t(6) << 20));  // cached, wrong size for what follows
  void* p = cache.allocate(size_t(8) << 20);       // fits only once the cached 6 MiB is returned
  BOOST_TEST(p != nullptr);
  BOOST_TEST(dev.frees == 1);
  try {
    cache.allocate(size_t(4) << 20);
    BOOST_FAIL("expected out of memory");
  } catch (const std::bad_alloc& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("out of fake device memory") != std::string::npos, msg);
    BOOST_TEST(msg.find("4194304 bytes requested") != std::string::npos, msg);
  }
  cache.release(p);
}

BOOST_AUTO_TEST_CASE(foreign_pointers_are_refused_and_everything_is_returned) {
  FakeDevice dev;
  {
    cu::BlockCache cache(dev.backing());
    int x = 0;
    BOOST_CHECK_THROW(cache.release(&x), std::invalid_argument);
    cache.release(nullptr);
    BOOST_TEST(cache.allocate(0) == nullptr);
    cache.allocate(1000);  // live at destruction
    cache.release(cache.allocate(5000));
    cache.empty_cache();
    BOOST_TEST(cache.stats().cached_bytes == 0u);
  }
  BOOST_TEST(dev.held.empty(), "blocks leaked past the cache's lifetime");
}

BOOST_AUTO_TEST_CASE(graph_plan_warms_up_captures_then_replays) {
  cu::GraphPlan plan(2, 2);
  using A = cu::StepAction;
  BOOST_TEST(int(plan.next("b4")) == int(A::eager));
  BOOST_TEST(int(plan.next("b4")) == int(A::eager));
  BOOST_TEST(int(plan.next("b4")) == int(A::capture));
  int g1 = 0;
  plan.captured("b4", &g1);
  BOOST_TEST(int(plan.next("b4")) == int(A::replay));
  BOOST_TEST(plan.graph("b4") == &g1);
  BOOST_TEST(plan.graph("other") == nullptr);
  BOOST_CHECK_THROW(plan.captured("b4", &g1), std::logic_error);  // not asked to capture
}

BOOST_AUTO_TEST_CASE(graph_plan_evicts_the_least_recent_and_remembers_failures) {
  cu::GraphPlan plan(1, 2);
  using A = cu::StepAction;
  int ga = 0, gb = 0, gc = 0;
  for (auto [key, g] : {std::pair{"a", &ga}, std::pair{"b", &gb}}) {
    plan.next(key);
    BOOST_TEST(int(plan.next(key)) == int(A::capture));
    plan.captured(key, g);
  }
  BOOST_TEST(int(plan.next("a")) == int(A::replay));  // a is now the most recent
  plan.next("c");
  plan.next("c");
  plan.captured("c", &gc);  // third graph: b goes
  BOOST_TEST(plan.graphs() == 2);
  const auto evicted = plan.take_evicted();
  BOOST_TEST(evicted.size() == 1u);
  BOOST_TEST(evicted.front() == static_cast<void*>(&gb));
  BOOST_TEST(plan.take_evicted().empty());
  BOOST_TEST(int(plan.next("b")) == int(A::eager));  // warms up again
  plan.capture_failed("d");
  for (int i = 0; i < 4; ++i) BOOST_TEST(int(plan.next("d")) == int(A::eager));
  BOOST_CHECK_THROW(cu::GraphPlan(0, 1), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()
