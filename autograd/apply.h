// apply(): runs an op's forward and, when some input needs a gradient and the tape is
// recording, records the op with its Ctx so backward can run later.
//
// An op is a struct with a `name`, `Tensor forward(Ctx&, const Tensor&...) const` and
// `Grads backward(Ctx&, const Tensor& dy) const` returning one gradient per input (an
// undefined Tensor where there is none). N-ary ops take std::span<const Tensor>.
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/tape.h"

namespace mnemo {

using Grads = std::vector<Tensor>;

// What an op's forward keeps for its backward, by name: ctx.save("lse", lse) in forward,
// ctx.saved("lse") in backward (an unknown name is an internal error naming the op's save).
class Ctx {
 public:
  void save(const char* name, Tensor t) { saved_.emplace_back(name, std::move(t)); }
  const Tensor& saved(std::string_view name) const;
  bool needs_grad(size_t i) const { return needs_[i]; }
  const Shape& input_shape(size_t i) const { return shapes_[i]; }
  size_t num_inputs() const { return shapes_.size(); }

 private:
  template <class Op, class... V>
  friend Var apply(const Op& op, const V&... xs);
  template <class Op>
  friend Var apply_n(const Op& op, std::span<const Var> xs);
  void add_input(const Var& v) {
    needs_.push_back(v.requires_grad());
    shapes_.push_back(v.shape());
  }
  std::vector<std::pair<std::string_view, Tensor>> saved_;  // names are string literals
  std::vector<bool> needs_;
  std::vector<Shape> shapes_;
};

template <class Op>
struct OpNode final : NodeFn {
  Op op;
  Ctx ctx;
  OpNode(const Op& o, Ctx&& c) : op(o), ctx(std::move(c)) {}
  std::vector<Tensor> backward(const Tensor& dy) override { return op.backward(ctx, dy); }
};

// The tape all inputs share; an op never mixes tapes.
Tape& common_tape(const char* op, std::span<const Var> xs);

template <class Op, class... V>
Var apply(const Op& op, const V&... xs) {
  const Var inputs[] = {xs...};
  Tape& tape = common_tape(op.name, inputs);
  Ctx ctx;
  for (const Var& v : inputs) ctx.add_input(v);
  Tensor y = op.forward(ctx, xs.value()...);
  const bool record = tape.recording() && (xs.requires_grad() || ...);
  std::unique_ptr<NodeFn> fn;
  if (record) fn = std::make_unique<OpNode<Op>>(op, std::move(ctx));
  return tape.push(op.name, std::move(y), inputs, std::move(fn));
}

template <class Op>
Var apply_n(const Op& op, std::span<const Var> xs) {
  Tape& tape = common_tape(op.name, xs);
  Ctx ctx;
  std::vector<Tensor> values;
  values.reserve(xs.size());
  bool any = false;
  for (const Var& v : xs) {
    ctx.add_input(v);
    values.push_back(v.value());
    any = any || v.requires_grad();
  }
  Tensor y = op.forward(ctx, std::span<const Tensor>(values));
  std::unique_ptr<NodeFn> fn;
  if (tape.recording() && any) fn = std::make_unique<OpNode<Op>>(op, std::move(ctx));
  return tape.push(op.name, std::move(y), xs, std::move(fn));
}

}  // namespace mnemo
