// Every CUDA kernel against the f64 reference, forward and backward, at odd sizes (and the
// attention under its mask rules), on the GPU: inputs go up, the kernel runs on device
// pointers, outputs come back and are compared as agree() compares the CPU backends. Then
// the runtime: a repeated step makes no cudaMalloc, a captured step replays, and every slot
// the backend fills was compared. Without the CUDA build or without a device, every case is
// skipped by its precondition and the run exits 77 (SKIP), saying which.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <memory>
#include <type_traits>

#include "mnemo_config.h"
#include "tests/kernels/agree.h"
#include "tests/kernels/bf16_bounds.h"
#if MNEMO_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

using namespace mnemo::test;
namespace ut = boost::unit_test;
namespace tt = boost::test_tools;

namespace {

tt::assertion_result cuda_device(ut::test_unit_id) {
#if MNEMO_WITH_CUDA
  tt::assertion_result r(mnemo::kernels::cuda::device_available());
  r.message() << "no CUDA device: " << mnemo::kernels::cuda::device_description();
#else
  tt::assertion_result r(false);
  r.message() << "the CUDA backend is not built (-Dcuda=enabled)";
#endif
  return r;
}

#if MNEMO_WITH_CUDA
namespace cu = mnemo::kernels::cuda;

std::set<std::string>& cuda_compared() {
  static std::set<std::string> s;
  return s;
}

// Where a run's buffers live: host vectors for the f64 reference, device memory for CUDA.
// in() uploads an input; out() a buffer pre-filled with junk (or given values: in-out);
// results() brings the outputs back in the order out() made them.
template <class T>
struct Mem {
  explicit Mem(bool on_device) : device(on_device) {}
  bool device;
  std::vector<std::shared_ptr<void>> keep;
  std::vector<std::pair<T*, int64_t>> outs;

  template <class U>
  U* put(const std::vector<U>& v) {
    if (!device) {
      auto p = std::make_shared<std::vector<U>>(v);
      keep.push_back(p);
      return p->data();
    }
    void* d = cu::device_alloc(std::max<size_t>(v.size() * sizeof(U), 1));
    keep.emplace_back(d, cu::device_free);
    cu::copy_to_device(d, v.data(), v.size() * sizeof(U));
    return static_cast<U*>(d);
  }
  template <class U>
  const U* in(const std::vector<U>& v) {
    return put(v);
  }
  const T* in(const Vf& v) { return put(as<T>(v)); }
  T* out(int64_t n) { return out(junk<T>(n)); }
  T* out(const std::vector<T>& init) {
    T* p = put(init);
    outs.emplace_back(p, int64_t(init.size()));
    return p;
  }
  template <class U>
  requires(!std::is_same_v<U, T>) T* out(const std::vector<U>& init) {
    return out(std::vector<T>(init.begin(), init.end()));
  }
  Outs<T> results() {
    Outs<T> r;
    for (auto [p, n] : outs) {
      std::vector<T> h(static_cast<size_t>(n));
      if (device)
        cu::copy_to_host(h.data(), p, size_t(n) * sizeof(T));
      else
        std::copy(p, p + n, h.begin());
      r.push_back(std::move(h));
    }
    return r;
  }
};

// run(fn, mem) once with the f64 reference on the host and once with the CUDA kernel on the device.
template <template <class> class Sig, class Run>
void check(const kn::Kernel<Sig>& slot, const std::string& what, const std::vector<std::string>& names, double tol,
           Run&& run) {
  kn::init();
  Mem<double> host{false};
  run(slot.f64, host);
  const Outs<double> want = host.results();
  auto* fn = slot.get(Backend::cuda);
  BOOST_TEST_REQUIRE(fn != nullptr, "slot " << slot.name << " has no CUDA kernel");
  cuda_compared().insert(slot.name);
  Mem<float> dev{true};
  run(fn, dev);
  const Outs<float> got = dev.results();
  BOOST_TEST_CONTEXT("slot " << slot.name << ", cuda, " << what) {
    for (size_t i = 0; i < want.size() && i < got.size(); ++i)
      compare(i < names.size() ? names[i] : "out" + std::to_string(i), got[i], want[i], tol);
  }
}

kn::AttentionDesc desc(int64_t B, int64_t H, int64_t Hk, int64_t Tq, int64_t Tk, int64_t d) {
  kn::AttentionDesc a;
  a.B = B, a.H = H, a.Hk = Hk, a.Tq = Tq, a.Tk = Tk, a.d = d, a.scale = 1.0 / std::sqrt(double(d));
  return a;
}

// Attention with its mask vectors uploaded: key_pad and mask are device pointers for CUDA.
void check_attention(const std::string& what, kn::AttentionDesc a, bool with_bias, bool pad_keys, bool dense_mask,
                     uint32_t seed) {
  const int64_t nq = a.B * a.H * a.Tq * a.d, nkv = a.B * a.Hk * a.Tk * a.d, rows = a.B * a.H * a.Tq;
  const int64_t nb = (a.bias_per_batch ? a.B : 1) * a.H * a.Tq * a.Tk;
  const Vf q = rand_vec(nq, -1, 1, seed), k = rand_vec(nkv, -1, 1, seed + 1), v = rand_vec(nkv, -1, 1, seed + 2);
  const Vf bias = rand_vec(nb, -1, 1, seed + 3), dout = rand_vec(nq, -1, 1, seed + 4);
  std::vector<uint8_t> pad(size_t(a.B * a.Tk), 1), mask(size_t(a.B * a.H * a.Tq * a.Tk));
  for (size_t i = 0; i < pad.size(); i += 7) pad[i] = 0;
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = uint8_t((i * 13 + i / 5) % 4 != 0);
  if (dense_mask)
    a.mask_strides[0] = a.H * a.Tq * a.Tk, a.mask_strides[1] = a.Tq * a.Tk, a.mask_strides[2] = a.Tk,
    a.mask_strides[3] = 1;
  auto with_masks = [&](auto& m) {
    kn::AttentionDesc d = a;
    d.key_pad = pad_keys ? m.in(pad) : nullptr;
    d.mask = dense_mask ? m.in(mask) : nullptr;
    return d;
  };
  auto fwd = [&](auto* fn, auto& m) {
    const kn::AttentionDesc d = with_masks(m);
    auto* o = m.out(nq);
    auto* lse = m.out(rows);
    fn(d, o, lse, m.in(q), m.in(k), m.in(v), with_bias ? m.in(bias) : nullptr);
  };
  check(kn::attention_forward, what, {"o", "lse"}, 1e-4, fwd);
  Mem<double> saved_run{false};
  fwd(kn::attention_forward.f64, saved_run);
  const Outs<double> s = saved_run.results();
  const Vf o(s[0].begin(), s[0].end()), lse(s[1].begin(), s[1].end());
  check(kn::attention_backward, what, {"dq", "dk", "dv", "dbias"}, 2e-4, [&](auto* fn, auto& m) {
    const kn::AttentionDesc d = with_masks(m);
    auto *dq = m.out(nq), *dk = m.out(nkv), *dv = m.out(nkv);
    auto* db = with_bias ? m.out(nb) : nullptr;
    fn(d, dq, dk, dv, db, m.in(dout), m.in(q), m.in(k), m.in(v), with_bias ? m.in(bias) : nullptr, m.in(o), m.in(lse));
  });
}

// The bf16 option (AttentionDesc::bf16) on the device: every output and input gradient
// within its bf16 bound of the f64 oracle (bf16_bounds.h); the largest share of a bound used.
double check_attention_bf16(const std::string& what, kn::AttentionDesc a, bool with_bias, bool pad_keys,
                            uint32_t seed) {
  kn::init();
  const Bf16AttentionCase c(a, with_bias, pad_keys, /*with_mask=*/false, seed);
  const int64_t nq = c.nq, nkv = c.nkv, nb = c.nb;
  auto* fwd = kn::attention_forward.get(Backend::cuda);
  auto* bwd = kn::attention_backward.get(Backend::cuda);
  BOOST_TEST_REQUIRE((fwd && bwd), "the attention slots have no CUDA kernel");
  Mem<float> m{true};
  kn::AttentionDesc d = c.a;
  d.key_pad = pad_keys ? m.in(c.pad) : nullptr;
  d.bf16 = true;
  float* o = m.out(nq);
  float* lse = m.out(a.B * a.H * a.Tq);
  const float* bp = with_bias ? m.in(c.bias) : nullptr;
  fwd(d, o, lse, m.in(c.q), m.in(c.k), m.in(c.v), bp);
  float* dq = m.out(nq);
  float* dk = m.out(nkv);
  float* dv = m.out(nkv);
  float* db = m.out(Vf(size_t(nb), 0.0f));
  bwd(d, dq, dk, dv, with_bias ? db : nullptr, m.in(c.dout), m.in(c.q), m.in(c.k), m.in(c.v), bp, m.in(c.o),
      m.in(c.lse));
  const Outs<float> got = m.results();
  double used = 0;
  BOOST_TEST_CONTEXT("cuda attention, bf16, " << what) used = within_bf16_bounds(c.w, got, with_bias);
  BOOST_TEST_MESSAGE(what << ": largest error " << used << " of its bf16 bound");
  return used;
}
#endif

}  // namespace

// Each case carries the precondition: main() turns a run of only skipped cases into 77.
BOOST_AUTO_TEST_SUITE(cuda_kernels)

#if MNEMO_WITH_CUDA

BOOST_AUTO_TEST_CASE(vectors_and_optimizers, *ut::precondition(cuda_device)) {
  for (const int64_t n : {int64_t(1), int64_t(1001), int64_t(300007)}) {
    const Vf x = rand_vec(n, -2, 2, 1), y0 = rand_vec(n, -2, 2, 2), v0 = rand_vec(n, 0, 0.01f, 3);
    check(kn::fill, sz("n", n), {"y"}, 0.0, [&](auto* fn, auto& m) { fn(m.out(n), n, 1.25f); });
    check(kn::axpy, sz("n", n), {"y"}, 1e-5, [&](auto* fn, auto& m) { fn(m.out(y0), m.in(x), n, 0.7f); });
    check(kn::sum_squares, sz("n", n), {"sum"}, 1e-5, [&](auto* fn, auto& m) {
      double* sum = m.put(std::vector<double>{-1.0});  // on the kernel's side, as clip_grad_norm's
      fn(sum, m.in(x), n);
      double h = -1;
      if (m.device) cu::copy_to_host(&h, sum, sizeof h);
      else h = *sum;
      m.out(std::vector<double>{h});
    });
    Vf bad = x;
    bad[0] = std::nanf(""), bad[size_t(n - 1)] = kInf;
    check(kn::count_non_finite, sz("n", n), {"count"}, 0.0, [&](auto* fn, auto& m) {
      using T = std::remove_pointer_t<decltype(m.out(0))>;
      m.out(std::vector<T>{T(fn(m.in(bad), n)), T(fn(m.in(x), n))});
    });
    check(kn::dropout, sz("n", n), {"y"}, 0.0, [&](auto* fn, auto& m) { fn(m.out(n), m.in(x), n, 0.3f, 1234); });
    const kn::AdamWHyper ah{1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - std::pow(0.9, 3), 1 - std::pow(0.95, 3)};
    check(kn::adamw_step, sz("n", n), {"w", "m", "v"}, 1e-6,
          [&](auto* fn, auto& m) { fn(m.out(y0), m.in(x), m.out(x), m.out(v0), n, ah); });
    const kn::SgdHyper sh{0.1, 0.9, 0.1, 0.01, true, false};
    check(kn::sgd_step, sz("n", n), {"w", "buf"}, 1e-6,
          [&](auto* fn, auto& m) { fn(m.out(y0), m.in(x), m.out(v0), n, sh); });
  }
}

BOOST_AUTO_TEST_CASE(nbrc_cell, *ut::precondition(cuda_device)) {
  const int64_t n = 4099;
  const Vf ga = rand_vec(n, -6, 6, 60), gc = rand_vec(n, -6, 6, 61), gu = rand_vec(n, -6, 6, 62);
  const Vf h = rand_vec(n, -2, 2, 63), dout = rand_vec(n, -1, 1, 64);
  check(kn::nbrc_forward, "nbrc", {"out"}, 1e-5,
        [&](auto* fn, auto& m) { fn(m.out(n), m.in(ga), m.in(gc), m.in(gu), m.in(h), n); });
  check(kn::nbrc_backward, "nbrc", {"dga", "dgc", "dgu", "dh"}, 1e-5, [&](auto* fn, auto& m) {
    fn(m.out(n), m.out(n), m.out(n), m.out(n), m.in(dout), m.in(ga), m.in(gc), m.in(gu), m.in(h), n);
  });
}

BOOST_AUTO_TEST_CASE(unary_every_op_and_geglu, *ut::precondition(cuda_device)) {
  const int64_t n = 4099;
  for (int op = 0; op <= int(kn::Unary::abs); ++op) {
    const auto u = kn::Unary(op);
    const bool positive = u == kn::Unary::log || u == kn::Unary::sqrt || u == kn::Unary::rsqrt || u == kn::Unary::pow ||
                          u == kn::Unary::rdiv;
    const Vf x = rand_vec(n, positive ? 0.1f : -4.0f, 4.0f, 40 + op), dy = rand_vec(n, -1, 1, 90 + op);
    std::vector<double> y64(static_cast<size_t>(n));
    kn::unary_forward.f64(u, y64.data(), as<double>(x).data(), n, 1.7, -0.3);
    const Vf y(y64.begin(), y64.end());
    check(kn::unary_forward, kn::unary_name(u), {"y"}, 1e-5,
          [&](auto* fn, auto& m) { fn(u, m.out(n), m.in(x), n, 1.7f, -0.3f); });
    check(kn::unary_backward, kn::unary_name(u), {"dx"}, 1e-4,
          [&](auto* fn, auto& m) { fn(u, m.out(n), m.in(dy), m.in(x), m.in(y), n, 1.7f, -0.3f); });
  }
  for (const bool first : {false, true}) {
    const int64_t rows = 37, I = 129;
    const Vf x = rand_vec(rows * 2 * I, -4, 4, 7), dy = rand_vec(rows * I, -1, 1, 8);
    check(kn::geglu_forward, "geglu", {"y"}, 1e-5,
          [&](auto* fn, auto& m) { fn(m.out(rows * I), m.in(x), rows, I, first); });
    check(kn::geglu_backward, "geglu", {"dx"}, 1e-5,
          [&](auto* fn, auto& m) { fn(m.out(rows * 2 * I), m.in(dy), m.in(x), rows, I, first); });
  }
}

BOOST_AUTO_TEST_CASE(strided_walks_reductions_and_indexing, *ut::precondition(cuda_device)) {
  const kn::Strided bw = walk({3, 5, 37}, {{185, 37, 1}, {37, 0, 1}, {0, 1, 0}});
  const Vf a = rand_vec(3 * 37, -2, 2, 20), b = rand_vec(5, 0.5f, 2, 21);
  for (int op = 0; op < 4; ++op)
    check(kn::binary, "op " + std::to_string(op), {"out"}, 1e-5,
          [&](auto* fn, auto& m) { fn(kn::Binary(op), m.out(555), m.in(a), m.in(b), bw); });
  std::vector<uint8_t> cond(185);
  for (size_t i = 0; i < cond.size(); ++i) cond[i] = uint8_t(i % 3 == 0);
  const Vf wa = rand_vec(555, -2, 2, 22), wb = rand_vec(1, -2, 2, 23);
  check(kn::where, "where", {"out"}, 0.0, [&](auto* fn, auto& m) {
    fn(m.out(555), m.in(cond), m.in(wa), m.in(wb), walk({3, 5, 37}, {{0, 37, 1}, {185, 37, 1}}));
  });
  const Vf in = rand_vec(40200, -2, 2, 24);
  check(kn::strided_copy, "transpose", {"out"}, 0.0, [&](auto* fn, auto& m) {
    fn(m.out(40200), m.in(in), walk({201, 200}, {{1, 201}}));
  });
  check(kn::sum_to, "(200,201)->(1,201)", {"out"}, 1e-5, [&](auto* fn, auto& m) {
    fn(m.out(201), m.in(in), walk({200, 201}, {{0, 1}, {201, 1}}));
  });
  check(kn::sum_to, "(200,201)->(200,1)", {"out"}, 1e-5, [&](auto* fn, auto& m) {
    fn(m.out(200), m.in(in), walk({200, 201}, {{1, 0}, {201, 1}}));
  });
  const int64_t outer = 3, n = 67, inner = 5;
  Vf x = rand_vec(outer * n * inner, -2, 2, 25), dy = rand_vec(outer * inner, -1, 1, 26);
  x[7] = x[7 + inner];  // a tie: the gradient goes to the first
  for (const auto op : {kn::Reduce::sum, kn::Reduce::max})
    check(kn::reduce, op == kn::Reduce::sum ? "sum" : "max", {"y"}, 1e-5,
          [&](auto* fn, auto& m) { fn(op, m.out(outer * inner), m.in(x), outer, n, inner); });
  std::vector<double> y64(size_t(outer * inner));
  kn::reduce.f64(kn::Reduce::max, y64.data(), as<double>(x).data(), outer, n, inner);
  const Vf ymax(y64.begin(), y64.end());
  check(kn::reduce_max_backward, "max", {"dx"}, 0.0,
        [&](auto* fn, auto& m) { fn(m.out(outer * n * inner), m.in(dy), m.in(x), m.in(ymax), outer, n, inner); });
  for (const bool rev : {false, true})
    check(kn::cumsum, rev ? "reverse" : "forward", {"y"}, 1e-5,
          [&](auto* fn, auto& m) { fn(m.out(outer * n * inner), m.in(x), outer, n, inner, rev); });
  kn::AxisCopy ac;
  ac.outer = 3, ac.inner = 5, ac.src_n = 67, ac.src_off = 4, ac.dst_n = 40, ac.dst_off = 2, ac.len = 31;
  const Vf dst0 = rand_vec(3 * 40 * 5, -1, 1, 27);
  for (const bool acc : {false, true}) {
    ac.accumulate = acc;
    check(kn::copy_axis, acc ? "accumulate" : "copy", {"dst"}, 1e-6,
          [&](auto* fn, auto& m) { fn(m.out(dst0), m.in(x), ac); });
  }
  std::vector<int32_t> idx = rand_idx(29, 67, 28);
  idx[3] = -1, idx[5] = idx[6];  // a hole and a repeat
  check(kn::gather, "gather", {"out"}, 0.0,
        [&](auto* fn, auto& m) { fn(m.out(3 * 29 * 5), m.in(x), m.in(idx), 3, 67, 29, 5); });
  const Vf gy = rand_vec(3 * 29 * 5, -1, 1, 29);
  check(kn::scatter_add, "scatter_add", {"dx"}, 1e-5,
        [&](auto* fn, auto& m) { fn(m.out(x), m.in(gy), m.in(idx), 3, 67, 29, 5); });
}

BOOST_AUTO_TEST_CASE(rows_softmax_cross_entropy_norms, *ut::precondition(cuda_device)) {
  for (const int64_t n : {int64_t(1), int64_t(33), int64_t(1000)}) {
    const int64_t rows = 13;
    Vf x = rand_vec(rows * n, -5, 5, uint32_t(n)), dy = rand_vec(rows * n, -1, 1, uint32_t(n + 1));
    std::fill_n(x.begin() + 2 * n, n, -kInf);  // a row with nothing: zeros / -inf
    for (const bool log : {false, true}) {
      std::vector<double> y64(size_t(rows * n));
      kn::softmax_forward.f64(y64.data(), as<double>(x).data(), rows, n, log);
      Vf y(y64.begin(), y64.end());
      std::fill_n(y.begin() + 2 * n, n, log ? -10.0f : 0.0f);  // keep backward's inputs finite
      check(kn::softmax_forward, sz("n", n) + (log ? " log" : ""), {"y"}, 1e-5,
            [&](auto* fn, auto& m) { fn(m.out(rows * n), m.in(x), rows, n, log); });
      check(kn::softmax_backward, sz("n", n) + (log ? " log" : ""), {"dx"}, 1e-5,
            [&](auto* fn, auto& m) { fn(m.out(rows * n), m.in(dy), m.in(y), rows, n, log); });
    }
    const Vf logits = rand_vec(rows * n, -5, 5, uint32_t(n + 2)), dloss = rand_vec(rows, -1, 1, 3);
    std::vector<int32_t> target = rand_idx(rows, int32_t(n), 4);
    target[1] = -100;  // ignored
    std::vector<double> loss64(static_cast<size_t>(rows)), lse64(static_cast<size_t>(rows));
    kn::cross_entropy_forward.f64(loss64.data(), lse64.data(), as<double>(logits).data(), target.data(), rows, n, -100);
    const Vf lse(lse64.begin(), lse64.end());
    check(kn::cross_entropy_forward, sz("V", n), {"loss", "lse"}, 1e-5,
          [&](auto* fn, auto& m) { fn(m.out(rows), m.out(rows), m.in(logits), m.in(target), rows, n, -100); });
    check(kn::cross_entropy_backward, sz("V", n), {"dlogits"}, 1e-5, [&](auto* fn, auto& m) {
      fn(m.out(rows * n), m.in(dloss), m.in(logits), m.in(lse), m.in(target), rows, n, -100);
    });
    // norms over D = n
    const Vf gain = rand_vec(n, 0.5f, 1.5f, 5), bias = rand_vec(n, -1, 1, 6);
    const Vf xn = rand_vec(rows * n, -2, 2, 7);
    std::vector<double> ln_y(size_t(rows * n)), ln_mean(static_cast<size_t>(rows)), ln_rstd(static_cast<size_t>(rows));
    kn::layer_norm_forward.f64(ln_y.data(), ln_mean.data(), ln_rstd.data(), as<double>(xn).data(),
                               as<double>(gain).data(), as<double>(bias).data(), rows, n, 1e-5);
    const Vf mean(ln_mean.begin(), ln_mean.end()), rstd(ln_rstd.begin(), ln_rstd.end());
    check(kn::layer_norm_forward, sz("D", n), {"y", "mean", "rstd"}, 1e-4, [&](auto* fn, auto& m) {
      fn(m.out(rows * n), m.out(rows), m.out(rows), m.in(xn), m.in(gain), m.in(bias), rows, n, 1e-5f);
    });
    check(kn::layer_norm_backward, sz("D", n), {"dx", "dgain", "dbias"}, 1e-4, [&](auto* fn, auto& m) {
      fn(m.out(rows * n), m.out(n), m.out(n), m.in(dy), m.in(xn), m.in(mean), m.in(rstd), m.in(gain), rows, n);
    });
    std::vector<double> rms_y(size_t(rows * n)), rms_rstd(static_cast<size_t>(rows));
    kn::rms_norm_forward.f64(rms_y.data(), rms_rstd.data(), as<double>(xn).data(), as<double>(gain).data(), rows, n,
                             1e-5);
    const Vf rrstd(rms_rstd.begin(), rms_rstd.end());
    check(kn::rms_norm_forward, sz("D", n), {"y", "rstd"}, 1e-4,
          [&](auto* fn, auto& m) { fn(m.out(rows * n), m.out(rows), m.in(xn), m.in(gain), rows, n, 1e-5f); });
    check(kn::rms_norm_backward, sz("D", n), {"dx", "dgain"}, 1e-4, [&](auto* fn, auto& m) {
      fn(m.out(rows * n), m.out(n), m.in(dy), m.in(xn), m.in(rrstd), m.in(gain), rows, n);
    });
    std::vector<double> l2_y(size_t(rows * n)), l2_norm(static_cast<size_t>(rows));
    kn::l2_norm_forward.f64(l2_y.data(), l2_norm.data(), as<double>(xn).data(), rows, n, 1e-6);
    const Vf l2y(l2_y.begin(), l2_y.end()), l2n(l2_norm.begin(), l2_norm.end());
    check(kn::l2_norm_forward, sz("D", n), {"y", "norm"}, 1e-4,
          [&](auto* fn, auto& m) { fn(m.out(rows * n), m.out(rows), m.in(xn), rows, n, 1e-6f); });
    check(kn::l2_norm_backward, sz("D", n), {"dx"}, 1e-4,
          [&](auto* fn, auto& m) { fn(m.out(rows * n), m.in(dy), m.in(l2y), m.in(l2n), rows, n, 1e-6f); });
  }
}

BOOST_AUTO_TEST_CASE(gemm_transposes_batches_and_shared_c, *ut::precondition(cuda_device)) {
  struct G {
    bool ta, tb;
    int64_t M, N, K, batch;
    double alpha, beta;
    bool share_c;
  };
  for (const G g : {G{false, false, 1, 1, 1, 1, 1, 0, false}, G{false, true, 37, 29, 65, 3, 1, 0, false},
                    G{true, false, 64, 130, 7, 2, 0.5, 1, false}, G{true, true, 17, 5, 300, 4, 1, 1, true}}) {
    kn::GemmDesc d;
    d.trans_a = g.ta, d.trans_b = g.tb, d.M = g.M, d.N = g.N, d.K = g.K, d.alpha = g.alpha, d.beta = g.beta;
    const int64_t a_rows = g.ta ? g.K : g.M, a_cols = g.ta ? g.M : g.K, b_rows = g.tb ? g.N : g.K,
                  b_cols = g.tb ? g.K : g.N;
    d.lda = a_cols + 3, d.ldb = b_cols + 1, d.ldc = g.N + 2, d.batch = g.batch;
    d.stride_a = a_rows * d.lda, d.stride_b = b_rows * d.ldb, d.stride_c = g.share_c ? 0 : g.M * d.ldc;
    const Vf a = rand_vec(g.batch * d.stride_a, -1, 1, 1), b = rand_vec(g.batch * d.stride_b, -1, 1, 2);
    const Vf c0 = rand_vec((g.share_c ? 1 : g.batch) * g.M * d.ldc, -1, 1, 3);
    std::ostringstream what;
    what << "ta=" << g.ta << " tb=" << g.tb << " M=" << g.M << " N=" << g.N << " K=" << g.K << " batch=" << g.batch
         << " shared C=" << g.share_c;
    check(kn::gemm, what.str(), {"c"}, 1e-5 * std::sqrt(double(g.K)),
          [&](auto* fn, auto& m) { fn(d, m.in(a), m.in(b), m.out(c0)); });
  }
}

BOOST_AUTO_TEST_CASE(attention_every_mask_rule, *ut::precondition(cuda_device)) {
  check_attention("plain, size 1", desc(1, 1, 1, 1, 1, 1), false, false, false, 10);
  check_attention("plain odd, bias", desc(2, 3, 3, 7, 13, 5), true, false, false, 20);
  kn::AttentionDesc c = desc(2, 2, 2, 130, 200, 16);
  c.prefix = 70, c.causal = true;
  check_attention("causal after 70 prefix keys, per-head bias", c, true, false, false, 30);
  c.bias_per_batch = true;
  check_attention("causal after 70 prefix keys, per-batch bias", c, true, false, false, 40);
  kn::AttentionDesc w = desc(1, 4, 1, 100, 100, 64);
  w.causal = true, w.window = 33, w.read_rows = 4, w.write_rows = 4;
  check_attention("causal window, memory read and write rows, shared head", w, false, false, false, 50);
  kn::AttentionDesc nw = desc(2, 3, 1, 65, 80, 7);
  nw.window = 17, nw.prefix = 3, nw.bias_per_batch = true;
  check_attention("two-sided window, shared head, per-batch bias, key padding", nw, true, true, false, 60);
  kn::AttentionDesc early = desc(2, 2, 2, 17, 10, 8);
  early.causal = true;
  check_attention("causal with rows that see nothing", early, true, false, false, 70);
  kn::AttentionDesc dm = desc(3, 2, 1, 66, 65, 9);
  dm.causal = true, dm.prefix = 2, dm.bias_per_batch = true;
  check_attention("causal, dense mask per batch, key padding, shared head", dm, true, true, true, 80);
  check_attention("head width 128 (d 100)", desc(1, 2, 2, 70, 90, 100), true, false, false, 90);
  kn::AttentionDesc big = desc(2, 8, 8, 512, 512, 64);
  big.causal = true;
  check_attention("medium config shape: 8 heads of 64, 512 causal", big, false, false, false, 100);
}

// bf16 operands, f32 accumulation: within the per-element bf16 bounds (as the cpu's bf16_attention suite).
BOOST_AUTO_TEST_CASE(attention_bf16_operands, *ut::precondition(cuda_device)) {
  double used = 0;
  used = std::max(used, check_attention_bf16("plain odd", desc(2, 3, 3, 7, 13, 5), false, false, 910));
  kn::AttentionDesc c = desc(2, 2, 2, 130, 200, 16);
  c.prefix = 70, c.causal = true;
  used = std::max(used, check_attention_bf16("causal after 70 prefix keys, per-batch bias", c, true, false, 920));
  kn::AttentionDesc w = desc(1, 4, 1, 100, 100, 64);
  w.causal = true, w.window = 33, w.read_rows = 4, w.write_rows = 4;
  used = std::max(used, check_attention_bf16("causal window, read and write rows, shared head", w, false, false, 930));
  used = std::max(used, check_attention_bf16("key padding, d 33", desc(2, 2, 2, 65, 91, 33), false, true, 940));
  kn::AttentionDesc early = desc(2, 2, 2, 17, 10, 8);
  early.causal = true;
  used = std::max(used, check_attention_bf16("causal, rows that see nothing, bias", early, true, false, 950));
  kn::AttentionDesc wide = desc(1, 2, 2, 70, 129, 100);
  wide.causal = true;
  used = std::max(used, check_attention_bf16("causal, head width 128 (d 100), bias", wide, true, false, 960));
  BOOST_TEST(used > 0.01);  // the operands really were rounded
}

BOOST_AUTO_TEST_CASE(hyper_connection_mixing, *ut::precondition(cuda_device)) {
  // stream 0 of row 0 all zeros: its norm clamps at eps and takes no radial gradient
  for (const int64_t R : {int64_t(1), int64_t(7), int64_t(300)})
    for (const int64_t S : {int64_t(1), int64_t(3), int64_t(4)})
      for (const int64_t D : {int64_t(1), int64_t(37), int64_t(130)}) {
        const int64_t C = S + 2, W = D + S * C;
        const std::string what = sz("R", R) + " " + sz("S", S) + " " + sz("D", D);
        Vf H = rand_vec(R * S * D, -1, 1, 400);
        std::fill_n(H.begin(), D, 0.0f);
        const Vf G = rand_vec(D * C, -1, 1, 401), base = rand_vec(S * C, -1, 1, 402), scale = rand_vec(C, -2, 2, 403);
        const Vf dout = rand_vec(R * W, -1, 1, 404), b = rand_vec(R * D, -1, 1, 405);
        const Vf dh = rand_vec(R * S * D, -1, 1, 406);
        auto fwd = [&](auto* fn, auto& m) {
          using T = std::remove_pointer_t<decltype(m.out(0))>;
          auto* out = m.out(R * W);
          auto* z = m.out(R * S * C);
          auto* norm = m.out(R * S);
          fn(out, z, norm, m.in(H), m.in(G), m.in(base), m.in(scale), R, S, D, T(1e-12));
        };
        check(kn::hyper_width_forward, what, {"out", "z", "norm"}, 1e-4, fwd);
        Mem<double> saved_run{false};
        fwd(kn::hyper_width_forward.f64, saved_run);
        const Outs<double> s = saved_run.results();
        const Vf out(s[0].begin(), s[0].end()), z(s[1].begin(), s[1].end()), norm(s[2].begin(), s[2].end());
        check(kn::hyper_width_backward, what, {"dH", "dG", "dbase", "dscale"}, 1e-4, [&](auto* fn, auto& m) {
          using T = std::remove_pointer_t<decltype(m.out(0))>;
          auto* dH = m.out(R * S * D);
          auto* dG = m.out(D * C);
          auto* dbase = m.out(S * C);
          auto* dscale = m.out(C);
          fn(dH, dG, dbase, dscale, m.in(dout), m.in(H), m.in(G), m.in(scale), m.in(out), m.in(z), m.in(norm), R, S,
             D, T(1e-12));
        });
        Vf coef(size_t(R * S * C));  // the coefficients the width op made
        for (int64_t r = 0; r < R; ++r) std::copy_n(out.begin() + r * W + D, S * C, coef.begin() + r * S * C);
        for (const bool mix : {true, false}) {
          const std::string w = what + (mix ? " mixed" : " unmixed");
          check(kn::hyper_depth_forward, w, {"out"}, 1e-4,
                [&](auto* fn, auto& m) { fn(m.out(R * S * D), m.in(H), m.in(coef), m.in(b), R, S, D, mix); });
          check(kn::hyper_depth_backward, w, {"dH", "dcoef", "db"}, 1e-4, [&](auto* fn, auto& m) {
            auto* dH = m.out(R * S * D);
            auto* dcoef = m.out(R * S * C);
            auto* db = m.out(R * D);
            fn(dH, dcoef, db, m.in(dh), m.in(H), m.in(coef), m.in(b), R, S, D, mix);
          });
        }
      }
}

// A repeated step makes no cudaMalloc; a captured step replays with the right result.
BOOST_AUTO_TEST_CASE(steady_steps_and_graph_replay, *ut::precondition(cuda_device)) {
  kn::init();
  const int64_t n = 1 << 20;
  float* y = static_cast<float*>(cu::device_alloc(n * sizeof(float)));
  float* x = static_cast<float*>(cu::device_alloc(n * sizeof(float)));
  auto step = [&] {  // a temporary per step, as a training step's activations
    float* t = static_cast<float*>(cu::device_alloc(n * sizeof(float)));
    kn::fill.get(Backend::cuda)(t, n, 1.0f);
    kn::axpy.get(Backend::cuda)(y, t, n, 2.0f);
    cu::device_free(t);
  };
  kn::fill.get(Backend::cuda)(y, n, 0.0f);
  kn::fill.get(Backend::cuda)(x, n, 0.0f);
  std::vector<std::string> actions;
  uint64_t mallocs_after_warmup = 0;
  for (int s = 0; s < 6; ++s) {
    actions.push_back(cu::run_step("test step", step));
    if (s == 1) mallocs_after_warmup = cu::device_memory_stats().backing_allocs;
  }
  cu::synchronize();
  BOOST_TEST(actions[0] == "eager");
  BOOST_TEST(actions[1] == "eager");
  BOOST_TEST(actions[2] == "capture");
  BOOST_TEST(actions[5] == "replay");
  BOOST_TEST(cu::device_memory_stats().backing_allocs == mallocs_after_warmup,
             "the general cache grew in steady steps");
  std::vector<float> host(static_cast<size_t>(n));
  cu::copy_to_host(host.data(), y, n * sizeof(float));
  BOOST_TEST(host[0] == 12.0f);  // six steps of += 2, replays included
  BOOST_TEST(host[size_t(n - 1)] == 12.0f);
  cu::device_free(y);
  cu::device_free(x);
}

BOOST_AUTO_TEST_CASE(every_cuda_slot_was_compared, *ut::precondition(cuda_device)) {
  kn::init();
  for (const kn::KernelSlot* s : kn::all_kernels())
    if (s->filled[int(Backend::cuda)])
      BOOST_TEST(cuda_compared().count(s->name) == 1u, "CUDA kernel " << s->name << " was never compared");
}

#else
BOOST_AUTO_TEST_CASE(not_built, *ut::precondition(cuda_device)) {
  BOOST_FAIL("unreachable: the precondition skips this case");
}
#endif

BOOST_AUTO_TEST_SUITE_END()
