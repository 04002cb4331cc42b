#include "autograd/attention_recorder.h"

#include <cmath>
#include <limits>

#include "autograd/error.h"

namespace mnemo {
namespace {

AttentionRecorder* g_recorder = nullptr;

std::vector<double> f64(const Tensor& t) {
  if (!t.defined()) return {};
  if (t.dtype() == DType::f64) return {t.data<double>(), t.data<double>() + t.numel()};
  return {t.data<float>(), t.data<float>() + t.numel()};
}

}  // namespace

AttentionRecorder* attention_recorder() { return g_recorder; }

RecordAttention::RecordAttention(AttentionRecorder& r) : previous_(g_recorder) { g_recorder = &r; }
RecordAttention::~RecordAttention() { g_recorder = previous_; }

void AttentionRecorder::record(const Tensor& q, const Tensor& k, const Tensor& bias, const kernels::AttentionDesc& a) {
  MNEMO_CHECK(q.dtype() == DType::f32 || q.dtype() == DType::f64,
              "[attention_recorder] expected f32 or f64 queries, got " << q.dtype());
  const std::vector<double> qv = f64(q), kv = f64(k), bv = f64(bias);
  Tensor p = Tensor::zeros({a.B, a.H, a.Tq, a.Tk}, DType::f64);
  double* out = p.data<double>();
  std::vector<double> logit(size_t(a.Tk));
  std::vector<uint8_t> seen(size_t(a.Tk));
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.H; ++h) {
      const int64_t hk = a.Hk == 1 ? 0 : h;
      for (int64_t i = 0; i < a.Tq; ++i) {
        int64_t lo, hi;
        kernels::attention_row_interval(a, i, lo, hi);
        double top = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < a.Tk; ++j) {
          const int64_t mj = j - a.prefix;  // the rules of kernels.h: prefix always seen
          bool ok = mj < 0 || (mj >= lo && mj <= hi);
          if (a.key_pad) ok = ok && a.key_pad[b * a.Tk + j];
          if (a.mask) {
            const int64_t* s = a.mask_strides;
            ok = ok && a.mask[b * s[0] + h * s[1] + i * s[2] + j * s[3]];
          }
          seen[size_t(j)] = ok;
          if (!ok) continue;
          double dot = 0;
          for (int64_t c = 0; c < a.d; ++c)
            dot += qv[size_t(((b * a.H + h) * a.Tq + i) * a.d + c)] * kv[size_t(((b * a.Hk + hk) * a.Tk + j) * a.d + c)];
          double l = a.scale * dot;
          if (!bv.empty())
            l += bv[size_t((((a.bias_per_batch ? b * a.H : 0) + h) * a.Tq + i) * a.Tk + j)];
          logit[size_t(j)] = l;
          top = std::max(top, l);
        }
        if (top == -std::numeric_limits<double>::infinity()) continue;  // sees nothing: zeros
        double* row = out + ((b * a.H + h) * a.Tq + i) * a.Tk;
        double sum = 0;
        for (int64_t j = 0; j < a.Tk; ++j)
          if (seen[size_t(j)]) sum += row[j] = std::exp(logit[size_t(j)] - top);
        for (int64_t j = 0; j < a.Tk; ++j) row[j] /= sum;
      }
    }
  calls.push_back(p);
}

std::vector<Tensor> AttentionRecorder::take() {
  std::vector<Tensor> out;
  out.swap(calls);
  return out;
}

}  // namespace mnemo
