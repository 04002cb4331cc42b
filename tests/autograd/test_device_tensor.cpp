// Device::cuda tensors on the emulated device (kernels/emulated/device.h), in every build:
// storage, explicit copies both ways, the device-aware accessors, host access refused with
// a clear message, operands on the wrong device refused by launch(), f64 refused on the
// device, the emulated slots exactly the CUDA backend's list, and without emulation (and
// without a device) a clear refusal.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <set>
#include <string>

#include "autograd/dispatch.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "kernels/cuda/slots.h"
#include "kernels/emulated/device.h"
#include "tests/support/contains.h"
#include "tests/support/error_of.h"

using namespace mnemo;
using mnemo::test::contains;
using kernels::device::ScopedEmulation;
using mnemo::test::error_of;
using mnemo::test::std_error_of;

namespace {

std::set<std::string> cuda_slot_list() {
  std::set<std::string> names;
#define MNEMO_NAME(slot) names.insert(#slot);
  MNEMO_CUDA_SLOTS(MNEMO_NAME)
#undef MNEMO_NAME
  return names;
}

std::set<std::string> filled_cuda_slots() {
  kernels::init();
  std::set<std::string> names;
  for (const kernels::KernelSlot* k : kernels::all_kernels())
    if (k->filled[int(kernels::Backend::cuda)]) names.insert(k->name);
  return names;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(device_tensor)

BOOST_AUTO_TEST_CASE(copies_both_ways_and_device_aware_accessors) {
  ScopedEmulation emulate;
  const auto before = kernels::device::stats();
  const Tensor d = Tensor::from({2, 3}, {1, -2, 3.5, 4, 5, -6}, DType::f32, Device::cuda);
  BOOST_TEST((d.device() == Device::cuda));
  BOOST_TEST(kernels::device::stats().to_device == before.to_device + 1);
  BOOST_TEST(kernels::device::stats().live_tensors == before.live_tensors + 1);
  BOOST_TEST(d.to_vector() == std::vector<double>({1, -2, 3.5, 4, 5, -6}), boost::test_tools::per_element());
  BOOST_TEST(kernels::device::stats().to_host == before.to_host + 1);
  BOOST_TEST(d.at({1, 2}) == -6.0);
  BOOST_TEST(d.reshape({6}).at({2}) == 3.5);
  BOOST_TEST(Tensor::scalar(2.5, DType::f32, Device::cuda).item() == 2.5);

  const Tensor host = d.to(Device::cpu);
  BOOST_TEST((host.device() == Device::cpu));
  BOOST_TEST(host.data<float>()[2] == 3.5f);
  const Tensor back = host.to(Device::cuda);
  BOOST_TEST(!back.same_storage(d));
  BOOST_TEST(back.to_vector() == d.to_vector(), boost::test_tools::per_element());
  BOOST_TEST(d.to(Device::cuda).same_storage(d));  // already there: no copy

  const Tensor c = d.clone();
  BOOST_TEST((c.device() == Device::cuda));
  BOOST_TEST(!c.same_storage(d));
  c.fill_(7);
  BOOST_TEST(c.to_vector() == std::vector<double>(6, 7.0), boost::test_tools::per_element());
  BOOST_TEST(d.at({0, 0}) == 1.0);  // the clone owns its memory
  c.fill_(0);
  BOOST_TEST(c.to_vector() == std::vector<double>(6, 0.0), boost::test_tools::per_element());
  c.copy_from(host);  // host -> device
  BOOST_TEST(c.to_vector() == d.to_vector(), boost::test_tools::per_element());
  const uint64_t on_device = kernels::device::stats().on_device;
  c.copy_from(d);  // device -> device
  BOOST_TEST(kernels::device::stats().on_device == on_device + 1);

  const Tensor z = Tensor::zeros({4}, DType::i32, Device::cuda);
  BOOST_TEST(z.to_vector() == std::vector<double>(4, 0.0), boost::test_tools::per_element());
  z.fill_(-3);  // no i32 fill kernel: filled on the host, copied over
  BOOST_TEST(z.to_vector() == std::vector<double>(4, -3.0), boost::test_tools::per_element());
  const Tensor ints = Tensor::from_ints({3}, {4, -1, 9}, Device::cuda);
  BOOST_TEST(ints.to_vector() == std::vector<double>({4, -1, 9}), boost::test_tools::per_element());
  // Conversions on the device go through the host, explicitly; the result stays on the device.
  const Tensor as_f64 = ints.to(DType::f64);
  BOOST_TEST((as_f64.device() == Device::cuda && as_f64.dtype() == DType::f64));
  BOOST_TEST(as_f64.to_vector() == std::vector<double>({4, -1, 9}), boost::test_tools::per_element());
  const Tensor u8 = Tensor::full({2}, 1.0, DType::u8, Device::cuda);
  BOOST_TEST(u8.to_vector() == std::vector<double>({1, 1}), boost::test_tools::per_element());
  const Tensor e = Tensor::empty({0, 3}, DType::f32, Device::cuda);  // no bytes: still a cuda tensor
  BOOST_TEST((e.device() == Device::cuda));
  BOOST_TEST(e.to_vector().empty());
}

BOOST_AUTO_TEST_CASE(host_access_of_device_memory_is_refused) {
  ScopedEmulation emulate;
  const Tensor d = Tensor::zeros({2, 2}, DType::f32, Device::cuda);
  const std::string err = error_of([&] { (void)d.data<float>(); });
  BOOST_TEST(contains(err, "cuda"));
  BOOST_TEST(contains(err, "(2, 2)"));
  BOOST_TEST(contains(err, "to(Device::cpu)"));
  BOOST_TEST(contains(error_of([&] { (void)d.raw(); }), "raw()"));
}

BOOST_AUTO_TEST_CASE(operands_on_another_device_are_refused_by_launch) {
  ScopedEmulation emulate;
  const Tensor y = Tensor::zeros({3}, DType::f32, Device::cuda);
  const Tensor x = Tensor::full({3}, 1.0);  // on the host
  const std::string err = error_of([&] { launch(kernels::axpy, y, y, x, int64_t(3), 1.0f); });
  BOOST_TEST(contains(err, "[axpy]"));
  BOOST_TEST(contains(err, "is on cpu, the op runs on cuda"));
  // And through an op: a host constant reaching a device op.
  Tape tape;
  const Var a = tape.input(Tensor::full({3}, 2.0, DType::f32, Device::cuda));
  const Var b = tape.constant(Tensor::full({3}, 1.0));
  BOOST_TEST(contains(error_of([&] { (void)(a + b); }), "different devices"));
  // Device ops work and stay on the device.
  const Var s = a * tape.constant(Tensor::full({3}, 3.0, DType::f32, Device::cuda));
  BOOST_TEST((s.value().device() == Device::cuda));
  BOOST_TEST(s.value().to_vector() == std::vector<double>(3, 6.0), boost::test_tools::per_element());
  // f64 has only the reference kernels, on the CPU.
  const Tensor d64 = Tensor::zeros({3}, DType::f64, Device::cuda);
  BOOST_TEST(contains(error_of([&] { launch(kernels::fill, d64, d64, int64_t(3), 1.0); }), "f64 runs on the CPU only"));
}

BOOST_AUTO_TEST_CASE(emulation_fills_exactly_the_cuda_slot_list) {
  const std::set<std::string> list = cuda_slot_list();
  BOOST_TEST(list.size() == 40u);  // every slot, the hyper-connections' and the nBRC cell's included
  BOOST_TEST(list.count("hyper_width_forward") == 1u);
  BOOST_TEST(list.count("nbrc_backward") == 1u);
  const std::set<std::string> outside = filled_cuda_slots();
  {
    ScopedEmulation emulate;
    BOOST_TEST((filled_cuda_slots() == list));
  }
  // Off again: what the build itself fills (the real kernels, exactly the list, or nothing).
  BOOST_TEST((filled_cuda_slots() == outside));
  BOOST_TEST((outside.empty() || outside == list));
}

BOOST_AUTO_TEST_CASE(a_slot_cuda_lacks_fails_by_name) {
  // Every slot of kernels.h has a CUDA kernel now; a new slot written for the CPU only must
  // stop by name on a device tensor, never run the CPU kernel on device memory.
  ScopedEmulation emulate;
  kernels::init();
  kernels::Kernel<kernels::FillSig> lacking("fill_without_cuda");
  lacking.set(kernels::Backend::cpu, kernels::fill.cpu_f32());
  const Tensor d = Tensor::zeros({3}, DType::f32, Device::cuda);
  BOOST_TEST(contains(error_of([&] { launch(lacking, d, d, int64_t(3), 1.0); }), "[fill_without_cuda] has no CUDA kernel"));
  launch(kernels::fill, d, d, int64_t(3), 1.0);  // the listed slot runs
  BOOST_TEST(d.to_vector() == std::vector<double>(3, 1.0), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(switching_with_live_device_tensors_is_refused) {
  ScopedEmulation emulate;
  const Tensor d = Tensor::zeros({2}, DType::f32, Device::cuda);
  BOOST_TEST(contains(std_error_of([] { kernels::device::set_cuda_emulation(false); }), "cuda tensors are alive"));
  BOOST_TEST(kernels::device::emulated());
}

BOOST_AUTO_TEST_CASE(repeated_steps_reuse_cached_device_blocks) {
  ScopedEmulation emulate;
  const auto step = [] {
    const Tensor a = Tensor::zeros({64, 64}, DType::f32, Device::cuda);
    const Tensor b = a.clone();
    b.fill_(1);
  };
  step();
  const uint64_t backing = kernels::device::stats().memory.backing_allocs;
  for (int i = 0; i < 3; ++i) step();
  BOOST_TEST(kernels::device::stats().memory.backing_allocs == backing);
  BOOST_TEST(kernels::device::stats().memory.peak_live_bytes >= 2u * 64 * 64 * 4);
}

BOOST_AUTO_TEST_CASE(without_emulation_cuda_storage_needs_a_device) {
  ScopedEmulation off(false);
  const std::string why = kernels::device::unavailable();
  if (why.empty()) {  // a CUDA build on a GPU machine: real device memory
    const Tensor d = Tensor::from({2}, {1, 2}, DType::f32, Device::cuda);
    BOOST_TEST(d.to_vector() == std::vector<double>({1, 2}), boost::test_tools::per_element());
  } else {
    const std::string err = std_error_of([] { (void)Tensor::zeros({2}, DType::f32, Device::cuda); });
    BOOST_TEST(contains(err, why));
    BOOST_TEST(contains(err, "MNEMO_EMULATE_CUDA=1"));
  }
}

// mnemo gradcheck --device cuda's comparison: every op registered in this executable in f32
// on the emulated device against its f64 CPU run, output and gradients.
BOOST_AUTO_TEST_CASE(every_registered_op_in_f32_on_the_emulated_device) {
  ScopedEmulation emulate;
  gradcheck::Options o;
  o.device = Device::cuda, o.atol = 1e-4, o.rtol = 1e-3;
  int checked = 0, refused = 0;
  for (const gradcheck::Check& c : gradcheck::all()) {
    const gradcheck::Result r = gradcheck::run(c, o);
    ++checked;
    if (!r.ok && contains(r.error, "has no CUDA kernel")) ++refused;
    BOOST_TEST(r.ok, r.summary());
    BOOST_TEST(r.leaves.size() >= 2u, c.name);  // the output and at least one gradient
  }
  BOOST_TEST_MESSAGE(checked << " checks on the emulated device, " << refused << " refused for a missing CUDA kernel");
  BOOST_TEST(checked > 50);
  BOOST_TEST(refused == 0);  // every slot has a CUDA kernel
  BOOST_TEST(kernels::device::stats().live_tensors == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
