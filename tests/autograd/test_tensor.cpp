// Tensor basics: construction, views, copies, conversions, and the errors users hit.
#include <boost/test/unit_test.hpp>

#include "autograd/tensor.h"
#include "kernels/emulated/device.h"

using namespace mnemo;

BOOST_AUTO_TEST_SUITE(tensor)

BOOST_AUTO_TEST_CASE(construction_and_access) {
  const Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6}, DType::f64);
  BOOST_TEST(t.rank() == 2);
  BOOST_TEST(t.numel() == 6);
  BOOST_TEST(t.nbytes() == 48u);
  BOOST_TEST(t.at({1, 2}) == 6.0);
  BOOST_TEST(t.at({0, 1}) == 2.0);
  BOOST_TEST(t.shape().str() == "(2, 3)");
  BOOST_TEST(Shape{4}.str() == "(4,)");
  BOOST_TEST(Tensor::scalar(2.5).rank() == 0);
  BOOST_TEST(Tensor::scalar(2.5).item() == 2.5);
  BOOST_TEST(Tensor::zeros({3}, DType::i32).to_vector() == std::vector<double>({0, 0, 0}));
  BOOST_TEST(Tensor::full({2}, 7, DType::u8).to_vector() == std::vector<double>({7, 7}));
}

BOOST_AUTO_TEST_CASE(reshape_shares_clone_copies) {
  const Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor r = t.reshape({3, 2});
  BOOST_TEST(r.same_storage(t));
  r.data<float>()[0] = 10;
  BOOST_TEST(t.at({0, 0}) == 10.0);
  const Tensor c = t.clone();
  BOOST_TEST(!c.same_storage(t));
  c.data<float>()[1] = -1;
  BOOST_TEST(t.at({0, 1}) == 2.0);
}

BOOST_AUTO_TEST_CASE(dtype_conversion) {
  const Tensor t = Tensor::from({3}, {1.5, -2.25, 3}, DType::f64);
  const Tensor f = t.to(DType::f32);
  BOOST_TEST(f.dtype() == DType::f32);
  BOOST_TEST(f.to_vector() == std::vector<double>({1.5, -2.25, 3}));
  BOOST_TEST(t.to(DType::f64).same_storage(t));  // no copy when the dtype already matches
  BOOST_TEST(t.to(DType::i32).to_vector() == std::vector<double>({1, -2, 3}));
}

BOOST_AUTO_TEST_CASE(random_tensors_are_seeded) {
  Rng a(42), b(42), c(43);
  const auto x = Tensor::randn({100}, a).to_vector();
  BOOST_TEST(x == Tensor::randn({100}, b).to_vector());
  BOOST_TEST(x != Tensor::randn({100}, c).to_vector());
  double mean = 0, var = 0;
  Rng d(7);
  const auto big = Tensor::randn({20000}, d, DType::f64).to_vector();
  for (double v : big) mean += v / double(big.size());
  for (double v : big) var += (v - mean) * (v - mean) / double(big.size());
  BOOST_TEST(std::abs(mean) < 0.03);
  BOOST_TEST(std::abs(var - 1.0) < 0.05);
  Rng e(9);
  for (double v : Tensor::uniform({1000}, e, -0.5, 0.25).to_vector()) BOOST_TEST((v >= -0.5 && v < 0.25));
}

BOOST_AUTO_TEST_CASE(errors_name_what_went_wrong) {
  auto has = [](std::string part) {
    return [part](const Error& e) { return std::string(e.what()).find(part) != std::string::npos; };
  };
  const Tensor t = Tensor::zeros({2, 3});
  BOOST_CHECK_EXCEPTION(t.reshape({4, 2}), Error, has("(2, 3)"));
  BOOST_CHECK_EXCEPTION(t.data<double>(), Error, has("f32"));
  BOOST_CHECK_EXCEPTION(t.item(), Error, has("one element"));
  BOOST_CHECK_EXCEPTION(t.at({2, 0}), Error, has("out of range"));
  BOOST_CHECK_EXCEPTION(Tensor::from({2}, {1, 2, 3}), Error, has("needs 2 values"));
  BOOST_CHECK_EXCEPTION(Tensor::empty({2}, DType::bf16), Error, has("bf16"));
  if (!kernels::device::unavailable().empty())  // no device and no emulation (docs/CUDA.md)
    BOOST_CHECK_EXCEPTION(Tensor::empty({2}, DType::f32, Device::cuda), Error, has("cuda"));
  else
    BOOST_TEST((Tensor::empty({2}, DType::f32, Device::cuda).device() == Device::cuda));
  BOOST_CHECK_EXCEPTION((Shape{1, 2, 3, 4, 5, 6, 7}), Error, has("at most 6"));
  BOOST_CHECK_EXCEPTION(Shape({2, 3}).axis(2), Error, has("axis 2"));
  BOOST_TEST(Shape({2, 3, 4}).axis(-1) == 2);
  BOOST_TEST(Shape({2, 3, 4}).outer(1) == 2);
  BOOST_TEST(Shape({2, 3, 4}).inner(1) == 4);
}

BOOST_AUTO_TEST_SUITE_END()
