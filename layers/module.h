// Module: named parameters and child modules, listed by one visit(). Names are dotted
// state-dict paths ("layers.3.attn.to_q.weight"), so checkpoints read like PyTorch's and
// reference weights import by name. No generic forward: each layer has a typed
// operator(). No hidden state: the training flag is the only mutable field.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/optim/optimizer.h"
#include "autograd/param.h"

namespace mnemo::nn {

struct Module;

// Receives every parameter (with its full dotted name) and every module of a tree.
class ParamVisitor {
 public:
  virtual ~ParamVisitor() = default;
  virtual void on_param(const std::string& name, Param& p) = 0;
  virtual void on_module(const std::string& /*name*/, Module& /*m*/) {}

  void operator()(const std::string& name, Param& p) { on_param(prefix_ + name, p); }
  void sub(const std::string& name, Module& m);  // descends into a child as "name."

 private:
  std::string prefix_;
};

struct Module {
  virtual ~Module() = default;
  virtual void visit(ParamVisitor& v) = 0;

  // Dropout and other train-only behaviour read this; set for a whole tree with train()/eval().
  bool training = true;
};

NamedParams named_params(Module& m);
std::vector<Param*> params(Module& m);
int64_t param_count(Module& m);
void train(Module& m, bool on = true);
inline void eval(Module& m) { train(m, false); }
// The parameter called `name`, or an Error listing near names.
Param& find_param(Module& m, const std::string& name);

}  // namespace mnemo::nn
