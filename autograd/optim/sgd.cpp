// SGD's bookkeeping: config checks, lazily started momentum buffers and the first-step
// flag. The arithmetic itself is the sgd_step kernel (kernels/cpu/optim.cpp; reference/optim.cpp).
#include "autograd/optim/sgd.h"

#include "autograd/dispatch.h"

namespace mnemo {
namespace {

void check_lr(double lr) { MNEMO_CHECK(lr >= 0, "[sgd] lr must be >= 0, got " << lr); }

// Each check states what must hold, so a NaN (false in every comparison) is rejected too.
SgdConfig validated(SgdConfig cfg) {
  check_lr(cfg.lr);
  MNEMO_CHECK(cfg.momentum >= 0, "[sgd] momentum must be >= 0, got " << cfg.momentum);
  MNEMO_CHECK(cfg.dampening >= 0 && cfg.dampening <= 1, "[sgd] dampening must be in [0, 1], got " << cfg.dampening);
  MNEMO_CHECK(cfg.weight_decay >= 0, "[sgd] weight_decay must be >= 0, got " << cfg.weight_decay);
  MNEMO_CHECK(!cfg.nesterov || (cfg.momentum > 0 && cfg.dampening == 0),
              "[sgd] nesterov needs momentum > 0 and dampening 0, got momentum " << cfg.momentum << ", dampening "
                                                                                  << cfg.dampening);
  return cfg;
}

}  // namespace

Sgd::Sgd(NamedParams params, SgdConfig cfg)
    : cfg_(validated(std::move(cfg))), index_("sgd", std::move(params), cfg_.no_decay), state_(index_.size()) {}

void Sgd::step() {
  optim_detail::check_grads("sgd", index_);
  ++step_;
  kernels::SgdHyper h{};
  h.lr = cfg_.lr;
  h.momentum = cfg_.momentum;
  h.dampening = cfg_.dampening;
  h.nesterov = cfg_.nesterov;
  for (size_t i = 0; i < index_.size(); ++i) {
    Param& p = index_.param(i);
    if (!p.grad.defined()) continue;
    Tensor& buf = state_[i].momentum_buffer;
    // Without momentum there is no buffer: the kernel then gets a null pointer it never reads.
    h.first_step = cfg_.momentum != 0 && !buf.defined();
    if (h.first_step) buf = p.value.zeros_like();  // zeros: no backend may read garbage
    h.weight_decay = index_.decays(i) ? cfg_.weight_decay : 0.0;
    launch(kernels::sgd_step, p.value, p.value, p.grad, buf, p.value.numel(), h);
    p.value.bump_version();  // new weights: no cached bf16 copy of the old ones may serve
  }
}

void Sgd::zero_grad() {
  for (size_t i = 0; i < index_.size(); ++i) index_.param(i).zero_grad();
}

void Sgd::set_lr(double lr) {
  check_lr(lr);
  cfg_.lr = lr;
}

void Sgd::set_step(int64_t step) {
  MNEMO_CHECK(step >= 0, "[sgd] step must be >= 0, got " << step);
  step_ = step;
}

void Sgd::set_state(const Param* p, State s) {
  const size_t i = index_.find(p);
  if (s.momentum_buffer.defined())
    optim_detail::check_state_like("sgd", "momentum_buffer", index_.name(i), *p, s.momentum_buffer);
  state_[i] = std::move(s);
}

}  // namespace mnemo
