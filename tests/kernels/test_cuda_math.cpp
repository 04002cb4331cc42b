// The CUDA kernels' per-element and per-tile math (kernels/cuda/math.h) on the CPU against the
// f64 reference: each function runs here in the order its kernel runs it (keys in tiles of
// kAttnTile, zero-padded to the instantiated head width; a row's log-sum-exp folded by 32
// lanes and merged as a warp merges them), so a wrong formula or a wrong tile edge fails
// on a machine without a GPU.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "kernels/cuda/math.h"
#include "tests/kernels/agree.h"

using namespace mnemo::test;
namespace cu = mnemo::kernels::cuda;

namespace {

// ---- the kernels' order, on the host ----

// A row folded by 32 lanes (lane t takes elements t, t + 32, ...), merged in a butterfly.
cu::OnlineLse warp_lse(const float* x, int64_t n) {
  cu::OnlineLse lane[32];
  for (int64_t i = 0; i < n; ++i) lane[i % 32].push(x[i]);
  for (int offset = 16; offset > 0; offset /= 2)
    for (int t = 0; t < offset; ++t) lane[t].merge(lane[t + offset]);
  return lane[0];
}

// Rows of D floats, zero past d: a kernel's shared-memory tile or a thread's registers.
template <int D>
std::vector<float> padded(const float* src, int64_t rows, int64_t d, int64_t have_rows) {
  std::vector<float> t(size_t(rows * D), 0.0f);
  for (int64_t r = 0; r < std::min(rows, have_rows); ++r)
    for (int64_t c = 0; c < d; ++c) t[size_t(r * D + c)] = src[r * d + c];
  return t;
}

int64_t kv_head(const kn::AttentionDesc& a, int64_t b, int64_t h) { return b * a.Hk + (a.Hk == 1 ? 0 : h); }

template <int D>
void emulated_forward(const kn::AttentionDesc& a, float* o, float* lse, const float* q, const float* k, const float* v,
                      const float* bias) {
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.H; ++h)
      for (int64_t i = 0; i < a.Tq; ++i) {
        const int64_t r = (b * a.H + h) * a.Tq + i;
        cu::AttnRow<D> row;
        row.start(a, b, h, i);
        const auto qp = padded<D>(q + r * a.d, 1, a.d, 1);
        const float* kb = k + kv_head(a, b, h) * a.Tk * a.d;
        const float* vb = v + kv_head(a, b, h) * a.Tk * a.d;
        for (int64_t j0 = 0; j0 < a.Tk; j0 += cu::kAttnTile) {
          const int n = int(std::min<int64_t>(cu::kAttnTile, a.Tk - j0));
          const auto K = padded<D>(kb + j0 * a.d, cu::kAttnTile, a.d, n);
          const auto V = padded<D>(vb + j0 * a.d, cu::kAttnTile, a.d, n);
          row.forward_tile(a, qp.data(), K.data(), V.data(), cu::attention_bias_row(a, bias, b, h, i), j0, n);
        }
        row.finish(o + r * a.d, lse + r, a.d);
      }
}

template <int D>
void emulated_backward(const kn::AttentionDesc& a, float* dq, float* dk, float* dv, float* dbias, const float* dout,
                       const float* q, const float* k, const float* v, const float* bias, const float* o,
                       const float* lse) {
  const int64_t rows = a.B * a.H * a.Tq;
  std::vector<float> Drow(size_t(rows), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < a.d; ++c) Drow[size_t(r)] += dout[r * a.d + c] * o[r * a.d + c];
  // key side: one thread per key, over query tiles of every head that reads it
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t hk = 0; hk < a.Hk; ++hk)
      for (int64_t j = 0; j < a.Tk; ++j) {
        const int64_t kr = (b * a.Hk + hk) * a.Tk + j;
        const auto kp = padded<D>(k + kr * a.d, 1, a.d, 1), vp = padded<D>(v + kr * a.d, 1, a.d, 1);
        float dkj[D] = {}, dvj[D] = {};
        for (int64_t h = (a.Hk == 1 ? 0 : hk); h < (a.Hk == 1 ? a.H : hk + 1); ++h)
          for (int64_t i0 = 0; i0 < a.Tq; i0 += cu::kAttnTile) {
            const int n = int(std::min<int64_t>(cu::kAttnTile, a.Tq - i0));
            const int64_t r0 = (b * a.H + h) * a.Tq + i0;
            const auto Q = padded<D>(q + r0 * a.d, cu::kAttnTile, a.d, n);
            const auto dO = padded<D>(dout + r0 * a.d, cu::kAttnTile, a.d, n);
            cu::attention_backward_kv_tile<D>(a, b, h, j, kp.data(), vp.data(), Q.data(), dO.data(), lse + r0,
                                              Drow.data() + r0, bias, i0, n, dkj, dvj);
          }
        for (int64_t c = 0; c < a.d; ++c) dk[kr * a.d + c] = dkj[c], dv[kr * a.d + c] = dvj[c];
      }
  // query side: one thread per row; a bias shared by the batch sums its gradient over b
  if (dbias) std::fill_n(dbias, (a.bias_per_batch ? a.B : 1) * a.H * a.Tq * a.Tk, 0.0f);
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.H; ++h)
      for (int64_t i = 0; i < a.Tq; ++i) {
        const int64_t r = (b * a.H + h) * a.Tq + i;
        int64_t lo, hi;
        kn::attention_row_interval(a, i, lo, hi);
        const auto qp = padded<D>(q + r * a.d, 1, a.d, 1), dp = padded<D>(dout + r * a.d, 1, a.d, 1);
        float dqi[D] = {};
        const float* kb = k + kv_head(a, b, h) * a.Tk * a.d;
        const float* vb = v + kv_head(a, b, h) * a.Tk * a.d;
        float* dbias_row = dbias ? dbias + (((a.bias_per_batch ? b * a.H : 0) + h) * a.Tq + i) * a.Tk : nullptr;
        for (int64_t j0 = 0; j0 < a.Tk; j0 += cu::kAttnTile) {
          const int n = int(std::min<int64_t>(cu::kAttnTile, a.Tk - j0));
          const auto K = padded<D>(kb + j0 * a.d, cu::kAttnTile, a.d, n);
          const auto V = padded<D>(vb + j0 * a.d, cu::kAttnTile, a.d, n);
          cu::attention_backward_q_tile<D>(a, b, h, i, lo, hi, qp.data(), dp.data(), lse[r], Drow[size_t(r)], K.data(),
                                           V.data(), cu::attention_bias_row(a, bias, b, h, i), j0, n, dqi, dbias_row);
        }
        for (int64_t c = 0; c < a.d; ++c) dq[r * a.d + c] = dqi[c];
      }
}

kn::AttentionDesc desc(int64_t B, int64_t H, int64_t Hk, int64_t Tq, int64_t Tk, int64_t d) {
  kn::AttentionDesc a;
  a.B = B, a.H = H, a.Hk = Hk, a.Tq = Tq, a.Tk = Tk, a.d = d, a.scale = 1.0 / std::sqrt(double(d));
  return a;
}

template <int D>
void check_attention(const std::string& what, kn::AttentionDesc a, bool with_bias, bool pad_keys, uint32_t seed) {
  kn::init();
  const int64_t nq = a.B * a.H * a.Tq * a.d, nkv = a.B * a.Hk * a.Tk * a.d;
  const int64_t nb = (a.bias_per_batch ? a.B : 1) * a.H * a.Tq * a.Tk, rows = a.B * a.H * a.Tq;
  const Vf q = rand_vec(nq, -1, 1, seed), k = rand_vec(nkv, -1, 1, seed + 1), v = rand_vec(nkv, -1, 1, seed + 2);
  const Vf bias = rand_vec(nb, -1, 1, seed + 3), dout = rand_vec(nq, -1, 1, seed + 4);
  std::vector<uint8_t> pad(size_t(a.B * a.Tk), 1);
  for (size_t i = 0; i < pad.size(); i += 5) pad[i] = 0;
  a.key_pad = pad_keys ? pad.data() : nullptr;
  BOOST_TEST_CONTEXT(what << ", head width " << D) {
    std::vector<double> o64(static_cast<size_t>(nq)), lse64(static_cast<size_t>(rows));
    const auto qd = as<double>(q), kd = as<double>(k), vd = as<double>(v), bd = as<double>(bias);
    const auto dod = as<double>(dout);
    kn::attention_forward.f64(a, o64.data(), lse64.data(), qd.data(), kd.data(), vd.data(),
                              with_bias ? bd.data() : nullptr);
    Vf o = junk<float>(nq), lse = junk<float>(rows);
    emulated_forward<D>(a, o.data(), lse.data(), q.data(), k.data(), v.data(), with_bias ? bias.data() : nullptr);
    compare("o", o, o64, 1e-4);
    compare("lse", lse, lse64, 1e-4);

    // backward from the reference's saved o and lse, rounded to float as the other tests do
    const Vf of(o64.begin(), o64.end()), lsef(lse64.begin(), lse64.end());
    std::vector<double> dq64(static_cast<size_t>(nq)), dk64(static_cast<size_t>(nkv)), dv64(static_cast<size_t>(nkv)), db64(size_t(nb), 0.0);
    const auto od = as<double>(of), lsed = as<double>(lsef);
    kn::attention_backward.f64(a, dq64.data(), dk64.data(), dv64.data(), with_bias ? db64.data() : nullptr, dod.data(),
                               qd.data(), kd.data(), vd.data(), with_bias ? bd.data() : nullptr, od.data(),
                               lsed.data());
    Vf dq = junk<float>(nq), dk = junk<float>(nkv), dv = junk<float>(nkv), db(size_t(nb), 0.0f);
    emulated_backward<D>(a, dq.data(), dk.data(), dv.data(), with_bias ? db.data() : nullptr, dout.data(), q.data(),
                         k.data(), v.data(), with_bias ? bias.data() : nullptr, of.data(), lsef.data());
    compare("dq", dq, dq64, 2e-4);
    compare("dk", dk, dk64, 2e-4);
    compare("dv", dv, dv64, 2e-4);
    compare("dbias", db, db64, 2e-4);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cuda_math)

BOOST_AUTO_TEST_CASE(unary_maps_and_derivatives_match_the_reference) {
  kn::init();
  const int64_t n = 1001;
  for (int op = 0; op <= int(kn::Unary::abs); ++op) {
    const auto u = kn::Unary(op);
    const bool positive = u == kn::Unary::log || u == kn::Unary::sqrt || u == kn::Unary::rsqrt || u == kn::Unary::pow ||
                          u == kn::Unary::rdiv;
    const Vf x = rand_vec(n, positive ? 0.1f : -4.0f, 4.0f, 40 + op), dy = rand_vec(n, -1, 1, 90 + op);
    const float alpha = 1.7f, beta = -0.3f;
    std::vector<double> y64(static_cast<size_t>(n)), dx64(static_cast<size_t>(n));
    const auto xd = as<double>(x), dyd = as<double>(dy);
    kn::unary_forward.f64(u, y64.data(), xd.data(), n, alpha, beta);
    kn::unary_backward.f64(u, dx64.data(), dyd.data(), xd.data(), y64.data(), n, alpha, beta);
    Vf y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      y[size_t(i)] = cu::unary_apply(u, x[size_t(i)], alpha, beta);
      const bool from_y = cu::unary_reads_y(u);  // as the kernel: the other input may be null
      dx[size_t(i)] = dy[size_t(i)] * cu::unary_derivative(u, from_y ? 0.0f : x[size_t(i)],
                                                           from_y ? float(y64[size_t(i)]) : 0.0f, alpha);
    }
    BOOST_TEST_CONTEXT("unary " << kn::unary_name(u)) {
      compare("y", y, y64, 1e-5);
      compare("dx", dx, dx64, 1e-4);
    }
  }
}

BOOST_AUTO_TEST_CASE(geglu_pairs_match_the_reference) {
  kn::init();
  const int64_t rows = 7, I = 37;
  const Vf x = rand_vec(rows * 2 * I, -4, 4, 7), dy = rand_vec(rows * I, -1, 1, 8);
  for (const bool first : {false, true}) {
    std::vector<double> y64(size_t(rows * I)), dx64(size_t(rows * 2 * I));
    kn::geglu_forward.f64(y64.data(), as<double>(x).data(), rows, I, first);
    kn::geglu_backward.f64(dx64.data(), as<double>(dy).data(), as<double>(x).data(), rows, I, first);
    Vf y(y64.size()), dx(dx64.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < I; ++j) {
        const size_t a = size_t(r * 2 * I + j), g = a + size_t(I), out = size_t(r * I + j);
        y[out] = cu::geglu_value(x[a], x[g], first);
        cu::geglu_grads(dy[out], x[a], x[g], first, dx[a], dx[g]);
      }
    BOOST_TEST_CONTEXT("activate_first " << first) {
      compare("y", y, y64, 1e-5);
      compare("dx", dx, dx64, 1e-5);
    }
  }
}

BOOST_AUTO_TEST_CASE(optimizer_elements_match_the_reference) {
  kn::init();
  const int64_t n = 333;
  const Vf w0 = rand_vec(n, -1, 1, 1), g = rand_vec(n, -1, 1, 2), m0 = rand_vec(n, -0.1f, 0.1f, 3);
  const Vf v0 = rand_vec(n, 0, 0.01f, 4);
  const kn::AdamWHyper ah{1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - std::pow(0.9, 3), 1 - std::pow(0.95, 3)};
  auto w64 = as<double>(w0), m64 = as<double>(m0), v64 = as<double>(v0);
  kn::adamw_step.f64(w64.data(), as<double>(g).data(), m64.data(), v64.data(), n, ah);
  Vf w = w0, m = m0, v = v0;
  for (size_t i = 0; i < w.size(); ++i) cu::adamw_element(w[i], g[i], m[i], v[i], ah);
  compare("adamw w", w, w64, 1e-6);
  compare("adamw m", m, m64, 1e-6);
  compare("adamw v", v, v64, 1e-6);
  for (const bool first : {true, false}) {
    const kn::SgdHyper sh{0.1, 0.9, 0.1, 0.01, !first, first};
    auto sw64 = as<double>(w0), buf64 = as<double>(m0);
    kn::sgd_step.f64(sw64.data(), as<double>(g).data(), buf64.data(), n, sh);
    Vf sw = w0, buf = m0;
    for (size_t i = 0; i < sw.size(); ++i) cu::sgd_element(sw[i], g[i], &buf[i], sh);
    compare("sgd w", sw, sw64, 1e-6);
    compare("sgd buf", buf, buf64, 1e-6);
  }
}

BOOST_AUTO_TEST_CASE(warp_merged_log_sum_exp_matches_cross_entropy) {
  kn::init();
  for (const int64_t V : {int64_t(1), int64_t(31), int64_t(33), int64_t(1000)}) {
    const int64_t rows = 5;
    Vf logits = rand_vec(rows * V, -30, 30, uint32_t(V));
    std::fill_n(logits.begin() + 2 * V, V, -kInf);  // a row with no finite logit: lse -inf
    if (V > 1) logits[size_t(3 * V + 1)] = -kInf;   // one -inf among finite ones
    std::vector<int32_t> target(size_t(rows), 0);
    std::vector<double> loss64(static_cast<size_t>(rows)), lse64(static_cast<size_t>(rows));
    kn::cross_entropy_forward.f64(loss64.data(), lse64.data(), as<double>(logits).data(), target.data(), rows, V, -1);
    Vf lse(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) lse[size_t(r)] = warp_lse(logits.data() + r * V, V).value();
    BOOST_TEST_CONTEXT("V " << V) compare("lse", lse, lse64, 1e-6);
  }
}

BOOST_AUTO_TEST_CASE(attention_tiles_match_the_reference) {
  check_attention<32>("plain, size 1", desc(1, 1, 1, 1, 1, 1), false, false, 10);
  check_attention<32>("plain odd, bias", desc(2, 3, 3, 7, 13, 5), true, false, 20);
  kn::AttentionDesc c = desc(2, 2, 2, 45, 101, 16);
  c.prefix = 30, c.causal = true;
  check_attention<32>("causal after 30 prefix keys, per-head bias, 4 key tiles", c, true, false, 30);
  c.bias_per_batch = true;
  check_attention<32>("causal after 30 prefix keys, per-batch bias", c, true, false, 40);
  kn::AttentionDesc w = desc(1, 3, 1, 70, 70, 40);
  w.causal = true, w.window = 33, w.read_rows = 4, w.write_rows = 4;
  check_attention<64>("causal window, read and write rows, shared head, width 64", w, false, false, 50);
  kn::AttentionDesc nw = desc(2, 3, 1, 33, 40, 7);
  nw.window = 9, nw.prefix = 3, nw.bias_per_batch = true;
  check_attention<32>("two-sided window, shared head, per-batch bias, key padding", nw, true, true, 60);
  kn::AttentionDesc early = desc(2, 2, 2, 17, 10, 8);
  early.causal = true;  // rows 0-6 see nothing: o 0, lse -inf, no gradient
  check_attention<32>("causal with rows that see nothing", early, true, false, 70);
  check_attention<128>("head width 128, d 100", desc(1, 2, 2, 9, 35, 100), true, true, 80);
}

BOOST_AUTO_TEST_CASE(attention_widths) {
  BOOST_TEST(cu::attention_width(1) == 32);
  BOOST_TEST(cu::attention_width(33) == 64);
  BOOST_TEST(cu::attention_width(128) == 128);
  BOOST_TEST(cu::attention_width(129) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
