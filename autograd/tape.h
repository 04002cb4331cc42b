// Var and Tape. A Tape records the ops of one segment (or one BPTT window) in execution
// order, so backward is one reverse loop. It is an explicit object, never global.
// A Var is a cheap handle: the tape, the node id (-1 for values that need no gradient:
// constants, results computed from constants only or while not recording) and the value.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/param.h"
#include "autograd/tensor.h"
#include "common/random_hash.h"

namespace mnemo {

class Tape;

class Var {
 public:
  Var() = default;

  bool defined() const { return tape_ != nullptr; }
  bool requires_grad() const { return id_ >= 0; }
  int32_t id() const { return id_; }
  const Tensor& value() const { return value_; }
  const Shape& shape() const { return value_.shape(); }
  int rank() const { return value_.rank(); }
  int64_t dim(int i) const { return value_.dim(i); }
  DType dtype() const { return value_.dtype(); }
  Tape& tape() const {
    MNEMO_CHECK(tape_, "[var] an undefined Var has no tape");
    return *tape_;
  }

 private:
  friend class Tape;
  Var(Tape* t, int32_t id, Tensor v) : tape_(t), id_(id), value_(std::move(v)) {}
  Tape* tape_ = nullptr;
  int32_t id_ = -1;
  Tensor value_;
};

// The backward half of a recorded op: gradients for each input given the output's.
struct NodeFn {
  virtual ~NodeFn() = default;
  virtual std::vector<Tensor> backward(const Tensor& dy) = 0;
};

class Tape {
 public:
  Tape() = default;
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // ---- leaves ----
  Var param(const Param& p, ParamUse use = ParamUse::train);  // one leaf per Param per tape
  Var constant(Tensor value);                           // data, or memory from outside the window
  Var input(Tensor value);                              // a leaf whose gradient grad() reads afterwards

  // ---- backward ----
  // Seeds each root with its gradient and runs the reverse sweep once. Parameter grads
  // are ADDED to Param::grad. A tape runs backward once; its saved tensors are freed.
  void backward(std::span<const Var> roots, std::span<const Tensor> seeds);
  void backward(Var loss);                                // seed 1 for a one-element loss
  const Tensor& grad(Var input_leaf) const;               // undefined if no gradient reached it
  // Called with each parameter as backward adds its last gradient from this tape (its leaf
  // comes before every op that used it): data-parallel training starts summing it then.
  void on_param_grad(std::function<void(const Param&)> f) { on_param_grad_ = std::move(f); }

  // ---- modes ----
  bool recording() const { return recording_; }
  void set_recording(bool on) { recording_ = on; }
  // Checks every op's output (and every backward's gradients) for NaN/Inf and throws an
  // Error naming the first op that produced one.
  void set_check_finite(bool on) { check_finite_ = on; }
  bool check_finite() const { return check_finite_; }

  // While alive, ops compute values but record nothing (evaluation, generation, replay's
  // first pass): no node, no saved tensor.
  class NoRecord {
   public:
    explicit NoRecord(Tape& t) : tape_(t), prev_(t.recording_) { t.recording_ = false; }
    ~NoRecord() { tape_.recording_ = prev_; }
    NoRecord(const NoRecord&) = delete;
    NoRecord& operator=(const NoRecord&) = delete;

   private:
    Tape& tape_;
    bool prev_;
  };

  // Seeds for random ops (dropout) recorded on this tape: a pure function of the tape's
  // seed and a counter, so a segment replayed with the same seed draws the same masks.
  void set_seed(uint64_t seed) {
    seed_ = seed;
    draws_ = 0;
  }
  uint64_t seed() const { return seed_; }
  uint64_t next_seed() { return mix64(seed_ ^ mix64(++draws_)); }

  int64_t size() const { return int64_t(nodes_.size()); }  // recorded nodes
  std::string dump() const;  // one line per node: "  7 matmul (2, 4) f32 <- 5 6"

  // For apply(): records an op's output. `fn` is null when no input needs a gradient or
  // the tape is not recording; the value then comes back as a constant.
  Var push(const char* op, Tensor value, std::span<const Var> inputs, std::unique_ptr<NodeFn> fn);

 private:
  struct Node {
    const char* op;
    Shape shape;
    DType dtype;
    std::vector<int32_t> inputs;  // -1 for inputs that need no gradient
    std::unique_ptr<NodeFn> fn;   // null for leaves
    const Param* param = nullptr;  // parameter leaves flush their grad into param->grad
    bool is_input = false;
    Tensor grad;                  // input leaves keep theirs for grad()
  };
  int32_t add_leaf(const char* op, const Tensor& value);
  void check_finite_value(const char* what, int32_t node, const char* op, const Tensor& t,
                          std::span<const Var> inputs) const;

  std::vector<Node> nodes_;
  std::unordered_map<const Param*, int32_t> param_ids_;
  bool recording_ = true;
  bool check_finite_ = false;
  bool backward_done_ = false;
  uint64_t seed_ = 0, draws_ = 0;
  std::function<void(const Param&)> on_param_grad_;
};

}  // namespace mnemo
