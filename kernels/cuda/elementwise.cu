// Elementwise, strided, indexing and optimizer kernels: one thread per element (grid-stride),
// the math of each element in kernels/cuda/math.h. Sums that many threads feed (sum_to,
// scatter_add, the whole-tensor checks) use atomics.
#include "common/random_hash.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/math.h"
#include "kernels/cuda/runtime.h"

namespace mnemo::kernels::cuda {

void fill(float* y, int64_t n, float value) {
  for_each_index("fill", n, [=] __device__(int64_t i) { y[i] = value; });
}

void axpy(float* y, const float* x, int64_t n, float alpha) {
  for_each_index("axpy", n, [=] __device__(int64_t i) { y[i] += alpha * x[i]; });
}

namespace {

// The count of count_non_finite, which the host reads back.
struct Scalars {
  unsigned long long count;
};

Scalars* scratch() {
  static Scalars* s = static_cast<Scalars*>(device_alloc(sizeof(Scalars)));
  return s;
}

}  // namespace

void sum_squares(double* out, const float* x, int64_t n) {
  memset_device(out, 0, sizeof(double));
  for_each_index("sum_squares", n, [=] __device__(int64_t i) {
    const double v = double(x[i]);
    atomicAdd(out, v * v);
  });
}

int64_t count_non_finite(const float* x, int64_t n) {
  Scalars* s = scratch();
  memset_device(s, 0, sizeof(Scalars));
  for_each_index("count_non_finite", n, [=] __device__(int64_t i) {
    if (!isfinite(x[i])) atomicAdd(&s->count, 1ull);
  });
  Scalars host{};
  copy_to_host(&host, s, sizeof host);
  return int64_t(host.count);
}

void dropout(float* y, const float* x, int64_t n, float p, uint64_t seed) {
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for_each_index("dropout", n,
                 [=] __device__(int64_t i) { y[i] = uniform01(seed, uint64_t(i)) >= double(p) ? x[i] * scale : 0.0f; });
}

void unary_forward(Unary op, float* y, const float* x, int64_t n, float alpha, float beta) {
  for_each_index("unary_forward", n, [=] __device__(int64_t i) { y[i] = unary_apply(op, x[i], alpha, beta); });
}

void unary_backward(Unary op, float* dx, const float* dy, const float* x, const float* y, int64_t n, float alpha,
                    float /*beta*/) {
  const bool from_y = unary_reads_y(op);  // the other pointer may be null
  for_each_index("unary_backward", n, [=] __device__(int64_t i) {
    const float xi = from_y ? 0.0f : x ? x[i] : 0.0f, yi = from_y ? y[i] : 0.0f;
    dx[i] = dy[i] * unary_derivative(op, xi, yi, alpha);
  });
}

void geglu_forward(float* y, const float* x, int64_t rows, int64_t I, bool activate_first) {
  for_each_index("geglu_forward", rows * I, [=] __device__(int64_t e) {
    const int64_t r = e / I, j = e % I;
    y[e] = geglu_value(x[r * 2 * I + j], x[r * 2 * I + I + j], activate_first);
  });
}

void geglu_backward(float* dx, const float* dy, const float* x, int64_t rows, int64_t I, bool activate_first) {
  for_each_index("geglu_backward", rows * I, [=] __device__(int64_t e) {
    const int64_t first = e / I * 2 * I + e % I, second = first + I;
    geglu_grads(dy[e], x[first], x[second], activate_first, dx[first], dx[second]);
  });
}

void nbrc_forward(float* out, const float* ga, const float* gc, const float* gu, const float* h, int64_t n) {
  for_each_index("nbrc_forward", n, [=] __device__(int64_t i) { out[i] = nbrc_value(ga[i], gc[i], gu[i], h[i]); });
}

void nbrc_backward(float* dga, float* dgc, float* dgu, float* dh, const float* dout, const float* ga, const float* gc,
                   const float* gu, const float* h, int64_t n) {
  for_each_index("nbrc_backward", n, [=] __device__(int64_t i) {
    nbrc_grads(dout[i], ga[i], gc[i], gu[i], h[i], dga[i], dgc[i], dgu[i], dh[i]);
  });
}

void binary(Binary op, float* out, const float* a, const float* b, const Strided& s) {
  for_each_index("binary", strided_count(s), [=] __device__(int64_t i) {
    int64_t off[3];
    strided_offsets(s, i, off);
    const float x = a[off[1]], y = b[off[2]];
    out[i] = op == Binary::add ? x + y : op == Binary::sub ? x - y : op == Binary::mul ? x * y : x / y;
  });
}

void where(float* out, const uint8_t* cond, const float* a, const float* b, const Strided& s) {
  for_each_index("where", strided_count(s), [=] __device__(int64_t i) {
    int64_t off[3];
    strided_offsets(s, i, off);
    out[i] = cond[off[0]] ? a[off[1]] : b[off[2]];
  });
}

void strided_copy(float* out, const float* in, const Strided& s) {
  for_each_index("strided_copy", strided_count(s), [=] __device__(int64_t i) {
    int64_t off[3];
    strided_offsets(s, i, off);
    out[i] = in[off[0]];
  });
}

// Several input elements land on one output element (its stride is 0 on the summed dims):
// the outputs the walk reaches are zeroed, then every input element adds into its own.
void sum_to(float* out, const float* in, const Strided& s) {
  const int64_t n = strided_count(s);
  for_each_index("sum_to", n, [=] __device__(int64_t i) {
    int64_t off[3];
    strided_offsets(s, i, off);
    out[off[0]] = 0.0f;
  });
  for_each_index("sum_to", n, [=] __device__(int64_t i) {
    int64_t off[3];
    strided_offsets(s, i, off);
    atomicAdd(out + off[0], in[off[1]]);
  });
}

// One thread per (outer, inner) column: consecutive threads read consecutive addresses.
void reduce(Reduce op, float* y, const float* x, int64_t outer, int64_t n, int64_t inner) {
  for_each_index("reduce", outer * inner, [=] __device__(int64_t e) {
    const int64_t o = e / inner, c = e % inner;
    double sum = 0;  // in double, as the reference
    float max = kNegInf;
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[(o * n + i) * inner + c];
      sum += double(v);
      max = v > max ? v : max;
    }
    y[e] = op == Reduce::sum ? float(sum) : max;
  });
}

void reduce_max_backward(float* dx, const float* dy, const float* x, const float* y, int64_t outer, int64_t n,
                         int64_t inner) {
  for_each_index("reduce_max_backward", outer * inner, [=] __device__(int64_t e) {
    const int64_t o = e / inner, c = e % inner;
    bool found = false;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = (o * n + i) * inner + c;
      const bool first = !found && x[at] == y[e];
      found = found || first;
      dx[at] = first ? dy[e] : 0.0f;
    }
  });
}

void cumsum(float* y, const float* x, int64_t outer, int64_t n, int64_t inner, bool reverse) {
  for_each_index("cumsum", outer * inner, [=] __device__(int64_t e) {
    const int64_t o = e / inner, c = e % inner;
    float acc = 0.0f;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t i = reverse ? n - 1 - t : t, at = (o * n + i) * inner + c;
      acc += x[at];
      y[at] = acc;
    }
  });
}

void copy_axis(float* dst, const float* src, const AxisCopy& d) {
  for_each_index("copy_axis", d.outer * d.len * d.inner, [=] __device__(int64_t e) {
    const int64_t o = e / (d.len * d.inner), i = e / d.inner % d.len, c = e % d.inner;
    const float v = src[(o * d.src_n + d.src_off + i) * d.inner + c];
    float& out = dst[(o * d.dst_n + d.dst_off + i) * d.inner + c];
    out = d.accumulate ? out + v : v;
  });
}

void gather(float* out, const float* x, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx,
            int64_t inner) {
  for_each_index("gather", outer * n_idx * inner, [=] __device__(int64_t e) {
    const int64_t o = e / (n_idx * inner), i = e / inner % n_idx, c = e % inner;
    out[e] = idx[i] < 0 ? 0.0f : x[(o * n_src + idx[i]) * inner + c];
  });
}

void scatter_add(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx,
                 int64_t inner) {
  for_each_index("scatter_add", outer * n_idx * inner, [=] __device__(int64_t e) {
    const int64_t o = e / (n_idx * inner), i = e / inner % n_idx, c = e % inner;
    if (idx[i] >= 0) atomicAdd(dx + (o * n_src + idx[i]) * inner + c, dy[e]);
  });
}

void adamw_step(float* w, const float* g, float* m, float* v, int64_t n, const AdamWHyper& h) {
  const AdamWHyper hv = h;
  for_each_index("adamw_step", n, [=] __device__(int64_t i) { adamw_element(w[i], g[i], m[i], v[i], hv); });
}

void sgd_step(float* w, const float* g, float* buf, int64_t n, const SgdHyper& h) {
  const SgdHyper hv = h;
  for_each_index("sgd_step", n, [=] __device__(int64_t i) { sgd_element(w[i], g[i], buf ? buf + i : nullptr, hv); });
}

}  // namespace mnemo::kernels::cuda
