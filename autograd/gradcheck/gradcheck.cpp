#include "autograd/gradcheck/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace mnemo::gradcheck {
namespace {

std::vector<Check>& registry() {
  static std::vector<Check> r;
  return r;
}

bool g_sorted = false;

double dot(const Tensor& a, const Tensor& b) {
  const double* x = a.data<double>();
  const double* y = b.data<double>();
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += x[i] * y[i];
  return s;
}

}  // namespace

Tensor Sample::next(Kind kind, const Shape& shape, const std::function<Tensor()>& make) {
  if (!replay_) {
    Leaf leaf{kind, to_run_device(make()), nullptr, {}};
    if (kind == Kind::param) leaf.param = std::make_unique<Param>(leaf.value);
    leaves_.push_back(std::move(leaf));
    return leaves_.back().value;
  }
  MNEMO_CHECK(cursor_ < leaves_.size() && leaves_[cursor_].kind == kind && leaves_[cursor_].value.shape() == shape,
              "[gradcheck] the builder made different leaves on its second run: it must be deterministic");
  return leaves_[cursor_++].value;
}

Tensor Sample::to_run_device(const Tensor& t) const {
  if (device_ == Device::cpu) return t;
  return (t.dtype() == DType::f64 ? t.to(DType::f32) : t).to(device_);
}

void Sample::to_run_device(Param& p) const { p.value = to_run_device(p.value); }

Var Sample::input(const Shape& shape, Range r) {
  Tensor t = next(Kind::input, shape, [&] { return Tensor::uniform(shape, rng_, r.lo, r.hi, DType::f64); });
  Var v = tape_->input(t);
  if (!replay_) leaves_.back().var = v;
  return v;
}

Var Sample::param(const Shape& shape, Range r) {
  next(Kind::param, shape, [&] { return Tensor::uniform(shape, rng_, r.lo, r.hi, DType::f64); });
  Param& p = replay_ ? *leaves_[cursor_ - 1].param : *leaves_.back().param;
  return tape_->param(p);
}

Tensor Sample::data(const Shape& shape, Range r) {
  return next(Kind::data, shape, [&] { return Tensor::uniform(shape, rng_, r.lo, r.hi, DType::f64); });
}

Tensor Sample::indices(const Shape& shape, int32_t hi) {
  return next(Kind::data, shape, [&] {
    std::vector<int32_t> v(size_t(shape.numel()));
    for (auto& x : v) x = int32_t(rng_.randint(hi));
    return Tensor::from_ints(shape, v);
  });
}

Tensor Sample::mask(const Shape& shape, double p_true) {
  return next(Kind::data, shape, [&] {
    Tensor m = Tensor::empty(shape, DType::u8);
    uint8_t* p = m.data<uint8_t>();
    const int64_t n = shape.rank() ? shape[-1] : 1;
    for (int64_t i = 0; i < m.numel(); ++i) p[i] = rng_.uniform() < p_true ? 1 : 0;
    for (int64_t row = 0; n > 0 && row < m.numel() / n; ++row) p[row * n + rng_.randint(n)] = 1;
    return m;
  });
}

int add(Check check) {
  registry().push_back(std::move(check));
  g_sorted = false;
  return 0;
}

const std::vector<Check>& all() {
  if (!g_sorted) {
    std::stable_sort(registry().begin(), registry().end(),
                     [](const Check& a, const Check& b) { return a.name < b.name; });
    g_sorted = true;
  }
  return registry();
}

std::vector<std::string> names() {
  std::vector<std::string> n;
  for (const Check& c : all()) n.push_back(c.name);
  return n;
}

const Check* find(std::string_view name) {
  for (const Check& c : all())
    if (c.name == name) return &c;
  return nullptr;
}

struct Runner {
  static Var build(const Check& check, Sample& s, Tape& tape, bool replay) {
    s.tape_ = &tape;
    s.replay_ = replay;
    s.cursor_ = 0;
    s.object_cursor_ = 0;
    Var y = check.build(s);
    MNEMO_CHECK(y.defined() && y.dtype() == DType::f64,
                "[gradcheck] '" << check.name << "' must return an f64 Var built from the Sample");
    return y;
  }

  // Element-wise: a device gradient (f32, copied to the host) against the f64 CPU one.
  static LeafResult compare(const char* kind, int index, const Tensor& got_in, const Tensor& want_in,
                            const Shape& shape, const Options& opts) {
    LeafResult lr;
    lr.index = index;
    lr.kind = kind;
    lr.shape = shape;
    const std::vector<double> got = got_in.defined() ? got_in.to_vector() : std::vector<double>(size_t(shape.numel()));
    const std::vector<double> want =
        want_in.defined() ? want_in.to_vector() : std::vector<double>(size_t(shape.numel()));
    for (size_t e = 0; e < got.size(); ++e) {
      const double err = std::abs(got[e] - want[e]);
      const double scale = std::max(std::abs(got[e]), std::abs(want[e]));
      if (!(err <= lr.max_abs_err)) lr.max_abs_err = err, lr.worst = int64_t(e);  // NaN counts as worst
      if (scale > opts.atol) lr.max_rel_err = std::max(lr.max_rel_err, err / scale);
      if (!(err <= opts.atol + opts.rtol * scale)) lr.ok = false;
    }
    return lr;
  }

  // The builder in f32 on opts.device against its f64 CPU run: output and every gradient.
  static Result run_device(const Check& check, const Options& opts) {
    Result res;
    res.name = check.name;
    try {
      Sample ref(opts.seed);
      Tape t64;
      const Var y64 = build(check, ref, t64, false);
      MNEMO_CHECK(y64.requires_grad(), "[gradcheck] '" << check.name << "' output does not depend on any input");
      Rng rng(opts.seed * 7919 + 17);
      const Tensor R = Tensor::randn(y64.shape(), rng, DType::f64);
      t64.backward(std::span<const Var>(&y64, 1), std::span<const Tensor>(&R, 1));

      Sample dev(opts.seed);
      dev.device_ = opts.device;
      Tape t32;
      dev.tape_ = &t32;
      const Var y32 = check.build(dev);
      MNEMO_CHECK(y32.defined() && y32.dtype() == DType::f32 && y32.value().device() == opts.device,
                  "[gradcheck] '" << check.name << "' must follow its Sample's leaves to " << opts.device
                                  << " in f32, got " << y32.dtype() << " on " << y32.value().device());
      const Tensor R32 = R.to(DType::f32).to(opts.device);
      t32.backward(std::span<const Var>(&y32, 1), std::span<const Tensor>(&R32, 1));
      res.leaves.push_back(compare("output", 0, y32.value(), y64.value(), y64.shape(), opts));
      int index = 0;
      for (size_t i = 0; i < ref.leaves_.size(); ++i) {
        const Sample::Leaf &a = ref.leaves_[i], &b = dev.leaves_.at(i);
        if (a.kind == Sample::Kind::data) continue;
        const bool param = a.kind == Sample::Kind::param;
        const Tensor want = param ? a.p()->grad : t64.grad(a.var);
        const Tensor got = param ? b.p()->grad : t32.grad(b.var);
        res.leaves.push_back(compare(param ? "param" : "input", index++, got, want, a.value.shape(), opts));
      }
      res.ok = res.leaves.size() > 1 &&
               std::all_of(res.leaves.begin(), res.leaves.end(), [](const LeafResult& l) { return l.ok; });
      if (res.leaves.size() <= 1) res.error = "no differentiable leaves";
    } catch (const std::exception& e) {
      res.error = e.what();
      res.ok = false;
    }
    return res;
  }

  static Result run(const Check& check, const Options& opts) {
    if (opts.device != Device::cpu) return run_device(check, opts);
    Result res;
    res.name = check.name;
    try {
      Sample s(opts.seed);
      Tape tape;
      Var y = build(check, s, tape, false);
      MNEMO_CHECK(y.requires_grad(), "[gradcheck] '" << check.name << "' output does not depend on any input");
      Rng rng(opts.seed * 7919 + 17);
      const Tensor R = Tensor::randn(y.shape(), rng, DType::f64);
      const Var roots[] = {y};
      const Tensor seeds[] = {R};
      tape.backward(roots, seeds);

      auto loss = [&] {
        Tape t;
        return dot(build(check, s, t, true).value(), R);
      };
      int index = 0;
      for (Sample::Leaf& leaf : s.leaves_) {
        if (leaf.kind == Sample::Kind::data) continue;
        LeafResult lr;
        lr.index = index++;
        lr.kind = leaf.kind == Sample::Kind::param ? "param" : "input";
        lr.shape = leaf.value.shape();
        const Tensor analytic = leaf.kind == Sample::Kind::param ? leaf.p()->grad : tape.grad(leaf.var);
        double* v = leaf.value.data<double>();
        for (int64_t e = 0; e < leaf.value.numel(); ++e) {
          const double orig = v[e];
          v[e] = orig + opts.eps;
          const double lp = loss();
          v[e] = orig - opts.eps;
          const double lm = loss();
          v[e] = orig;
          const double numeric = (lp - lm) / (2 * opts.eps);
          const double a = analytic.defined() ? analytic.data<double>()[e] : 0.0;
          const double err = std::abs(a - numeric);
          const double scale = std::max(std::abs(a), std::abs(numeric));
          const double rel = scale > 0 ? err / scale : 0.0;
          if (err > lr.max_abs_err) {
            lr.max_abs_err = err;
            lr.worst = e;
          }
          if (scale > opts.atol) lr.max_rel_err = std::max(lr.max_rel_err, rel);
          if (err > opts.atol + opts.rtol * scale) lr.ok = false;
        }
        res.leaves.push_back(lr);
      }
      res.ok = !res.leaves.empty() &&
               std::all_of(res.leaves.begin(), res.leaves.end(), [](const LeafResult& l) { return l.ok; });
      if (res.leaves.empty()) res.error = "no differentiable leaves";
    } catch (const std::exception& e) {
      res.error = e.what();
      res.ok = false;
    }
    return res;
  }
};

Result run(const Check& check, const Options& opts) { return Runner::run(check, opts); }

std::string Result::summary() const {
  std::ostringstream os;
  os << name << ": " << (ok ? "ok" : "FAILED");
  if (!error.empty()) os << " (" << error << ")";
  for (const LeafResult& l : leaves) {
    if (l.ok && ok) continue;
    os << "; " << l.kind << " " << l.index << " " << l.shape << " max abs err " << l.max_abs_err
       << " max rel err " << l.max_rel_err << " at flat index " << l.worst << (l.ok ? "" : " [bad]");
  }
  return os.str();
}

}  // namespace mnemo::gradcheck
