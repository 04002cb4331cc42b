// The CUDA kernels' per-element and per-tile math (kernels/cuda/math.h) on the CPU against the
// f64 reference: each function runs here in the order its kernel runs it (keys in tiles of
// kAttnTile, zero-padded to the instantiated head width; a row's log-sum-exp folded by 32
// lanes and merged as a warp merges them), so a wrong formula or a wrong tile edge fails
// on a machine without a GPU.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cuda/hyper_math.h"
#include "kernels/cuda/math.h"
#include "kernels/cpu/bf16_tile.h"
#include "tests/kernels/agree.h"
#include "tests/kernels/bf16_bounds.h"

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

// Rows of D floats, zero past d: a kernel's shared-memory tile or a thread's registers,
// as the kernel loads them (rounded to bf16 under a.bf16).
template <int D>
std::vector<float> padded(const kn::AttentionDesc& a, const float* src, int64_t rows, int64_t have_rows) {
  std::vector<float> t(size_t(rows * D), 0.0f);
  for (int64_t r = 0; r < std::min(rows, have_rows); ++r)
    for (int64_t c = 0; c < a.d; ++c) t[size_t(r * D + c)] = cu::attention_operand(a, src[r * a.d + c]);
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
        const auto qp = padded<D>(a, q + r * a.d, 1, 1);
        const float* kb = k + kv_head(a, b, h) * a.Tk * a.d;
        const float* vb = v + kv_head(a, b, h) * a.Tk * a.d;
        for (int64_t j0 = 0; j0 < a.Tk; j0 += cu::kAttnTile) {
          const int n = int(std::min<int64_t>(cu::kAttnTile, a.Tk - j0));
          const auto K = padded<D>(a, kb + j0 * a.d, cu::kAttnTile, n);
          const auto V = padded<D>(a, vb + j0 * a.d, cu::kAttnTile, n);
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
        const auto kp = padded<D>(a, k + kr * a.d, 1, 1), vp = padded<D>(a, v + kr * a.d, 1, 1);
        float dkj[D] = {}, dvj[D] = {};
        for (int64_t h = (a.Hk == 1 ? 0 : hk); h < (a.Hk == 1 ? a.H : hk + 1); ++h)
          for (int64_t i0 = 0; i0 < a.Tq; i0 += cu::kAttnTile) {
            const int n = int(std::min<int64_t>(cu::kAttnTile, a.Tq - i0));
            const int64_t r0 = (b * a.H + h) * a.Tq + i0;
            const auto Q = padded<D>(a, q + r0 * a.d, cu::kAttnTile, n);
            const auto dO = padded<D>(a, dout + r0 * a.d, cu::kAttnTile, n);
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
        const auto qp = padded<D>(a, q + r * a.d, 1, 1), dp = padded<D>(a, dout + r * a.d, 1, 1);
        float dqi[D] = {};
        const float* kb = k + kv_head(a, b, h) * a.Tk * a.d;
        const float* vb = v + kv_head(a, b, h) * a.Tk * a.d;
        float* dbias_row = dbias ? dbias + (((a.bias_per_batch ? b * a.H : 0) + h) * a.Tq + i) * a.Tk : nullptr;
        for (int64_t j0 = 0; j0 < a.Tk; j0 += cu::kAttnTile) {
          const int n = int(std::min<int64_t>(cu::kAttnTile, a.Tk - j0));
          const auto K = padded<D>(a, kb + j0 * a.d, cu::kAttnTile, n);
          const auto V = padded<D>(a, vb + j0 * a.d, cu::kAttnTile, n);
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

// The bf16 option (AttentionDesc::bf16) in the kernels' order: every output and input
// gradient within its bf16 bound of the f64 oracle (bf16_bounds.h); returns the largest
// share of a bound an error used.
template <int D>
double check_attention_bf16(const std::string& what, kn::AttentionDesc a, bool with_bias, bool pad_keys,
                            uint32_t seed) {
  kn::init();
  Bf16AttentionCase c(a, with_bias, pad_keys, /*with_mask=*/false, seed);
  c.a.bf16 = true;
  Outs<float> got{junk<float>(c.nq), junk<float>(a.B * a.H * a.Tq), junk<float>(c.nq), junk<float>(c.nkv),
                  junk<float>(c.nkv), Vf(size_t(c.nb), 0.0f)};
  const float* bp = c.bias_or_null();
  emulated_forward<D>(c.a, got[0].data(), got[1].data(), c.q.data(), c.k.data(), c.v.data(), bp);
  emulated_backward<D>(c.a, got[2].data(), got[3].data(), got[4].data(), with_bias ? got[5].data() : nullptr,
                       c.dout.data(), c.q.data(), c.k.data(), c.v.data(), bp, c.o.data(), c.lse.data());
  double used = 0;
  BOOST_TEST_CONTEXT(what << ", bf16, head width " << D) used = within_bf16_bounds(c.w, got, with_bias);
  BOOST_TEST_MESSAGE(what << ": largest error " << used << " of its bf16 bound");
  return used;
}

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

// ---- hyper-connections, in the kernels' order (kernels/cuda/hyper.cu) ----

// A warp's sum of lane(l)'s partials for l < 32, added as the xor butterfly adds them.
template <class Lane>
float lanes_sum(Lane lane) {
  float part[32];
  for (int l = 0; l < 32; ++l) part[l] = lane(l);
  for (int offset = 16; offset > 0; offset /= 2)
    for (int t = 0; t < offset; ++t) part[t] += part[t + offset];
  return part[0];
}

void emulated_hyper_width_forward(float* out, float* z, float* norm, const float* H, const float* G, const float* base,
                                  const float* scale, int64_t R, int64_t S, int64_t D, float eps) {
  const int64_t C = S + 2, W = D + S * C;
  for (int64_t r = 0; r < R; ++r) {  // a warp per row
    float* branch = out + r * W;
    float* coef = branch + D;
    std::fill_n(branch, D, 0.0f);
    for (int64_t s = 0; s < S; ++s) {
      const float* hs = H + (r * S + s) * D;
      const float n = std::sqrt(lanes_sum([&](int l) { return cu::hyper_lane_dot(hs, hs, D, l, 32); }));
      float coef0 = 0.0f;
      for (int64_t c = 0; c < C; ++c) {
        const float dot = lanes_sum([&](int l) { return cu::hyper_lane_dot_column(hs, G, c, C, D, l, 32); });
        float zc;
        coef[s * C + c] = cu::hyper_width_coefficient(dot, n, eps, base[s * C + c], scale[c], zc);
        z[(r * S + s) * C + c] = zc;
        if (c == 0) coef0 = coef[s * C + c];
      }
      norm[r * S + s] = n;
      for (int64_t i = 0; i < D; ++i) branch[i] += coef0 * hs[i];
    }
  }
}

void emulated_hyper_width_backward(float* dH, float* dG, float* dbase, float* dscale, const float* dout, const float* H,
                                   const float* G, const float* scale, const float* out, const float* z,
                                   const float* norm, int64_t R, int64_t S, int64_t D, float eps) {
  const int64_t C = S + 2, W = D + S * C, RS = R * S;
  Vf dc_all(size_t(RS * C)), dzm_all(size_t(RS * C));
  for (int64_t rs = 0; rs < RS; ++rs) {  // a warp per stream
    const int64_t r = rs / S, s = rs % S;
    const float* hs = H + rs * D;
    const float* dbranch = dout + r * W;
    const float n = norm[rs], m = std::max(n, eps);
    const float via_branch = lanes_sum([&](int l) { return cu::hyper_lane_dot(hs, dbranch, D, l, 32); });
    float radial = 0.0f;
    for (int64_t c = 0; c < C; ++c) {
      const float zc = z[rs * C + c];
      const float dc = cu::hyper_width_dc(dbranch[D + s * C + c], via_branch, c);
      const float dz = cu::hyper_width_dz(dc, zc, scale[c]);
      radial += dz * zc;
      dc_all[size_t(rs * C + c)] = dc, dzm_all[size_t(rs * C + c)] = dz / m;
    }
    const float k = cu::hyper_width_radial(radial, n, eps), coef0 = out[r * W + D + s * C];
    for (int64_t i = 0; i < D; ++i)
      dH[rs * D + i] = cu::hyper_width_dh(coef0, dbranch[i], k, hs[i], G + i * C, dzm_all.data() + rs * C, C);
  }
  for (int64_t e = 0; e < D * C; ++e) {  // a thread per element of each parameter gradient
    double sum = 0.0;
    for (int64_t rs = 0; rs < RS; ++rs) sum += double(H[rs * D + e / C]) * double(dzm_all[size_t(rs * C + e % C)]);
    dG[e] = float(sum);
  }
  for (int64_t sc = 0; sc < S * C; ++sc) {
    double sum = 0.0;
    for (int64_t r = 0; r < R; ++r) sum += double(dc_all[size_t(r * S * C + sc)]);
    dbase[sc] = float(sum);
  }
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0.0;
    for (int64_t rs = 0; rs < RS; ++rs) sum += double(dc_all[size_t(rs * C + c)]) * std::tanh(double(z[rs * C + c]));
    dscale[c] = float(sum);
  }
}

void emulated_hyper_depth_backward(float* dH, float* dcoef, float* db, const float* dout, const float* H,
                                   const float* coef, const float* b, int64_t R, int64_t S, int64_t D, bool mix) {
  const int64_t C = S + 2;
  for (int64_t e = 0; e < R * S * D; ++e) {
    const int64_t r = e / (S * D), s = e / D % S, i = e % D;
    dH[e] = cu::hyper_depth_dh(dout + r * S * D, coef + r * S * C, S, D, s, i, mix);
  }
  for (int64_t e = 0; e < R * D; ++e)
    db[e] = cu::hyper_depth_db(dout + (e / D) * S * D, coef + (e / D) * S * C, S, D, e % D);
  for (int64_t rs = 0; rs < R * S; ++rs) {
    const int64_t r = rs / S, s = rs % S;
    for (int64_t c = 0; c < C; ++c) {
      const auto rows = cu::hyper_depth_dcoef_rows(H + r * S * D, dout + r * S * D, b + r * D, S, D, s, c, mix);
      dcoef[rs * C + c] =
          rows.x ? lanes_sum([&](int l) { return cu::hyper_lane_dot(rows.x, rows.y, D, l, 32); }) : 0.0f;
    }
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

BOOST_AUTO_TEST_CASE(nbrc_elements_match_the_reference) {
  kn::init();
  const int64_t n = 333;
  const Vf ga = rand_vec(n, -6, 6, 11), gc = rand_vec(n, -6, 6, 12), gu = rand_vec(n, -6, 6, 13);
  const Vf h = rand_vec(n, -2, 2, 14), dout = rand_vec(n, -1, 1, 15);
  const size_t count = static_cast<size_t>(n);
  std::vector<double> out64(count), dga64(count), dgc64(count), dgu64(count), dh64(count);
  kn::nbrc_forward.f64(out64.data(), as<double>(ga).data(), as<double>(gc).data(), as<double>(gu).data(),
                       as<double>(h).data(), n);
  kn::nbrc_backward.f64(dga64.data(), dgc64.data(), dgu64.data(), dh64.data(), as<double>(dout).data(),
                        as<double>(ga).data(), as<double>(gc).data(), as<double>(gu).data(), as<double>(h).data(), n);
  Vf out(count), dga(count), dgc(count), dgu(count), dh(count);
  for (size_t i = 0; i < count; ++i) {
    out[i] = cu::nbrc_value(ga[i], gc[i], gu[i], h[i]);
    cu::nbrc_grads(dout[i], ga[i], gc[i], gu[i], h[i], dga[i], dgc[i], dgu[i], dh[i]);
  }
  compare("out", out, out64, 1e-5);
  compare("dga", dga, dga64, 1e-5);
  compare("dgc", dgc, dgc64, 1e-5);
  compare("dgu", dgu, dgu64, 1e-5);
  compare("dh", dh, dh64, 1e-5);
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

BOOST_AUTO_TEST_CASE(bf16_round_matches_the_cpu_packs) {
  // 1 + 2^-8 ties between 1 and 1 + 2^-7: to the even 1; 1 + 3 2^-8 ties up to 1 + 2^-6
  BOOST_TEST(cu::bf16_round(1.0f + std::ldexp(1.0f, -8)) == 1.0f);
  BOOST_TEST(cu::bf16_round(1.0f + 3 * std::ldexp(1.0f, -8)) == 1.0f + std::ldexp(1.0f, -6));
  BOOST_TEST(cu::bf16_round(-2.5f) == -2.5f);
  BOOST_TEST(cu::bf16_round(kInf) == kInf);
  BOOST_TEST(cu::bf16_round(std::numeric_limits<float>::max()) == kInf);  // past bf16's largest
  BOOST_TEST(std::isnan(cu::bf16_round(std::numeric_limits<float>::quiet_NaN())));
  BOOST_TEST(std::isnan(cu::bf16_round(std::numeric_limits<float>::signaling_NaN())));
  // every exponent, denormals included, against the cpu backend's scalar pack (any CPU)
  Vf x = rand_vec(4000, -1, 1, 77);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::ldexp(x[i], int(i % 280) - 150);
  x.push_back(std::numeric_limits<float>::quiet_NaN());
  x.push_back(-kInf);
  x.push_back(std::numeric_limits<float>::denorm_min());
  const int64_t n = int64_t(x.size());
  std::vector<uint32_t> packed(static_cast<size_t>(n));
  kn::cpu::pack_col_pairs(n, 1, x.data(), 1, packed.data(), n);  // one column: bf16(x[r]) in the low half
  size_t bad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const uint32_t r = bits(cu::bf16_round(x[i]));
    if ((r & 0xFFFFu) != 0 || (r >> 16) != (packed[i] & 0xFFFFu)) ++bad;
  }
  BOOST_TEST(bad == 0u, bad << " of " << x.size() << " values round differently from the cpu pack");
}

BOOST_AUTO_TEST_CASE(attention_bf16_operands_stay_within_bf16_rounding) {
  double used = 0;
  used = std::max(used, check_attention_bf16<32>("plain odd", desc(2, 3, 3, 7, 13, 5), false, false, 910));
  kn::AttentionDesc c = desc(2, 2, 2, 45, 101, 16);
  c.prefix = 30, c.causal = true;
  used = std::max(used, check_attention_bf16<32>("causal after 30 prefix keys, per-batch bias", c, true, false, 920));
  kn::AttentionDesc w = desc(1, 3, 1, 70, 70, 40);
  w.causal = true, w.window = 33, w.read_rows = 4, w.write_rows = 4;
  used = std::max(used, check_attention_bf16<64>("causal window, read and write rows, shared head", w, false, false,
                                                 930));
  used = std::max(used, check_attention_bf16<64>("key padding, d 33", desc(2, 2, 2, 33, 45, 33), false, true, 940));
  kn::AttentionDesc early = desc(2, 2, 2, 17, 10, 8);
  early.causal = true;
  used = std::max(used, check_attention_bf16<32>("causal, rows that see nothing, bias", early, true, false, 950));
  kn::AttentionDesc wide = desc(1, 2, 2, 9, 35, 100);
  wide.causal = true;
  used = std::max(used, check_attention_bf16<128>("causal, head width 128 (d 100), bias", wide, true, true, 960));
  // the bounds are not so loose that the rounding could be missing unnoticed: the errors
  // use a visible share of them
  BOOST_TEST(used > 0.01);
}

BOOST_AUTO_TEST_CASE(hyper_connection_mixing_matches_the_reference) {
  kn::init();
  // D 1 and 31 leave lanes idle, 100 gives lanes unequal shares; stream 0 of row 0 is all
  // zeros: its norm clamps at eps and it takes no radial gradient
  for (const int64_t R : {int64_t(1), int64_t(7), int64_t(45)})
    for (const int64_t S : {int64_t(1), int64_t(3), int64_t(4)})
      for (const int64_t D : {int64_t(1), int64_t(31), int64_t(100)}) {
        const int64_t C = S + 2, W = D + S * C;
        Vf H = rand_vec(R * S * D, -1, 1, 500);
        std::fill_n(H.begin(), D, 0.0f);
        const Vf G = rand_vec(D * C, -1, 1, 501), base = rand_vec(S * C, -1, 1, 502), scale = rand_vec(C, -2, 2, 503);
        const Vf dout = rand_vec(R * W, -1, 1, 504), b = rand_vec(R * D, -1, 1, 505);
        const Vf dh = rand_vec(R * S * D, -1, 1, 506);
        const float eps = 1e-12f;
        const auto Hd = as<double>(H), Gd = as<double>(G), scaled = as<double>(scale), doutd = as<double>(dout);
        std::vector<double> out64(size_t(R * W)), z64(size_t(R * S * C)), norm64(size_t(R * S));
        kn::hyper_width_forward.f64(out64.data(), z64.data(), norm64.data(), Hd.data(), Gd.data(),
                                    as<double>(base).data(), scaled.data(), R, S, D, eps);
        Vf out = junk<float>(R * W), z = junk<float>(R * S * C), norm = junk<float>(R * S);
        emulated_hyper_width_forward(out.data(), z.data(), norm.data(), H.data(), G.data(), base.data(), scale.data(),
                                     R, S, D, eps);
        BOOST_TEST_CONTEXT(sz("R", R) << " " << sz("S", S) << " " << sz("D", D)) {
          compare("width out", out, out64, 1e-4);
          compare("width z", z, z64, 1e-4);
          compare("width norm", norm, norm64, 1e-5);
          // backward from the reference's saved outputs, rounded to float
          const Vf outf(out64.begin(), out64.end()), zf(z64.begin(), z64.end()), normf(norm64.begin(), norm64.end());
          std::vector<double> dH64(size_t(R * S * D)), dG64(size_t(D * C)), dbase64(size_t(S * C));
          std::vector<double> dscale64(static_cast<size_t>(C));
          kn::hyper_width_backward.f64(dH64.data(), dG64.data(), dbase64.data(), dscale64.data(), doutd.data(),
                                       Hd.data(), Gd.data(), scaled.data(), as<double>(outf).data(),
                                       as<double>(zf).data(), as<double>(normf).data(), R, S, D, eps);
          Vf dH = junk<float>(R * S * D), dG = junk<float>(D * C), dbase = junk<float>(S * C), dscale = junk<float>(C);
          emulated_hyper_width_backward(dH.data(), dG.data(), dbase.data(), dscale.data(), dout.data(), H.data(),
                                        G.data(), scale.data(), outf.data(), zf.data(), normf.data(), R, S, D, eps);
          compare("width dH", dH, dH64, 1e-4);
          compare("width dG", dG, dG64, 1e-4);
          compare("width dbase", dbase, dbase64, 1e-4);
          compare("width dscale", dscale, dscale64, 1e-4);
          Vf coef(size_t(R * S * C));  // the coefficients the width op made
          for (int64_t r = 0; r < R; ++r) std::copy_n(outf.begin() + r * W + D, S * C, coef.begin() + r * S * C);
          const auto coefd = as<double>(coef), bd = as<double>(b);
          for (const bool mix : {true, false}) {
            BOOST_TEST_CONTEXT((mix ? "mixed" : "unmixed")) {
              std::vector<double> y64(size_t(R * S * D));
              kn::hyper_depth_forward.f64(y64.data(), Hd.data(), coefd.data(), bd.data(), R, S, D, mix);
              Vf y = junk<float>(R * S * D);
              for (int64_t e = 0; e < R * S * D; ++e) {  // a thread per element
                const int64_t r = e / (S * D);
                y[size_t(e)] = cu::hyper_depth_out(H.data() + r * S * D, coef.data() + r * S * C, b.data() + r * D, S,
                                                   D, e / D % S, e % D, mix);
              }
              compare("depth out", y, y64, 1e-4);
              std::vector<double> ddH64(size_t(R * S * D)), dc64(size_t(R * S * C)), db64(size_t(R * D));
              kn::hyper_depth_backward.f64(ddH64.data(), dc64.data(), db64.data(), as<double>(dh).data(), Hd.data(),
                                           coefd.data(), bd.data(), R, S, D, mix);
              Vf ddH = junk<float>(R * S * D), dc = junk<float>(R * S * C), db = junk<float>(R * D);
              emulated_hyper_depth_backward(ddH.data(), dc.data(), db.data(), dh.data(), H.data(), coef.data(),
                                            b.data(), R, S, D, mix);
              compare("depth dH", ddH, ddH64, 1e-4);
              compare("depth dcoef", dc, dc64, 1e-4);
              compare("depth db", db, db64, 1e-4);
            }
          }
        }
      }
}

BOOST_AUTO_TEST_CASE(attention_widths) {
  BOOST_TEST(cu::attention_width(1) == 32);
  BOOST_TEST(cu::attention_width(33) == 64);
  BOOST_TEST(cu::attention_width(128) == 128);
  BOOST_TEST(cu::attention_width(129) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
