// Shared by the kernel tests: random inputs, and agree(), which runs a kernel slot's f64
// reference (the oracle: plain loops, in double) and every float kernel that fills the
// slot on the CPU (reference, cpu, onednn) on the same inputs and compares them.
#pragma once

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace kn = mnemo::kernels;

namespace mnemo::test {

using kn::Backend;
using Vf = std::vector<float>;
template <class T> using Outs = std::vector<std::vector<T>>;

// A hand-built walk: strides[k] for operand k; operands not given keep zero strides.
inline kn::Strided walk(std::vector<int64_t> dims, std::vector<std::vector<int64_t>> strides) {
  kn::Strided s;
  s.rank = int(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) {
    s.dims[d] = dims[d];
    for (size_t k = 0; k < strides.size(); ++k) s.strides[k][d] = strides[k][d];
  }
  return s;
}

constexpr int64_t kBig = 40000;  // > the fast kernels' OpenMP threshold (1 << 15): their threaded paths run
constexpr double kTol = 1e-4;
constexpr Backend kFloatBackends[] = {Backend::reference, Backend::cpu, Backend::onednn};
constexpr float kInf = std::numeric_limits<float>::infinity();

// The slots agree() has compared, per float backend; the coverage test reads it.
inline std::map<Backend, std::set<std::string>>& compared() {
  static std::map<Backend, std::set<std::string>> m;
  return m;
}

inline Vf rand_vec(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  Vf v(static_cast<size_t>(n));
  for (float& x : v) x = u(g);
  return v;
}

inline std::vector<int32_t> rand_idx(int64_t n, int32_t hi, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int32_t> u(0, hi - 1);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& x : v) x = u(g);
  return v;
}

template <class T> std::vector<T> as(const Vf& v) { return std::vector<T>(v.begin(), v.end()); }
// An output buffer, pre-filled with garbage the kernel must overwrite.
template <class T> std::vector<T> junk(int64_t n) { return std::vector<T>(size_t(n), T(-7)); }
template <class T> T* opt(std::vector<T>& v, bool on) { return on ? v.data() : nullptr; }
inline std::string sz(const char* what, int64_t n) { return std::string(what) + "=" + std::to_string(n); }

// |f - d| <= tol (1 + |d|) elementwise; non-finite values must match exactly.
inline void compare(const std::string& name, const std::vector<float>& f, const std::vector<double>& d, double tol) {
  BOOST_TEST(f.size() == d.size(), name << ": size " << f.size() << " vs " << d.size());
  if (f.size() != d.size()) return;
  size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < d.size(); ++i) {
    const double fi = f[i], di = d[i];
    const bool finite = std::isfinite(fi) && std::isfinite(di), same = fi == di || (std::isnan(fi) && std::isnan(di));
    const double excess = finite ? std::abs(fi - di) - tol * (1 + std::abs(di)) : same ? 0.0 : HUGE_VAL;
    if (excess > 0) {
      ++bad;
      if (excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  std::ostringstream msg;
  if (bad)
    msg << std::setprecision(9) << name << ": " << bad << " of " << d.size() << " elements beyond tol " << tol
        << "; worst at [" << worst << "]: float " << f[worst] << " vs double " << d[worst];
  BOOST_TEST(bad == 0u, msg.str());
}

// Runs `run(fn, T{})` with the f64 reference and with each float kernel of the slot, and
// compares the outputs it returns (named by `names`).
template <template <class> class Sig, class Run>
void agree(const kn::Kernel<Sig>& slot, const std::string& what, const std::vector<std::string>& names,
           double tol, Run&& run) {
  kn::init();
  const Outs<double> want = run(slot.f64, double{});
  for (Backend b : kFloatBackends) {
    auto* fn = slot.get(b);
    if (!fn) continue;
    compared()[b].insert(slot.name);
    BOOST_TEST_CONTEXT("slot " << slot.name << ", backend " << kn::backend_name(b) << ", " << what) {
      const Outs<float> got = run(fn, float{});
      BOOST_TEST(got.size() == want.size());
      for (size_t i = 0; i < want.size() && i < got.size(); ++i)
        compare(i < names.size() ? names[i] : "out" + std::to_string(i), got[i], want[i], tol);
    }
  }
}

// The outputs of `run` on the f64 reference, rounded to float: the saved forward results
// a backward test takes as inputs (so both precisions see the same inputs).
template <template <class> class Sig, class Run>
std::vector<Vf> saved(const kn::Kernel<Sig>& slot, Run&& run) {
  kn::init();
  std::vector<Vf> out;
  for (const auto& v : run(slot.f64, double{})) out.emplace_back(v.begin(), v.end());
  return out;
}

}  // namespace mnemo::test
