// Name globs, global gradient-norm clipping and the checks both optimizers share.
// Norms and scaling go through kernel slots so they run wherever the grads live.
#include "autograd/optim/optimizer.h"

#include <cmath>
#include <unordered_set>

#include "autograd/dispatch.h"

namespace mnemo {

bool glob_match(std::string_view pattern, std::string_view name) {
  // Greedy scan remembering the last '*': on a mismatch, let that '*' swallow one more
  // character and retry. At worst O(|pattern| |name|), and no recursion.
  size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

double clip_grad_norm(std::span<Param* const> params, double max_norm) {
  // Each gradient's sum of squares lands in one double on its device, all read back at once:
  // one wait for the device per step, summed in parameter order on the host as before.
  std::vector<const Param*> with_grad;
  for (const Param* p : params)
    if (p->grad.defined()) with_grad.push_back(p);
  if (with_grad.empty()) return 0.0;
  const Tensor sums = Tensor::empty(Shape{int64_t(with_grad.size())}, DType::f64, with_grad[0]->grad.device());
  double* out = kernel_ptr<double>(sums, sums, "clip_grad_norm");
  for (size_t i = 0; i < with_grad.size(); ++i) {
    const Tensor& g = with_grad[i]->grad;
    MNEMO_CHECK(g.device() == sums.device(),
                "[clip_grad_norm] gradients on " << sums.device() << " and " << g.device());
    launch(kernels::sum_squares, g, out + i, g, g.numel());
  }
  double sum = 0;
  for (double v : sums.to_vector()) sum += v;
  const double norm = std::sqrt(sum);
  if (max_norm <= 0 || !(norm > max_norm)) return norm;  // a NaN norm is returned, not applied
  const double factor = max_norm / (norm + 1e-6);
  // In place through the affine map (y = factor x), an exact multiply like torch's mul_.
  for (const Param* p : params)
    if (p->grad.defined())
      launch(kernels::unary_forward, p->grad, kernels::Unary::affine, p->grad, p->grad, p->grad.numel(), factor, 0.0);
  return norm;
}

void zero_grad(std::span<Param* const> params) {
  for (Param* p : params) p->zero_grad();
}

namespace optim_detail {

namespace {

void check_params(const char* op, const NamedParams& params) {
  std::unordered_set<std::string_view> names;
  std::unordered_set<const Param*> seen;
  for (const auto& [name, p] : params) {
    MNEMO_CHECK(p, "[" << op << "] parameter '" << name << "' is null");
    MNEMO_CHECK(names.insert(name).second, "[" << op << "] duplicate parameter name '" << name << "'");
    MNEMO_CHECK(seen.insert(p).second, "[" << op << "] parameter '" << name << "' is listed twice (under another name)");
    MNEMO_CHECK(p->value.defined(), "[" << op << "] parameter '" << name << "' has no value");
    const DType t = p->value.dtype();
    MNEMO_CHECK(t == DType::f32 || t == DType::f64,
                "[" << op << "] parameter '" << name << "' must be f32 or f64, got " << t);
  }
}

std::vector<bool> decay_mask(const char* op, const NamedParams& params, const std::vector<std::string>& no_decay) {
  std::vector<bool> decays(params.size(), true);
  for (const std::string& pattern : no_decay) {
    bool matched = false;
    for (size_t i = 0; i < params.size(); ++i)
      if (glob_match(pattern, params[i].first)) {
        decays[i] = false;
        matched = true;
      }
    MNEMO_CHECK(matched, "[" << op << "] no_decay pattern '" << pattern << "' matches no parameter");
  }
  return decays;
}

void check_grad(const char* op, const std::string& name, const Param& p) {
  const Tensor& g = p.grad;
  const Tensor& w = p.value;
  MNEMO_CHECK(g.shape() == w.shape(),
              "[" << op << "] grad of '" << name << "' has shape " << g.shape() << ", value has " << w.shape());
  MNEMO_CHECK(g.dtype() == w.dtype(),
              "[" << op << "] grad of '" << name << "' is " << g.dtype() << ", value is " << w.dtype());
  MNEMO_CHECK(g.device() == w.device(),
              "[" << op << "] grad of '" << name << "' is on " << g.device() << ", value on " << w.device());
}

}  // namespace

ParamIndex::ParamIndex(const char* op, NamedParams params, const std::vector<std::string>& no_decay)
    : op_(op), params_(std::move(params)) {
  check_params(op, params_);
  decays_ = decay_mask(op, params_, no_decay);
  for (size_t i = 0; i < params_.size(); ++i) slot_.emplace(params_[i].second, i);
}

std::vector<Param*> ParamIndex::params() const {
  std::vector<Param*> out;
  out.reserve(params_.size());
  for (const auto& np : params_) out.push_back(np.second);
  return out;
}

size_t ParamIndex::find(const Param* p) const {
  const auto it = slot_.find(p);
  MNEMO_CHECK(it != slot_.end(), "[" << op_ << "] state of a parameter this optimizer does not hold");
  return it->second;
}

void check_grads(const char* op, const ParamIndex& index) {
  for (size_t i = 0; i < index.size(); ++i)
    if (index.param(i).grad.defined()) check_grad(op, index.name(i), index.param(i));
}

void check_state_like(const char* op, const char* what, const std::string& name, const Param& p, const Tensor& t) {
  const Tensor& w = p.value;
  MNEMO_CHECK(t.shape() == w.shape() && t.dtype() == w.dtype() && t.device() == w.device(),
              "[" << op << "] state '" << what << "' of '" << name << "' is " << t.dtype() << " " << t.shape()
                  << " on " << t.device() << ", the param is " << w.dtype() << " " << w.shape() << " on "
                  << w.device());
}

}  // namespace optim_detail

}  // namespace mnemo
