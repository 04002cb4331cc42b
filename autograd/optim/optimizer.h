// What every optimizer shares: named parameter lists, name globs (for no_decay lists),
// global gradient-norm clipping and zeroing of gradients.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "autograd/param.h"

namespace mnemo {

// Parameters with the dotted names a module gives them ("layers.0.attn.w").
using NamedParams = std::vector<std::pair<std::string, Param*>>;

// fnmatch-style match of the whole name: '*' is any run of characters (dots included, so
// "*.b" matches "layers.0.ln.b"), '?' is any one character. No classes, no escapes.
bool glob_match(std::string_view pattern, std::string_view name);

// Scales all defined grads together so that their global L2 norm is at most max_norm
// (factor max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_), only when the norm
// exceeds max_norm. max_norm <= 0 only measures. Returns the norm before clipping; it is
// inf or NaN when a grad is, which callers should treat as "skip this step".
double clip_grad_norm(std::span<Param* const> params, double max_norm);

void zero_grad(std::span<Param* const> params);

// Shared by the optimizers; `op` ("adamw", "sgd") starts every message.
namespace optim_detail {

// The optimizer's view of its params: names, which ones decay, and a Param* -> slot lookup
// for per-param state. Construction rejects null or repeated params, repeated names,
// non-float values, and no_decay globs that match nothing (almost always a typo that would
// silently decay everything).
class ParamIndex {
 public:
  ParamIndex(const char* op, NamedParams params, const std::vector<std::string>& no_decay);

  size_t size() const { return params_.size(); }
  const std::string& name(size_t i) const { return params_[i].first; }
  Param& param(size_t i) const { return *params_[i].second; }
  bool decays(size_t i) const { return decays_[i]; }
  const NamedParams& named() const { return params_; }
  std::vector<Param*> params() const;
  size_t find(const Param* p) const;  // throws for a param this optimizer does not hold

 private:
  const char* op_;
  NamedParams params_;
  std::vector<bool> decays_;
  std::unordered_map<const Param*, size_t> slot_;
};

// Checks every defined grad before any update, so a bad one leaves all params untouched.
void check_grads(const char* op, const ParamIndex& index);
// A restored state tensor must look exactly like its param.
void check_state_like(const char* op, const char* what, const std::string& name, const Param& p, const Tensor& t);

}  // namespace optim_detail

}  // namespace mnemo
