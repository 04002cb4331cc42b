// The gradient-check registry. MNEMO_GRADCHECK(name, builder) registers a builder that
// makes inputs through a Sample and returns one output Var. run() checks the analytic
// gradient of every input and param leaf against central differences in f64, after
// scalarising the output as sum(y * R) with a fixed random R (so no symmetry hides a bug).
// With Options::device = cuda it checks the device instead: the same builder in f32 on the
// device (every leaf and layer weight converted), its output and analytic gradients against
// the f64 CPU run's, with f32 tolerances.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/ops/ops.h"
#include "autograd/random.h"

namespace mnemo::gradcheck {

struct Range {
  double lo = -1.0, hi = 1.0;
};

// Makes a check's inputs. The first build draws them from a seeded generator; the
// finite-difference builds replay the same values (one of them perturbed).
class Sample {
 public:
  explicit Sample(uint64_t seed) : rng_(seed) {}

  Tape& tape() { return *tape_; }
  Var input(const Shape& shape, Range r = {});      // a differentiable input leaf
  Var param(const Shape& shape, Range r = {});      // a differentiable Param leaf
  Tensor data(const Shape& shape, Range r = {});    // f64 data, not differentiated
  Tensor indices(const Shape& shape, int32_t hi);   // i32 in [0, hi)
  Tensor mask(const Shape& shape, double p_true = 0.7);  // u8, at least one 1 per last-axis row
  uint64_t seed() const { return 12345; }           // for ops that take a seed (dropout)

  // An object (a layer) made once per check and kept for the finite-difference runs; every
  // Param that params_of(obj) lists is checked like a param() leaf.
  template <class M, class Make, class ParamsOf>
  M& once(Make&& make, ParamsOf&& params_of) {
    if (!replay_) {
      std::shared_ptr<M> obj = make();
      objects_.push_back(obj);
      for (Param* p : params_of(*obj)) {
        to_run_device(*p);
        leaves_.push_back(Leaf{Kind::param, p->value, nullptr, {}, p});
      }
      return *obj;
    }
    M& obj = *static_cast<M*>(objects_.at(object_cursor_++).get());
    cursor_ += params_of(obj).size();
    return obj;
  }
  // As above, and every Param that all_params_of(obj) lists but params_of(obj) does not goes to
  // the run's device and dtype too, unchecked: a check of some of a whole model's weights
  // still runs the model in one dtype on one device (--device cuda).
  template <class M, class Make, class ParamsOf, class AllParamsOf>
  M& once(Make&& make, ParamsOf&& params_of, AllParamsOf&& all_params_of) {
    const bool first = !replay_;
    M& obj = once<M>(std::forward<Make>(make), params_of);
    if (first) {
      const std::vector<Param*> checked = params_of(obj);
      for (Param* p : all_params_of(obj))
        if (std::find(checked.begin(), checked.end(), p) == checked.end()) to_run_device(*p);
    }
    return obj;
  }

 private:
  friend struct Runner;
  enum class Kind : uint8_t { input, param, data };
  Tensor next(Kind kind, const Shape& shape, const std::function<Tensor()>& make);
  // The device run's conversion (f64 -> f32, host -> device); nothing in the f64 CPU run.
  Tensor to_run_device(const Tensor& t) const;
  void to_run_device(Param& p) const;
  Device device_ = Device::cpu;

  Rng rng_;
  Tape* tape_ = nullptr;
  bool replay_ = false;
  size_t cursor_ = 0;
  size_t object_cursor_ = 0;
  struct Leaf {
    Kind kind;
    Tensor value;
    std::unique_ptr<Param> param;  // owned by the sample (param())
    Var var;
    Param* external = nullptr;     // owned by an object made with once()
    Param* p() const { return external ? external : param.get(); }
  };
  std::vector<Leaf> leaves_;
  std::vector<std::shared_ptr<void>> objects_;
};

using Builder = std::function<Var(Sample&)>;

struct Check {
  std::string name;
  Builder build;
  const char* file = "";
  int line = 0;
};

struct Options {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  uint64_t seed = 7;
  Device device = Device::cpu;  // cuda: f32 on the device against the f64 CPU run (above)
};

struct LeafResult {
  int index = 0;           // order of creation in the builder
  const char* kind = "";   // "input" or "param"
  Shape shape;
  double max_abs_err = 0;
  double max_rel_err = 0;
  int64_t worst = -1;      // flat index of the worst element
  bool ok = true;
};

struct Result {
  std::string name;
  std::vector<LeafResult> leaves;
  std::string error;  // set when the builder or backward threw
  bool ok = false;
  std::string summary() const;
};

int add(Check check);                       // used by MNEMO_GRADCHECK
const std::vector<Check>& all();            // sorted by name
std::vector<std::string> names();
const Check* find(std::string_view name);
Result run(const Check& check, const Options& opts = {});

}  // namespace mnemo::gradcheck

#define MNEMO_GC_CAT2(a, b) a##b
#define MNEMO_GC_CAT(a, b) MNEMO_GC_CAT2(a, b)
#define MNEMO_GRADCHECK(name, ...)                                                        \
  [[maybe_unused]] static const int MNEMO_GC_CAT(mnemo_gradcheck_, __COUNTER__) =          \
      ::mnemo::gradcheck::add({name, __VA_ARGS__, __FILE__, __LINE__})
