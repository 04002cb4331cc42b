// The attention layer: parameter names, shapes, causality with and without memories,
// XL caches, the honoured QK-norm scale, dropout only while training.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "layers/attention.h"

using namespace mnemo;
using namespace mnemo::nn;

namespace {

std::vector<std::string> names(Module& m) {
  std::vector<std::string> out;
  for (auto& [n, p] : named_params(m)) out.push_back(n);
  return out;
}

// Output rows [0, upto) of two runs whose inputs differ only at time step `changed`.
struct Memories {
  Tensor memory, xl_k, xl_v;
  bool causal = true;
};

double max_diff_before(const MultiheadAttention& a, const Tensor& x, int64_t changed, const Memories& m) {
  Tensor x2 = x.clone();
  for (int64_t j = 0; j < x.dim(2); ++j) x2.data<double>()[(0 * x.dim(1) + changed) * x.dim(2) + j] += 1.0;
  Tape t;
  AttentionContext ctx{.causal = m.causal};
  if (m.memory.defined()) ctx.memory = t.constant(m.memory);
  if (m.xl_k.defined()) {
    ctx.xl_k = t.constant(m.xl_k);
    ctx.xl_v = t.constant(m.xl_v);
  }
  const Tensor y1 = a(t.constant(x), ctx).out.value(), y2 = a(t.constant(x2), ctx).out.value();
  double diff = 0;
  for (int64_t i = 0; i < changed; ++i)
    for (int64_t j = 0; j < y1.dim(2); ++j) diff = std::max(diff, std::abs(y1.at({0, i, j}) - y2.at({0, i, j})));
  return diff;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(attention_layer)

BOOST_AUTO_TEST_CASE(parameter_names_follow_the_reference) {
  Init init(1);
  MultiheadAttention a(init, {.dim = 8, .heads = 2, .qk_norm = true, .null_kv = true, .num_mem_kv = 3, .value_residual = true});
  const std::vector<std::string> want{"to_q.weight", "to_kv.weight", "to_out.weight", "to_out.bias",
                                      "to_value_residual_mix.weight", "null_kv", "mem_kv", "q_scale", "k_scale"};
  BOOST_TEST(names(a) == want, boost::test_tools::per_element());
  BOOST_TEST(a.null_kv.value.shape() == Shape({2, 2, 4}));
  BOOST_TEST(a.mem_kv.value.shape() == Shape({1, 3, 8}));
  MultiheadAttention shared(init, {.dim = 8, .heads = 2, .shared_kv = true});
  BOOST_TEST(shared.to_kv.weight.value.shape() == Shape({8, 8}));  // 2 * one head * dim_head 4
}

BOOST_AUTO_TEST_CASE(shapes_and_caches) {
  Init init(2, DType::f64);
  MultiheadAttention a(init, {.dim = 8, .heads = 2});
  Rng rng(3);
  Tape t;
  Var x = t.constant(Tensor::randn({2, 5, 8}, rng, DType::f64));
  AttentionOutput o = a(x, {.memory = t.constant(Tensor::randn({2, 3, 8}, rng, DType::f64))});
  BOOST_TEST(o.out.shape() == Shape({2, 5, 8}));
  BOOST_TEST(o.k.shape() == Shape({2, 2, 5, 4}));  // this call's keys only, not the memory's
  AttentionOutput o2 = a(x, {.xl_k = o.k, .xl_v = o.v});
  BOOST_TEST(o2.out.shape() == Shape({2, 5, 8}));
  BOOST_CHECK_THROW(a(t.constant(Tensor::zeros({2, 5, 6}, DType::f64))), Error);
}

BOOST_AUTO_TEST_CASE(causal_with_and_without_memories) {
  Init init(4, DType::f64);
  MultiheadAttention a(init, {.dim = 8, .heads = 2, .null_kv = true, .num_mem_kv = 2});
  Rng rng(5);
  const Tensor x = Tensor::randn({1, 6, 8}, rng, DType::f64);
  const Tensor mem = Tensor::randn({1, 4, 8}, rng, DType::f64);
  const Tensor xk = Tensor::randn({1, 2, 3, 4}, rng, DType::f64), xv = Tensor::randn({1, 2, 3, 4}, rng, DType::f64);
  BOOST_TEST(max_diff_before(a, x, 4, {}) < 1e-12);
  BOOST_TEST(max_diff_before(a, x, 4, {.memory = mem}) < 1e-12);
  BOOST_TEST(max_diff_before(a, x, 4, {.memory = mem, .xl_k = xk, .xl_v = xv}) < 1e-12);
  BOOST_TEST(max_diff_before(a, x, 4, {.causal = false}) > 1e-6);  // not causal: earlier rows do change
}

BOOST_AUTO_TEST_CASE(qk_norm_scale_is_honoured) {
  // With QK-norm, logits are cos(q, k) * q_scale * k_scale * qk_norm_scale: at scale 8 the
  // attention must be far sharper than at the reference's accidental 1/sqrt(d).
  Init i1(6, DType::f64), i2(6, DType::f64);
  MultiheadAttention sharp(i1, {.dim = 8, .heads = 1, .qk_norm = true, .qk_norm_scale = 8});
  MultiheadAttention flat(i2, {.dim = 8, .heads = 1, .qk_norm = true, .qk_norm_scale = 1.0 / std::sqrt(8.0)});
  Rng rng(7);
  const Tensor x = Tensor::randn({1, 6, 8}, rng, DType::f64);
  Tape t;
  const Tensor a = sharp(t.constant(x), {.causal = false}).out.value(), b = flat(t.constant(x), {.causal = false}).out.value();
  double diff = 0;
  for (int64_t i = 0; i < a.numel(); ++i) diff = std::max(diff, std::abs(a.data<double>()[i] - b.data<double>()[i]));
  BOOST_TEST(diff > 1e-3);
}

BOOST_AUTO_TEST_CASE(dropout_only_while_training) {
  Init init(8, DType::f64);
  MultiheadAttention a(init, {.dim = 8, .heads = 2, .attn_dropout = 0.5, .out_dropout = 0.5});
  Rng rng(9);
  const Tensor x = Tensor::randn({1, 5, 8}, rng, DType::f64);
  eval(a);
  Tape t1, t2;
  const auto e1 = a(t1.constant(x)).out.value().to_vector(), e2 = a(t2.constant(x)).out.value().to_vector();
  BOOST_TEST(e1 == e2);
  train(a);
  Tape t3, t4, t5;
  t3.set_seed(1);
  t4.set_seed(1);
  t5.set_seed(2);
  const auto d1 = a(t3.constant(x)).out.value().to_vector(), d2 = a(t4.constant(x)).out.value().to_vector();
  const auto d3 = a(t5.constant(x)).out.value().to_vector();
  BOOST_TEST(d1 == d2);  // same tape seed, same masks: what replay relies on
  BOOST_TEST(d1 != d3);
  BOOST_TEST(d1 != e1);
}

BOOST_AUTO_TEST_SUITE_END()
