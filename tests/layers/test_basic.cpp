// Module plumbing and the basic layers: names, counts, train/eval, init statistics, shapes.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/norm.h"

using namespace mnemo;
using namespace mnemo::nn;

namespace {

struct Block : Module {  // a tiny tree: two children, one nested
  Linear a, b;
  LayerNorm ln;
  Dropout drop{0.5};
  explicit Block(Init& init) : a(init, 4, 8), b(init, 8, 4, false), ln(init, 4) {}
  void visit(ParamVisitor& v) override {
    v.sub("a", a);
    v.sub("b", b);
    v.sub("ln", ln);
    v.sub("drop", drop);
  }
};

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(basic)

BOOST_AUTO_TEST_CASE(named_params_are_dotted_paths) {
  Init init(1);
  Block m(init);
  std::vector<std::string> names;
  for (auto& [n, p] : named_params(m)) names.push_back(n);
  const std::vector<std::string> want{"a.weight", "a.bias", "b.weight", "ln.weight", "ln.bias"};
  BOOST_TEST(names == want, boost::test_tools::per_element());
  BOOST_TEST(param_count(m) == 4 * 8 + 8 + 8 * 4 + 4 + 4);
  BOOST_TEST(&find_param(m, "b.weight") == &m.b.weight);
  BOOST_CHECK_EXCEPTION(find_param(m, "b.bias"), Error,
                        [](const Error& e) { return std::string(e.what()).find("near: b.weight") != std::string::npos; });
}

BOOST_AUTO_TEST_CASE(train_and_eval_reach_every_module) {
  Init init(1);
  Block m(init);
  eval(m);
  BOOST_TEST(!m.training);
  BOOST_TEST(!m.drop.training);
  BOOST_TEST(!m.a.training);
  train(m);
  BOOST_TEST(m.drop.training);
  Tape t;
  Var x = t.constant(Tensor::full({1000}, 1.0));
  const auto y = m.drop(x).value().to_vector();
  double zeros = 0;
  for (double v : y) zeros += v == 0.0;
  BOOST_TEST(std::abs(zeros / 1000 - 0.5) < 0.06);
  eval(m);
  BOOST_TEST(m.drop(x).value().same_storage(x.value()));  // identity in eval
}

BOOST_AUTO_TEST_CASE(init_is_deterministic_and_pytorch_like) {
  Init i1(7), i2(7), i3(8);
  Linear l1(i1, 256, 300), l2(i2, 256, 300), l3(i3, 256, 300);
  BOOST_TEST(l1.weight.value.to_vector() == l2.weight.value.to_vector());
  BOOST_TEST(l1.weight.value.to_vector() != l3.weight.value.to_vector());
  // U(-1/16, 1/16): mean 0, variance 1/(3 * 256)
  const auto w = l1.weight.value.to_vector();
  double var = 0;
  for (double x : w) var += x * x / double(w.size());
  for (double x : w) BOOST_TEST((x >= -1.0 / 16 && x <= 1.0 / 16));
  BOOST_TEST(std::abs(mean_of(w)) < 2e-3);
  BOOST_TEST(std::abs(var - 1.0 / 768) < 1e-4);
  Init i4(3);
  Embedding e(i4, 1000, 64);  // N(0, 1)
  const auto ev = e.weight.value.to_vector();
  double evar = 0;
  for (double x : ev) evar += x * x / double(ev.size());
  BOOST_TEST(std::abs(evar - 1.0) < 0.02);
  LayerNorm ln(i4, 5);
  BOOST_TEST(ln.weight.value.to_vector() == std::vector<double>(5, 1.0));
  BOOST_TEST(ln.bias.value.to_vector() == std::vector<double>(5, 0.0));
  RMSNorm rn(i4, 5, RMSNorm::Style::torch);
  BOOST_TEST(rn.eps == double(std::numeric_limits<float>::epsilon()));
}

BOOST_AUTO_TEST_CASE(shapes_and_values) {
  Init init(2, DType::f64);
  Tape t;
  Linear l(init, 3, 2);
  Var y = l(t.constant(Tensor::zeros({4, 5, 3}, DType::f64)));
  BOOST_TEST(y.shape() == Shape({4, 5, 2}));
  BOOST_TEST(y.value().at({3, 4, 1}) == l.bias.value.at({1}));  // zero input: the bias
  BOOST_CHECK_THROW(l(t.constant(Tensor::zeros({2, 4}, DType::f64))), Error);

  FactorizedEmbedding fe(init, 10, 3, 6), plain(init, 10, 6, 6);
  BOOST_TEST(fe(t, Tensor::from_ints({2, 2}, {1, 2, 3, 4})).shape() == Shape({2, 2, 6}));
  BOOST_TEST(!plain.to_model_dim.has_value());
  LogitsHead head(init, 6, 3, 10);
  BOOST_TEST(head(t.constant(Tensor::zeros({2, 6}, DType::f64))).shape() == Shape({2, 10}));
  BOOST_TEST(named_params(head).front().first == "to_emb_dim.weight");

  AbsolutePositionEmbedding pos(init, 8, 4);
  const Tensor p = pos(t, 3, 5).value();
  BOOST_TEST(p.at({0, 2}) == pos.table.weight.value.at({5, 2}));
  BOOST_CHECK_THROW(pos(t, 4, 5), Error);

  // l2-style RMSNorm: every row has norm sqrt(D) times the (unit) gain
  RMSNorm rn(init, 4, RMSNorm::Style::l2);
  const Tensor r = rn(t.constant(Tensor::from({1, 4}, {3, 0, 4, 0}, DType::f64))).value();
  BOOST_TEST(std::abs(r.at({0, 0}) - 0.6 * 2) < 1e-12);
}

BOOST_AUTO_TEST_SUITE_END()
