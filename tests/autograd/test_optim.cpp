// Tests for the optimizer layer: AdamW and SGD against updates written out on plain
// doubles, weight-decay globs, gradient clipping, lr schedules and config validation.
// All params are f64, so the kernels' results must agree to ~1e-12.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "autograd/optim/adamw.h"
#include "autograd/optim/optimizer.h"
#include "autograd/optim/schedule.h"
#include "autograd/optim/sgd.h"

using namespace mnemo;
namespace tt = boost::test_tools;

namespace {

using Vec = std::vector<double>;

Param make_param(const Vec& v) { return Param(Tensor::from(Shape{int64_t(v.size())}, v, DType::f64)); }
void set_grad(Param& p, const Vec& g) { p.grad = Tensor::from(p.value.shape(), g, DType::f64); }

void check_close(const Vec& got, const Vec& want) {
  BOOST_TEST_REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) BOOST_TEST(got[i] == want[i], tt::tolerance(1e-12));
}

// Predicate for BOOST_CHECK_EXCEPTION; prints the actual message when it does not match.
auto message_has(std::string part) {
  return [part](const Error& e) {
    const bool ok = std::string(e.what()).find(part) != std::string::npos;
    if (!ok) BOOST_TEST_MESSAGE("expected '" << part << "' in: " << e.what());
    return ok;
  };
}

// Textbook AdamW (bias-corrected moments, eps outside the sqrt as in PyTorch), written
// independently of the kernel's rearranged form.
struct RefAdamW {
  double lr, b1, b2, eps, wd;
  Vec w, m = Vec(w.size()), v = Vec(w.size());
  int t = 0;

  void step(const Vec& g) {
    ++t;
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] -= lr * wd * w[i];
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(b1, t));
      const double v_hat = v[i] / (1 - std::pow(b2, t));
      w[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

// torch.optim.SGD's documented update, element by element.
struct RefSgd {
  double lr, momentum, dampening, wd;
  bool nesterov;
  Vec w, buf = Vec(w.size());
  bool started = false;

  void step(const Vec& g) {
    for (size_t i = 0; i < w.size(); ++i) {
      double d = g[i] + wd * w[i];
      if (momentum != 0) {
        buf[i] = started ? momentum * buf[i] + (1 - dampening) * d : d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      w[i] -= lr * d;
    }
    started = true;
  }
};

const std::vector<Vec> kGrads = {{0.1, -0.2, 0.3}, {0.5, 0.0, -0.4}, {-0.3, 0.25, 1.0}};
const Vec kW0 = {1.0, -2.0, 0.5};

}  // namespace

BOOST_AUTO_TEST_SUITE(optim)

BOOST_AUTO_TEST_CASE(adamw_matches_hand_computation_over_three_steps) {
  Param p = make_param(kW0);
  AdamW opt({{"w", &p}}, AdamWConfig{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1});
  RefAdamW ref{.lr = 0.1, .b1 = 0.9, .b2 = 0.99, .eps = 1e-8, .wd = 0.1, .w = kW0};
  BOOST_TEST(!opt.state(&p).m.defined());  // lazily allocated

  for (int s = 0; s < 3; ++s) {
    set_grad(p, kGrads[s]);
    opt.step();
    ref.step(kGrads[s]);
    if (s == 0) {
      // Step 1 by hand: bias correction makes m_hat = g and v_hat = g^2, so the update is
      // lr * g / (|g| + eps) after decaying w by (1 - lr wd) = 0.99.
      BOOST_TEST(p.value.at({0}) == 0.99 * 1.0 - 0.1 * 0.1 / (0.1 + 1e-8), tt::tolerance(1e-12));
      BOOST_TEST(p.value.at({1}) == 0.99 * -2.0 + 0.1 * 0.2 / (0.2 + 1e-8), tt::tolerance(1e-12));
    }
    check_close(p.value.to_vector(), ref.w);
  }
  BOOST_TEST(opt.steps() == 3);
  check_close(opt.state(&p).m.to_vector(), ref.m);
  check_close(opt.state(&p).v.to_vector(), ref.v);
}

BOOST_AUTO_TEST_CASE(adamw_no_decay_globs_select_params) {
  // With zero grads the moments stay 0 and the Adam term vanishes, leaving only the decay.
  Param w = make_param({1.0, 2.0, -3.0});
  Param b = make_param({1.0, 2.0, -3.0});
  AdamW opt({{"layers.0.w", &w}, {"layers.0.ln.b", &b}},
            AdamWConfig{.lr = 0.1, .weight_decay = 0.5, .no_decay = {"*.ln.*"}});
  BOOST_TEST(opt.decays(&w));
  BOOST_TEST(!opt.decays(&b));
  set_grad(w, {0, 0, 0});
  set_grad(b, {0, 0, 0});
  opt.step();
  check_close(w.value.to_vector(), {0.95, 1.9, -2.85});
  check_close(b.value.to_vector(), {1.0, 2.0, -3.0});

  AdamW by_suffix({{"layers.0.w", &w}, {"layers.0.ln.b", &b}}, AdamWConfig{.no_decay = {"*.b"}});
  BOOST_TEST(by_suffix.decays(&w));
  BOOST_TEST(!by_suffix.decays(&b));
}

BOOST_AUTO_TEST_CASE(adamw_skips_params_without_grad) {
  Param a = make_param(kW0);
  Param b = make_param(kW0);
  AdamW opt({{"a", &a}, {"b", &b}}, AdamWConfig{.lr = 0.1});
  set_grad(a, kGrads[0]);
  opt.step();
  check_close(b.value.to_vector(), kW0);
  BOOST_TEST(!opt.state(&b).m.defined());
  BOOST_TEST(opt.state(&a).m.defined());
}

BOOST_AUTO_TEST_CASE(adamw_state_restores_into_a_fresh_optimizer) {
  const AdamWConfig cfg{.lr = 0.05, .weight_decay = 0.2};
  Param a = make_param(kW0);
  AdamW opt({{"a", &a}}, cfg);
  for (int s = 0; s < 2; ++s) {
    set_grad(a, kGrads[s]);
    opt.step();
  }
  Param b(a.value.clone());
  AdamW resumed({{"a", &b}}, cfg);
  resumed.set_step(opt.steps());
  resumed.set_state(&b, {opt.state(&a).m.clone(), opt.state(&a).v.clone(), opt.state(&a).step});
  set_grad(a, kGrads[2]);
  set_grad(b, kGrads[2]);
  opt.step();
  resumed.step();
  check_close(b.value.to_vector(), a.value.to_vector());
}

BOOST_AUTO_TEST_CASE(adamw_config_validation) {
  Param p = make_param(kW0);
  auto make = [&](AdamWConfig cfg) { AdamW opt({{"layers.0.ln.b", &p}}, cfg); };
  BOOST_CHECK_EXCEPTION(make({.beta1 = 1.5}), Error, message_has("[adamw] beta1 must be in [0, 1), got 1.5"));
  BOOST_CHECK_EXCEPTION(make({.beta2 = -0.1}), Error, message_has("[adamw] beta2"));
  BOOST_CHECK_EXCEPTION(make({.lr = -1}), Error, message_has("[adamw] lr"));
  BOOST_CHECK_EXCEPTION(make({.lr = std::nan("")}), Error, message_has("[adamw] lr"));
  BOOST_CHECK_EXCEPTION(make({.eps = 0}), Error, message_has("[adamw] eps"));
  BOOST_CHECK_EXCEPTION(make({.weight_decay = -0.01}), Error, message_has("[adamw] weight_decay"));
  BOOST_CHECK_EXCEPTION(make({.no_decay = {"*.bais"}}), Error,
                        message_has("[adamw] no_decay pattern '*.bais' matches no parameter"));

  AdamW opt({{"w", &p}}, AdamWConfig{});
  BOOST_CHECK_EXCEPTION(opt.set_lr(-1e-3), Error, message_has("[adamw] lr"));
  opt.set_lr(3e-4);
  BOOST_TEST(opt.lr() == 3e-4);
  p.grad = Tensor::from(Shape{2}, {1.0, 2.0}, DType::f64);
  BOOST_CHECK_EXCEPTION(opt.step(), Error, message_has("[adamw] grad of 'w' has shape"));
  p.grad = Tensor::from(Shape{3}, {1.0, 2.0, 3.0}, DType::f32);
  BOOST_CHECK_EXCEPTION(opt.step(), Error, message_has("[adamw] grad of 'w' is f32"));
  BOOST_TEST(opt.steps() == 0);  // a rejected step changes nothing

  Param q = make_param(kW0);
  BOOST_CHECK_EXCEPTION(AdamW({{"w", &p}, {"w", &q}}, {}), Error, message_has("[adamw] duplicate parameter name"));
  BOOST_CHECK_EXCEPTION(AdamW({{"w", &p}, {"v", &p}}, {}), Error, message_has("[adamw] parameter 'v' is listed twice"));
}

BOOST_AUTO_TEST_CASE(sgd_momentum_and_nesterov_match_hand_computation) {
  // Hand-unrolled for w = 1, g = 0.5 twice, lr 0.1, momentum 0.9:
  //   plain:    buf 0.5 -> w 0.95;   buf 0.9*0.5+0.5 = 0.95 -> w 0.855
  //   nesterov: buf 0.5, d 0.5+0.45 = 0.95 -> w 0.905;   buf 0.95, d 0.5+0.855 -> w 0.7695
  for (const bool nesterov : {false, true}) {
    Param p = make_param({1.0});
    Sgd opt({{"w", &p}}, SgdConfig{.lr = 0.1, .momentum = 0.9, .nesterov = nesterov});
    set_grad(p, {0.5});
    opt.step();
    BOOST_TEST(p.value.item() == (nesterov ? 0.905 : 0.95), tt::tolerance(1e-12));
    opt.step();
    BOOST_TEST(p.value.item() == (nesterov ? 0.7695 : 0.855), tt::tolerance(1e-12));
  }
}

BOOST_AUTO_TEST_CASE(sgd_matches_reference_over_three_steps) {
  const SgdConfig configs[] = {
      {.lr = 0.1},
      {.lr = 0.1, .weight_decay = 0.05},
      {.lr = 0.1, .momentum = 0.9, .dampening = 0.2, .weight_decay = 0.05},
      {.lr = 0.05, .momentum = 0.8, .weight_decay = 0.01, .nesterov = true},
  };
  for (const SgdConfig& cfg : configs) {
    Param p = make_param(kW0);
    Sgd opt({{"w", &p}}, cfg);
    RefSgd ref{cfg.lr, cfg.momentum, cfg.dampening, cfg.weight_decay, cfg.nesterov, kW0};
    for (const Vec& g : kGrads) {
      set_grad(p, g);
      opt.step();
      ref.step(g);
      check_close(p.value.to_vector(), ref.w);
    }
    BOOST_TEST(opt.state(&p).momentum_buffer.defined() == (cfg.momentum != 0));
    if (cfg.momentum != 0) check_close(opt.state(&p).momentum_buffer.to_vector(), ref.buf);
  }
}

BOOST_AUTO_TEST_CASE(sgd_no_decay_and_validation) {
  Param w = make_param({1.0, 2.0, -3.0});
  Param b = make_param({1.0, 2.0, -3.0});
  Sgd opt({{"layers.0.w", &w}, {"layers.0.ln.b", &b}}, SgdConfig{.lr = 0.1, .weight_decay = 0.5, .no_decay = {"*.b"}});
  set_grad(w, {0, 0, 0});
  set_grad(b, {0, 0, 0});
  opt.step();
  check_close(w.value.to_vector(), {0.95, 1.9, -2.85});
  check_close(b.value.to_vector(), {1.0, 2.0, -3.0});

  auto make = [&](SgdConfig cfg) { Sgd s({{"layers.0.w", &w}}, cfg); };
  BOOST_CHECK_EXCEPTION(make({.lr = -0.1}), Error, message_has("[sgd] lr"));
  BOOST_CHECK_EXCEPTION(make({.momentum = -0.5}), Error, message_has("[sgd] momentum"));
  BOOST_CHECK_EXCEPTION(make({.dampening = 1.5}), Error, message_has("[sgd] dampening"));
  BOOST_CHECK_EXCEPTION(make({.weight_decay = -1}), Error, message_has("[sgd] weight_decay"));
  BOOST_CHECK_EXCEPTION(make({.nesterov = true}), Error, message_has("[sgd] nesterov"));
  BOOST_CHECK_EXCEPTION(make({.momentum = 0.9, .dampening = 0.1, .nesterov = true}), Error,
                        message_has("[sgd] nesterov"));
  BOOST_CHECK_EXCEPTION(make({.no_decay = {"*.bais"}}), Error,
                        message_has("[sgd] no_decay pattern '*.bais' matches no parameter"));
}

BOOST_AUTO_TEST_CASE(clip_grad_norm_measures_and_scales) {
  Param a = make_param({0, 0});
  Param b = make_param({0});
  Param no_grad = make_param({0});
  set_grad(a, {3, 4});
  set_grad(b, {12});
  const std::vector<Param*> ps = {&a, &no_grad, &b};

  BOOST_TEST(clip_grad_norm(ps, 26.0) == 13.0, tt::tolerance(1e-12));  // below the max: untouched
  check_close(a.grad.to_vector(), {3, 4});
  BOOST_TEST(clip_grad_norm(ps, 0.0) == 13.0, tt::tolerance(1e-12));   // measure only
  check_close(b.grad.to_vector(), {12});

  BOOST_TEST(clip_grad_norm(ps, 6.5) == 13.0, tt::tolerance(1e-12));
  const double f = 6.5 / (13.0 + 1e-6);
  check_close(a.grad.to_vector(), {3 * f, 4 * f});
  check_close(b.grad.to_vector(), {12 * f});
  BOOST_TEST(!no_grad.grad.defined());
  BOOST_TEST(clip_grad_norm(ps, 6.5) == 13.0 * f, tt::tolerance(1e-12));

  zero_grad(ps);
  check_close(a.grad.to_vector(), {0, 0});
  BOOST_TEST(clip_grad_norm(ps, 1.0) == 0.0);
}

BOOST_AUTO_TEST_CASE(glob_match_cases) {
  BOOST_TEST(glob_match("layers.0.w", "layers.0.w"));
  BOOST_TEST(!glob_match("layers.0.w", "layers.0.w2"));
  BOOST_TEST(glob_match("*", ""));
  BOOST_TEST(glob_match("*", "layers.0.ln.b"));
  BOOST_TEST(glob_match("*.b", "layers.0.ln.b"));  // '*' crosses dots
  BOOST_TEST(!glob_match("*.b", "layers.0.ln.bias"));
  BOOST_TEST(glob_match("*.ln.*", "layers.0.ln.b"));
  BOOST_TEST(!glob_match("*.ln.*", "layers.0.w"));
  BOOST_TEST(glob_match("layers.?.w", "layers.0.w"));
  BOOST_TEST(!glob_match("layers.?.w", "layers.10.w"));
  BOOST_TEST(glob_match("layers.*.w", "layers.10.w"));
  BOOST_TEST(!glob_match("?", ""));
  BOOST_TEST(glob_match("", ""));
  BOOST_TEST(!glob_match("", "a"));
  BOOST_TEST(glob_match("a*b*c", "aXbYc"));
  BOOST_TEST(!glob_match("a*b*c", "aXcYb"));
  BOOST_TEST(glob_match("**b", "aab"));
  BOOST_TEST(glob_match("*ab", "aab"));  // needs backtracking past the first 'a'
}

BOOST_AUTO_TEST_CASE(schedule_values_at_key_steps) {
  const Schedule s{.kind = Schedule::Kind::warmup_cosine, .base_lr = 1e-3, .warmup_steps = 10,
                   .total_steps = 110, .min_lr = 1e-4};
  BOOST_TEST(s.lr_at(0) == 1e-4, tt::tolerance(1e-12));   // base * 1/10
  BOOST_TEST(s.lr_at(4) == 5e-4, tt::tolerance(1e-12));
  BOOST_TEST(s.lr_at(9) == 1e-3, tt::tolerance(1e-12));   // warm-up reaches base
  BOOST_TEST(s.lr_at(10) == 1e-3, tt::tolerance(1e-12));  // cosine starts at base
  BOOST_TEST(s.lr_at(60) == 5.5e-4, tt::tolerance(1e-12));  // half way: (base + min) / 2
  const double near_end = 1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(std::numbers::pi * 99.0 / 100.0));
  BOOST_TEST(s.lr_at(109) == near_end, tt::tolerance(1e-12));
  BOOST_TEST(s.lr_at(110) == 1e-4, tt::tolerance(1e-12));
  BOOST_TEST(s.lr_at(100000) == 1e-4, tt::tolerance(1e-12));

  const Schedule constant{.base_lr = 2e-3};
  BOOST_TEST(constant.lr_at(0) == 2e-3);
  BOOST_TEST(constant.lr_at(1000) == 2e-3);
  const Schedule warm_constant{.base_lr = 2e-3, .warmup_steps = 4};
  BOOST_TEST(warm_constant.lr_at(1) == 1e-3, tt::tolerance(1e-12));
  BOOST_TEST(warm_constant.lr_at(4) == 2e-3);
}

BOOST_AUTO_TEST_CASE(schedule_validation) {
  auto lr0 = [](Schedule s) { return s.lr_at(0); };
  using K = Schedule::Kind;
  BOOST_CHECK_EXCEPTION(lr0({.kind = K::warmup_cosine, .warmup_steps = 10, .total_steps = 10}), Error,
                        message_has("[schedule] warmup_cosine needs total_steps > warmup_steps"));
  BOOST_CHECK_EXCEPTION(lr0({.kind = K::warmup_cosine, .base_lr = 1e-3, .total_steps = 10, .min_lr = 1e-2}), Error,
                        message_has("[schedule] min_lr"));
  BOOST_CHECK_EXCEPTION(lr0({.base_lr = -1}), Error, message_has("[schedule] base_lr"));
  BOOST_CHECK_EXCEPTION(lr0({.warmup_steps = -1}), Error, message_has("[schedule] warmup_steps"));
  BOOST_CHECK_EXCEPTION(Schedule{}.lr_at(-1), Error, message_has("[schedule] step"));
}

BOOST_AUTO_TEST_SUITE_END()
