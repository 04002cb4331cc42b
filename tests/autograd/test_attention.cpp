// The fused attention op against its oracle: the same attention composed from matmul,
// softmax with a dense mask and matmul, where the dense mask is built here, row by row,
// straight from the rules in ops.h. Sizes span several 64-row tiles; forward values and
// the gradients of q, k, v, bias and the null slot must agree.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "autograd/ops/ops.h"

using namespace mnemo;

namespace {

struct Case {
  const char* name;
  int64_t B, H, Hk, Tq, Tk, d;
  AttentionSpec spec;
  bool bias = false, null_kv = false;
};

// u8 (B, H, Tq, Tk): 1 where the rules of ops.h let query i see key j.
Tensor dense_mask(const Case& c, int64_t Tk) {
  const AttentionSpec& s = c.spec;
  Tensor m = Tensor::zeros({c.B, c.H, c.Tq, Tk}, DType::u8);
  uint8_t* p = m.data<uint8_t>();
  const int64_t Tm = Tk - s.prefix;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < c.Tq; ++i)
        for (int64_t j = 0; j < Tk; ++j) {
          bool ok;
          const int64_t mj = j - s.prefix, pos = i + Tm - c.Tq;
          if (mj < 0) ok = true;
          else if (i < s.read_rows) ok = mj < s.read_rows;
          else if (i >= c.Tq - s.write_rows) ok = true;
          else {
            ok = !s.causal || mj <= pos;
            if (s.window > 0) ok = ok && mj > pos - s.window && (s.causal || mj < pos + s.window);
          }
          if (s.key_padding.defined()) ok = ok && s.key_padding.at({b, j}) != 0;
          if (s.mask.defined())
            ok = ok && (s.mask.rank() == 2 ? s.mask.at({i, j}) : s.mask.at({b, h, i, j})) != 0;
          p[((b * c.H + h) * c.Tq + i) * Tk + j] = ok;
        }
  return m;
}

Tensor random_u8(const Shape& s, Rng& rng, double p_one) {
  Tensor t = Tensor::empty(s, DType::u8);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = rng.uniform() < p_one;
  return t;
}

void check_close(const Tensor& a, const Tensor& b, double tol, const std::string& what) {
  BOOST_REQUIRE(a.defined() && b.defined());
  BOOST_REQUIRE(a.shape() == b.shape());
  const auto x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]) / (1 + std::abs(y[i])));
  BOOST_TEST_CONTEXT(what) { BOOST_TEST(worst <= tol); }
}

void run_case(Case c, DType dt, double tol) {
  Rng rng(11);
  const Tensor q = Tensor::randn({c.B, c.H, c.Tq, c.d}, rng, dt), k = Tensor::randn({c.B, c.Hk, c.Tk, c.d}, rng, dt),
               v = Tensor::randn({c.B, c.Hk, c.Tk, c.d}, rng, dt),
               bias = std::string(c.name) == "per-batch bias" ? Tensor::randn({c.B, c.H, c.Tq, c.Tk}, rng, dt)
                                                              : Tensor::randn({c.H, c.Tq, c.Tk}, rng, dt),
               nk = Tensor::randn({c.Hk, c.d}, rng, dt), nv = Tensor::randn({c.Hk, c.d}, rng, dt),
               seed = Tensor::randn({c.B, c.H, c.Tq, c.d}, rng, dt);
  const double scale = c.spec.scale ? *c.spec.scale : 1.0 / std::sqrt(double(c.d));
  if (dt == DType::f32) tol *= std::max(1.0, scale * std::sqrt(double(c.d)));  // large logits amplify rounding

  Tape t1, t2;
  std::vector<Var> in1, in2;
  for (const Tensor* x : {&q, &k, &v, &bias, &nk, &nv}) {
    in1.push_back(t1.input(*x));
    in2.push_back(t2.input(*x));
  }
  // fused
  AttentionSpec s = c.spec;
  if (c.bias) s.bias = in1[3];
  if (c.null_kv) {
    s.null_k = in1[4];
    s.null_v = in1[5];
  }
  Var fused = attention(in1[0], in1[1], in1[2], s);
  // composite oracle
  Var K = in2[1], V = in2[2], Bias = in2[3];
  Case oc = c;
  if (c.null_kv) {  // the slot in front of the keys, visible to all: one more prefix key
    auto front = [&](Var x, Var n) {
      return concat({broadcast_to(reshape(n, {1, c.Hk, 1, c.d}), {c.B, c.Hk, 1, c.d}), x}, 2);
    };
    K = front(K, in2[4]);
    V = front(V, in2[5]);
    Bias = pad(Bias, -1, 1, 0, 0.0);
    oc.spec.prefix += 1;
    if (c.spec.key_padding.defined()) {
      Tensor kp = Tensor::full({c.B, c.Tk + 1}, 1.0, DType::u8);
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t j = 0; j < c.Tk; ++j) kp.data<uint8_t>()[b * (c.Tk + 1) + j + 1] = uint8_t(c.spec.key_padding.at({b, j}));
      oc.spec.key_padding = kp;
    }
  }
  const int64_t Tk = K.dim(2);
  if (c.Hk == 1) {
    K = broadcast_to(K, {c.B, c.H, Tk, c.d});
    V = broadcast_to(V, {c.B, c.H, Tk, c.d});
  }
  Var logits = matmul(in2[0], K, {.trans_b = true}) * scale;
  if (c.bias) logits = logits + Bias;
  Var oracle = matmul(softmax(logits, dense_mask(oc, Tk)), V);

  check_close(fused.value(), oracle.value(), tol, std::string(c.name) + ": forward");
  {  // the dropout path (composite, used when probabilities are dropped) agrees at p ~ 0
    Tape t3;
    AttentionSpec d = s;
    d.dropout = 1e-12;
    if (c.bias) d.bias = t3.constant(bias);
    if (c.null_kv) {
      d.null_k = t3.constant(nk);
      d.null_v = t3.constant(nv);
    }
    check_close(attention(t3.constant(q), t3.constant(k), t3.constant(v), d).value(), oracle.value(), tol,
                std::string(c.name) + ": dropout path");
  }
  const Var r1[] = {fused}, r2[] = {oracle};
  const Tensor sd[] = {seed};
  t1.backward(r1, sd);
  t2.backward(r2, sd);
  const char* names[] = {"dq", "dk", "dv", "dbias", "dnull_k", "dnull_v"};
  for (size_t i = 0; i < 6; ++i) {
    if ((i == 3 && !c.bias) || (i >= 4 && !c.null_kv)) continue;
    check_close(t1.grad(in1[i]), t2.grad(in2[i]), tol, std::string(c.name) + ": " + names[i]);
  }
}

std::vector<Case> cases() {
  Rng rng(5);
  std::vector<Case> c;
  c.push_back({"full", 2, 2, 2, 70, 90, 8, {}});
  c.push_back({"causal square", 1, 2, 2, 130, 130, 8, {.causal = true}});
  c.push_back({"causal after 64 memory keys", 2, 2, 2, 100, 164, 8, {.prefix = 64, .causal = true}});
  c.push_back({"causal bottom-right, no prefix", 1, 2, 2, 70, 150, 4, {.causal = true}});
  c.push_back({"sliding window", 1, 2, 2, 140, 140, 4, {.causal = true, .window = 48}});
  c.push_back({"window, not causal", 1, 1, 1, 80, 80, 4, {.window = 20}});
  c.push_back({"memory read/write slots", 1, 2, 2, 100, 100, 4, {.causal = true, .read_rows = 8, .write_rows = 8}});
  c.push_back({"key padding", 2, 2, 2, 70, 80, 4, {.causal = true, .key_padding = random_u8({2, 80}, rng, 0.7)}});
  c.push_back({"dense mask", 2, 2, 2, 66, 70, 4, {.mask = random_u8({2, 2, 66, 70}, rng, 0.6)}});
  c.push_back({"bias and scale 8", 1, 2, 2, 70, 100, 4, {.scale = 8.0, .prefix = 30, .causal = true}, true});
  c.push_back({"per-batch bias", 2, 2, 2, 70, 80, 4, {.causal = true}, true});
  c.push_back({"shared key/value head", 2, 4, 1, 70, 100, 8, {.prefix = 30, .causal = true}});
  c.push_back({"null key/value", 2, 2, 2, 70, 70, 4, {.causal = true, .key_padding = random_u8({2, 70}, rng, 0.8)}, true, true});
  c.push_back({"everything masked for some rows", 1, 1, 1, 65, 65, 4, {.mask = random_u8({65, 65}, rng, 0.03)}});
  return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(attention_op)

BOOST_AUTO_TEST_CASE(fused_matches_composite_f64) {
  for (const Case& c : cases()) run_case(c, DType::f64, 1e-10);
}

BOOST_AUTO_TEST_CASE(fused_matches_composite_f32) {
  for (const Case& c : cases()) run_case(c, DType::f32, 2e-5);
}

BOOST_AUTO_TEST_CASE(rows_that_see_nothing_output_zero) {
  Rng rng(2);
  Tape t;
  Var q = t.input(Tensor::randn({2, 1, 3, 4}, rng, DType::f64));
  Var k = t.input(Tensor::randn({2, 1, 5, 4}, rng, DType::f64));
  Var v = t.input(Tensor::randn({2, 1, 5, 4}, rng, DType::f64));
  const Tensor pad = Tensor::from({2, 5}, {0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, DType::u8);  // batch 0 has no keys
  Var o = attention(q, k, v, {.key_padding = pad});
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) BOOST_TEST(o.value().at({0, 0, i, j}) == 0.0);
  t.backward(sum(o * o) + sum(o));
  for (const Var& x : {q, k, v})
    for (double g : t.grad(x).to_vector()) BOOST_TEST(std::isfinite(g));
  BOOST_TEST(t.grad(q).at({0, 0, 1, 2}) == 0.0);
  BOOST_TEST(t.grad(k).at({0, 0, 3, 1}) == 0.0);
}

BOOST_AUTO_TEST_CASE(bad_specs_are_named) {
  Tape t;
  Var q = t.constant(Tensor::zeros({1, 2, 3, 4})), k = t.constant(Tensor::zeros({1, 2, 5, 4}));
  auto has = [](std::string part) {
    return [part](const Error& e) { return std::string(e.what()).find(part) != std::string::npos; };
  };
  BOOST_CHECK_EXCEPTION(attention(q, t.constant(Tensor::zeros({1, 3, 5, 4})), t.constant(Tensor::zeros({1, 3, 5, 4}))),
                        Error, has("[attention] k (1, 3, 5, 4)"));
  BOOST_CHECK_EXCEPTION(attention(q, k, k, {.prefix = 6}), Error, has("prefix 6"));
  BOOST_CHECK_EXCEPTION(attention(q, k, k, {.read_rows = 2, .write_rows = 2}), Error, has("exceed Tq 3"));
  BOOST_CHECK_EXCEPTION(attention(q, k, k, {.key_padding = Tensor::zeros({1, 4}, DType::u8)}), Error,
                        has("key_padding must be u8 (1, 5)"));
  BOOST_CHECK_EXCEPTION(attention(q, k, k, {.mask = Tensor::zeros({3, 4}, DType::u8)}), Error, has("(1, 2, 3, 5)"));
  BOOST_CHECK_EXCEPTION(attention(q, k, k, {.bias = t.constant(Tensor::zeros({2, 3, 4}))}), Error,
                        has("bias must be (2, 3, 5)"));
  BOOST_CHECK_EXCEPTION(attention(q, k, k, {.null_k = t.constant(Tensor::zeros({2, 4}))}), Error, has("null_k"));
}

BOOST_AUTO_TEST_SUITE_END()
