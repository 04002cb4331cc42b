#include "autograd/tape.h"

#include <sstream>

#include "autograd/dispatch.h"

namespace mnemo {
namespace {

// slot += g without touching tensors someone else still holds.
void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
    return;
  }
  if (!slot.unique()) slot = slot.clone();
  launch(kernels::axpy, slot, slot, g, slot.numel(), 1.0);
}

}  // namespace

int32_t Tape::add_leaf(const char* op, const Tensor& value) {
  MNEMO_CHECK(value.defined(), "[tape] " << op << " of an undefined tensor");
  Node n;
  n.op = op;
  n.shape = value.shape();
  n.dtype = value.dtype();
  nodes_.push_back(std::move(n));
  return int32_t(nodes_.size() - 1);
}

Var Tape::param(const Param& p, ParamUse use) {
  MNEMO_CHECK(p.value.defined(), "[tape] param() of a Param with no value");
  p.value.mark_weight();  // GEMMs in bf16 may keep its bf16 copy (kernels/precision.h)
  if (use == ParamUse::frozen || !recording_) return Var(this, -1, p.value);
  auto it = param_ids_.find(&p);
  if (it != param_ids_.end()) return Var(this, it->second, p.value);
  const int32_t id = add_leaf("param", p.value);
  nodes_[size_t(id)].param = &p;
  param_ids_.emplace(&p, id);
  return Var(this, id, p.value);
}

Var Tape::constant(Tensor value) {
  MNEMO_CHECK(value.defined(), "[tape] constant() of an undefined tensor");
  return Var(this, -1, std::move(value));
}

Var Tape::input(Tensor value) {
  if (!recording_) return constant(std::move(value));
  const int32_t id = add_leaf("input", value);
  nodes_[size_t(id)].is_input = true;
  return Var(this, id, std::move(value));
}

const Tensor& Tape::grad(Var v) const {
  MNEMO_CHECK(v.tape_ == this, "[tape] grad() of a Var from another tape");
  MNEMO_CHECK(v.id_ >= 0 && nodes_[size_t(v.id_)].is_input,
              "[tape] grad() is only kept for input() leaves; use Param::grad for parameters");
  return nodes_[size_t(v.id_)].grad;
}

void Tape::check_finite_value(const char* what, int32_t node, const char* op, const Tensor& t,
                              std::span<const Var> inputs) const {
  if (!is_floating(t.dtype())) return;
  const int64_t bad = launch(kernels::count_non_finite, t, t, t.numel());
  if (bad == 0) return;
  std::ostringstream os;
  os << "[check_finite] " << what << " of op '" << op << "'";
  if (node >= 0) os << " (node " << node << ")";
  os << " has " << bad << " NaN/Inf of " << t.numel() << " values, shape " << t.shape() << "; inputs:";
  for (const Var& v : inputs) os << " " << v.shape();
  throw Error(os.str());
}

Var Tape::push(const char* op, Tensor value, std::span<const Var> inputs, std::unique_ptr<NodeFn> fn) {
  const int32_t next = fn ? int32_t(nodes_.size()) : -1;
  if (check_finite_) check_finite_value("output", next, op, value, inputs);
  if (!fn) return Var(this, -1, std::move(value));
  MNEMO_ASSERT(recording_);
  Node n;
  n.op = op;
  n.shape = value.shape();
  n.dtype = value.dtype();
  n.fn = std::move(fn);
  n.inputs.reserve(inputs.size());
  for (const Var& v : inputs) n.inputs.push_back(v.id_);
  nodes_.push_back(std::move(n));
  return Var(this, next, std::move(value));
}

void Tape::backward(Var loss) {
  MNEMO_CHECK(loss.tape_ == this, "[backward] the loss comes from another tape");
  MNEMO_CHECK(loss.value().numel() == 1,
              "[backward] backward(loss) needs a one-element loss, got shape " << loss.shape()
                                                                                << "; pass explicit seeds instead");
  const Var roots[] = {loss};
  const Tensor seeds[] = {Tensor::full(loss.shape(), 1.0, loss.dtype(), loss.value().device())};
  backward(roots, seeds);
}

void Tape::backward(std::span<const Var> roots, std::span<const Tensor> seeds) {
  MNEMO_CHECK(roots.size() == seeds.size(),
              "[backward] " << roots.size() << " roots but " << seeds.size() << " seed gradients");
  MNEMO_CHECK(!backward_done_, "[backward] this tape already ran backward; record a new tape");
  std::vector<Tensor> grads(nodes_.size());
  int32_t top = -1;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Var& r = roots[i];
    MNEMO_CHECK(r.tape_ == this, "[backward] root " << i << " comes from another tape");
    MNEMO_CHECK(seeds[i].shape() == r.shape() && seeds[i].dtype() == r.dtype(),
                "[backward] seed " << i << " is " << seeds[i].shape() << " " << seeds[i].dtype() << ", root is "
                                   << r.shape() << " " << r.dtype());
    if (!r.requires_grad()) continue;  // a root no parameter or input reaches: nothing to do
    accumulate(grads[size_t(r.id_)], seeds[i]);
    top = std::max(top, r.id_);
  }
  backward_done_ = true;

  for (int32_t i = top; i >= 0; --i) {
    Tensor g = std::move(grads[size_t(i)]);
    if (!g.defined()) continue;
    Node& n = nodes_[size_t(i)];
    if (n.param) {
      if (!n.param->grad.defined()) n.param->grad = n.param->value.zeros_like();
      launch(kernels::axpy, n.param->grad, n.param->grad, g, g.numel(), 1.0);
      if (on_param_grad_) on_param_grad_(*n.param);
      continue;
    }
    if (n.is_input) {
      accumulate(n.grad, g);
      continue;
    }
    std::vector<Tensor> din = n.fn->backward(g);
    MNEMO_ASSERT(din.size() == n.inputs.size());
    for (size_t j = 0; j < din.size(); ++j) {
      const int32_t in = n.inputs[j];
      if (in < 0 || !din[j].defined()) continue;
      MNEMO_CHECK(din[j].shape() == nodes_[size_t(in)].shape,
                  "[backward] op '" << n.op << "' returned a gradient of shape " << din[j].shape()
                                    << " for input " << j << " of shape " << nodes_[size_t(in)].shape);
      if (check_finite_) check_finite_value("backward gradient", i, n.op, din[j], {});
      accumulate(grads[size_t(in)], din[j]);
    }
    n.fn.reset();  // frees what forward saved
  }
}

std::string Tape::dump() const {
  std::ostringstream os;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    os << "  " << i << " " << n.op << " " << n.shape << " " << n.dtype;
    if (!n.inputs.empty()) {
      os << " <-";
      for (int32_t in : n.inputs) {
        if (in < 0) os << " const";
        else os << " " << in;
      }
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace mnemo

#include "autograd/apply.h"

namespace mnemo {

Tape& common_tape(const char* op, std::span<const Var> xs) {
  Tape* tape = nullptr;
  for (size_t i = 0; i < xs.size(); ++i) {
    MNEMO_CHECK(xs[i].defined(), "[" << op << "] input " << i << " is an undefined Var");
    if (!tape) tape = &xs[i].tape();
    MNEMO_CHECK(&xs[i].tape() == tape, "[" << op << "] input " << i << " comes from a different tape");
  }
  MNEMO_CHECK(tape, "[" << op << "] has no inputs");
  return *tape;
}

const Tensor& Ctx::saved(std::string_view name) const {
  for (const auto& [n, t] : saved_)
    if (n == name) return t;
  MNEMO_FAIL("[internal] backward asks for a saved tensor '" << name << "' its forward did not save");
}

}  // namespace mnemo
