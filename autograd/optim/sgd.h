// SGD with optional momentum, dampening, Nesterov momentum and L2 weight decay (added to
// the gradient, not decoupled); matches torch.optim.SGD (maximize=False).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/optim/optimizer.h"

namespace mnemo {

struct SgdConfig {
  double lr = 1e-2, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0, as in PyTorch
  // Globs (see glob_match) over param names whose params get weight_decay 0. A glob that
  // matches no name is an error.
  std::vector<std::string> no_decay = {};  // "= {}" keeps -Wextra quiet about designated initializers
};

class Sgd {
 public:
  struct State {
    // Undefined until the param's first update with momentum != 0; that update sets it to
    // the (decayed) gradient itself, undampened, as PyTorch does.
    Tensor momentum_buffer;
  };

  Sgd(NamedParams params, SgdConfig cfg);

  void step();  // params without a grad keep their value and state
  void zero_grad();

  void set_lr(double lr);
  double lr() const { return cfg_.lr; }
  const SgdConfig& config() const { return cfg_; }

  int64_t steps() const { return step_; }  // step() calls; SGD's update does not use it
  void set_step(int64_t step);

  std::vector<Param*> params() const { return index_.params(); }
  const NamedParams& named_params() const { return index_.named(); }
  bool decays(const Param* p) const { return index_.decays(index_.find(p)); }

  const State& state(const Param* p) const { return state_[index_.find(p)]; }
  // Takes the tensor (no copy); undefined means the next update starts the buffer afresh.
  void set_state(const Param* p, State s);

 private:
  SgdConfig cfg_;  // first: validated before the params are looked at
  optim_detail::ParamIndex index_;
  std::vector<State> state_;
  int64_t step_ = 0;
};

}  // namespace mnemo
