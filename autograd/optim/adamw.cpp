// AdamW's bookkeeping: config checks, lazily allocated moments, the step count and bias
// corrections. The arithmetic itself is the adamw_step kernel (kernels/cpu/optim.cpp; reference/optim.cpp).
#include "autograd/optim/adamw.h"

#include <cmath>

#include "autograd/dispatch.h"

namespace mnemo {
namespace {

void check_lr(double lr) { MNEMO_CHECK(lr >= 0, "[adamw] lr must be >= 0, got " << lr); }

// Each check states what must hold, so a NaN (false in every comparison) is rejected too.
AdamWConfig validated(AdamWConfig cfg) {
  check_lr(cfg.lr);
  MNEMO_CHECK(cfg.beta1 >= 0 && cfg.beta1 < 1, "[adamw] beta1 must be in [0, 1), got " << cfg.beta1);
  MNEMO_CHECK(cfg.beta2 >= 0 && cfg.beta2 < 1, "[adamw] beta2 must be in [0, 1), got " << cfg.beta2);
  MNEMO_CHECK(cfg.eps > 0, "[adamw] eps must be > 0, got " << cfg.eps);
  MNEMO_CHECK(cfg.weight_decay >= 0, "[adamw] weight_decay must be >= 0, got " << cfg.weight_decay);
  return cfg;
}

}  // namespace

AdamW::AdamW(NamedParams params, AdamWConfig cfg)
    : cfg_(validated(std::move(cfg))), index_("adamw", std::move(params), cfg_.no_decay), state_(index_.size()) {}

void AdamW::step() {
  optim_detail::check_grads("adamw", index_);
  ++step_;
  kernels::AdamWHyper h{};
  h.lr = cfg_.lr;
  h.beta1 = cfg_.beta1;
  h.beta2 = cfg_.beta2;
  h.eps = cfg_.eps;
  for (size_t i = 0; i < index_.size(); ++i) {
    Param& p = index_.param(i);
    if (!p.grad.defined()) continue;
    State& st = state_[i];
    if (!st.m.defined()) st = State{p.value.zeros_like(), p.value.zeros_like(), 0};
    ++st.step;  // per param, as PyTorch: a param first updated late gets its own t = 1
    h.bias_correction1 = 1.0 - std::pow(cfg_.beta1, double(st.step));
    h.bias_correction2 = 1.0 - std::pow(cfg_.beta2, double(st.step));
    h.weight_decay = index_.decays(i) ? cfg_.weight_decay : 0.0;
    launch(kernels::adamw_step, p.value, p.value, p.grad, st.m, st.v, p.value.numel(), h);
    p.value.bump_version();  // new weights: no cached bf16 copy of the old ones may serve
  }
}

void AdamW::zero_grad() {
  for (size_t i = 0; i < index_.size(); ++i) index_.param(i).zero_grad();
}

void AdamW::set_lr(double lr) {
  check_lr(lr);
  cfg_.lr = lr;
}

void AdamW::set_step(int64_t step) {
  MNEMO_CHECK(step >= 0, "[adamw] step must be >= 0, got " << step);
  step_ = step;
}

void AdamW::set_state(const Param* p, State s) {
  const size_t i = index_.find(p);
  MNEMO_CHECK(s.m.defined() == s.v.defined(),
              "[adamw] state of '" << index_.name(i) << "' needs both m and v, or neither");
  if (s.m.defined()) {
    optim_detail::check_state_like("adamw", "m", index_.name(i), *p, s.m);
    optim_detail::check_state_like("adamw", "v", index_.name(i), *p, s.v);
  }
  MNEMO_CHECK(s.step >= 0 && (s.step > 0) == s.m.defined(),
              "[adamw] state of '" << index_.name(i) << "' has step " << s.step
                                   << (s.m.defined() ? " with" : " without") << " moments");
  state_[i] = std::move(s);
}

}  // namespace mnemo
