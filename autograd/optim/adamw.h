// AdamW (Loshchilov & Hutter): Adam with weight decay applied to the weights, not folded
// into the gradient; matches torch.optim.AdamW (amsgrad=False, maximize=False).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/optim/optimizer.h"

namespace mnemo {

struct AdamWConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  // Globs (see glob_match) over param names whose params get weight_decay 0: typically
  // biases and norm gains. A glob that matches no name is an error.
  std::vector<std::string> no_decay = {};  // "= {}" keeps -Wextra quiet about designated initializers
};

class AdamW {
 public:
  struct State {
    Tensor m, v;       // first and second moments; undefined until the param's first update
    int64_t step = 0;  // updates this param has had: its bias corrections use this t
  };

  AdamW(NamedParams params, AdamWConfig cfg);

  // One update of every param with a defined grad. Bias corrections 1 - beta^t use each
  // param's own update count t, as PyTorch does; params without a grad keep value and state.
  void step();
  void zero_grad();

  void set_lr(double lr);
  double lr() const { return cfg_.lr; }
  const AdamWConfig& config() const { return cfg_; }

  int64_t steps() const { return step_; }  // calls to step(), for schedules
  void set_step(int64_t step);  // for checkpoint restore, with set_state

  std::vector<Param*> params() const { return index_.params(); }
  const NamedParams& named_params() const { return index_.named(); }
  bool decays(const Param* p) const { return index_.decays(index_.find(p)); }

  const State& state(const Param* p) const { return state_[index_.find(p)]; }
  // Takes the tensors (no copy). m and v must both be undefined or both match the param.
  void set_state(const Param* p, State s);

 private:
  AdamWConfig cfg_;  // first: validated before the params are looked at
  optim_detail::ParamIndex index_;
  std::vector<State> state_;
  int64_t step_ = 0;
};

}  // namespace mnemo
