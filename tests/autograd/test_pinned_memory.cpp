// Pinned host memory (kernels/emulated/device.h: pinned_alloc) on the emulated device, in
// every build: aligned blocks from a cache of their own with its counts, reuse without new
// backing allocations, a foreign pointer refused; pinned host tensors (Tensor::pinned_empty,
// pinned()) as ordinary host tensors whose copies to the device are counted apart; without
// emulation (and without a device) a clear refusal. The event-guarded reuse of the real
// runtime (kernels/cuda/runtime.cpp) needs a GPU: docs/CUDA.md.
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>

#include "autograd/ops/ops.h"
#include "kernels/emulated/device.h"
#include "tests/support/contains.h"
#include "tests/support/error_of.h"

using namespace mnemo;
using mnemo::test::contains;
using kernels::device::ScopedEmulation;
using mnemo::test::error_of;
using mnemo::test::std_error_of;

BOOST_AUTO_TEST_SUITE(pinned_memory)

BOOST_AUTO_TEST_CASE(emulated_pinned_blocks_are_aligned_counted_and_reused) {
  ScopedEmulation emulate;
  namespace dev = kernels::device;
  const dev::PinnedStats before = dev::pinned_stats();
  const uint64_t device_backing = dev::stats().memory.backing_allocs;
  void* a = dev::pinned_alloc(1000);
  void* b = dev::pinned_alloc(3 << 20);
  BOOST_REQUIRE(a != nullptr);
  BOOST_REQUIRE(b != nullptr);
  BOOST_TEST(reinterpret_cast<uintptr_t>(a) % 64 == 0u);
  BOOST_TEST(reinterpret_cast<uintptr_t>(b) % 64 == 0u);
  BOOST_TEST(dev::pinned_alloc(0) == nullptr);
  dev::PinnedStats s = dev::pinned_stats();
  BOOST_TEST(s.live_blocks == before.live_blocks + 2);
  BOOST_TEST(s.memory.live_bytes == before.memory.live_bytes + 1024 + (4 << 20));  // rounded sizes
  BOOST_TEST(s.memory.allocations == before.memory.allocations + 2);
  BOOST_TEST(dev::stats().memory.backing_allocs == device_backing);  // a cache of its own
  dev::pinned_free(a);
  dev::pinned_free(b);
  dev::pinned_free(nullptr);
  s = dev::pinned_stats();
  BOOST_TEST(s.live_blocks == before.live_blocks);
  BOOST_TEST(s.memory.live_bytes == before.memory.live_bytes);
  // Blocks of the same sizes come from the cache: no new backing allocation.
  const uint64_t backing = s.memory.backing_allocs;
  for (int i = 0; i < 3; ++i) {
    void* x = dev::pinned_alloc(900);
    void* y = dev::pinned_alloc(3 << 20);
    dev::pinned_free(y);
    dev::pinned_free(x);
  }
  BOOST_TEST(dev::pinned_stats().memory.backing_allocs == backing);
  BOOST_TEST(dev::pinned_stats().memory.cache_hits >= s.memory.cache_hits + 6);
  int not_pinned = 0;
  BOOST_TEST(contains(std_error_of([&] { dev::pinned_free(&not_pinned); }), "did not hand out"));
}

BOOST_AUTO_TEST_CASE(a_pinned_tensor_is_an_ordinary_host_tensor) {
  ScopedEmulation emulate;
  const Tensor p = Tensor::pinned_empty({2, 3}, DType::f32);
  BOOST_TEST((p.device() == Device::cpu));
  BOOST_TEST(p.is_pinned());
  BOOST_TEST(reinterpret_cast<uintptr_t>(p.raw()) % 64 == 0u);
  for (int i = 0; i < 6; ++i) p.data<float>()[i] = float(i) - 2.5f;
  // Host ops on it, and results of ops are ordinary tensors.
  Tape tape;
  const Tensor y = (tape.constant(p) * 2.0).value();
  BOOST_TEST(!y.is_pinned());
  BOOST_TEST(y.to_vector() == std::vector<double>({-5, -3, -1, 1, 3, 5}), boost::test_tools::per_element());
  BOOST_TEST(!p.clone().is_pinned());
  BOOST_TEST(p.reshape({6}).is_pinned());  // a view shares the pinned storage
  BOOST_TEST(p.pinned().same_storage(p));  // already pinned: no copy

  const Tensor plain = Tensor::from_ints({2, 2}, {7, -1, 3, 9});
  BOOST_TEST(!plain.is_pinned());
  const Tensor q = plain.pinned();
  BOOST_TEST(q.is_pinned());
  BOOST_TEST(!q.same_storage(plain));
  BOOST_TEST(q.to_vector() == plain.to_vector(), boost::test_tools::per_element());
  BOOST_TEST(!Tensor().pinned().defined());
  BOOST_TEST(Tensor::pinned_empty({0}, DType::u8).numel() == 0);
}

BOOST_AUTO_TEST_CASE(copies_from_pinned_memory_are_counted_apart) {
  ScopedEmulation emulate;
  namespace dev = kernels::device;
  const Tensor plain = Tensor::from_ints({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  const Tensor pinned = plain.pinned();
  const dev::Stats s0 = dev::stats();
  const dev::PinnedStats p0 = dev::pinned_stats();
  const Tensor d1 = plain.to(Device::cuda);  // pageable
  BOOST_TEST(dev::stats().to_device == s0.to_device + 1);
  BOOST_TEST(dev::pinned_stats().to_device == p0.to_device);
  const Tensor d2 = pinned.to(Device::cuda);
  BOOST_TEST(dev::stats().to_device == s0.to_device + 2);  // the total counts both
  BOOST_TEST(dev::pinned_stats().to_device == p0.to_device + 1);
  BOOST_TEST(dev::pinned_stats().to_device_bytes == p0.to_device_bytes + 8 * sizeof(int32_t));
  BOOST_TEST(d2.to_vector() == plain.to_vector(), boost::test_tools::per_element());
  // copy_from into an existing device tensor takes the same path.
  d1.copy_from(pinned);
  BOOST_TEST(dev::pinned_stats().to_device == p0.to_device + 2);
  // A device tensor's pinned() is one copy to the host, into pinned memory.
  const uint64_t to_host = dev::stats().to_host;
  const Tensor back = d2.pinned();
  BOOST_TEST(back.is_pinned());
  BOOST_TEST((back.device() == Device::cpu));
  BOOST_TEST(dev::stats().to_host == to_host + 1);
  BOOST_TEST(back.to_vector() == plain.to_vector(), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(pinned_blocks_outlive_a_switch_of_emulation) {
  Tensor p;
  const uint64_t live = kernels::device::pinned_stats().live_blocks;
  {
    ScopedEmulation emulate;
    p = Tensor::pinned_empty({16}, DType::f32);
    p.fill_(1.5);
  }
  BOOST_TEST(p.to_vector()[15] == 1.5);  // still host memory
  p = Tensor();                          // freed to the cache that made it
  BOOST_TEST(kernels::device::pinned_stats().live_blocks == live);
}

BOOST_AUTO_TEST_CASE(without_emulation_pinned_memory_needs_a_device) {
  ScopedEmulation off(false);
  const std::string why = kernels::device::unavailable();
  if (why.empty()) {  // a CUDA build on a GPU machine: the runtime's pinned cache
    const Tensor p = Tensor::from_ints({3}, {4, 5, 6}).pinned();
    BOOST_TEST(p.is_pinned());
    BOOST_TEST(p.to(Device::cuda).to_vector() == std::vector<double>({4, 5, 6}), boost::test_tools::per_element());
  } else {
    const std::string err = error_of([] { (void)Tensor::pinned_empty({2}); });
    BOOST_TEST(contains(err, "[tensor] pinned host memory"));
    BOOST_TEST(contains(err, why));
    BOOST_TEST(contains(std_error_of([] { (void)kernels::device::pinned_alloc(8); }), why));
  }
}

BOOST_AUTO_TEST_SUITE_END()
