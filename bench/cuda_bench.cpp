// `mnemo bench cuda`: the CUDA backend's kernels on the GPU, timed between stream
// synchronisations: GEMM at 8192^3 in each matmul precision (the machine's rate), then the
// fused attention forward and backward at the medium configuration's shape (8 heads of 64,
// segments of 512, causal) for batches 4 and 32. Prints TFLOP/s and peak device memory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "bench/bench.h"
#include "kernels/kernels.h"
#include "mnemo_config.h"
#if MNEMO_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace mnemo::bench {

#if MNEMO_WITH_CUDA
namespace {

namespace cu = kernels::cuda;

// Median seconds of `reps` runs of f, each between two synchronisations, after one warm-up.
template <class F>
double seconds(int reps, F&& f) {
  f();
  cu::synchronize();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    cu::synchronize();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

float* device_floats(int64_t n, float value) {
  auto* p = static_cast<float*>(cu::device_alloc(size_t(n) * sizeof(float)));
  kernels::fill.get(kernels::Backend::cuda)(p, n, value);
  return p;
}

}  // namespace

int run_cuda_bench() {
  kernels::init();
  if (!cu::device_available()) {
    std::printf("bench cuda: no CUDA device (%s)\n", cu::device_description().c_str());
    return 77;
  }
  std::printf("device: %s\n", cu::device_description().c_str());
  const int64_t n = 8192;
  float *a = device_floats(n * n, 0.01f), *b = device_floats(n * n, 0.02f), *c = device_floats(n * n, 0.0f);
  kernels::GemmDesc g;
  g.M = g.N = g.K = n, g.lda = g.ldb = g.ldc = n;
  for (const char* p : {"f32", "tf32", "bf16"}) {
    cu::set_matmul_precision(cu::parse_matmul_precision(p));
    const double s = seconds(5, [&] { kernels::gemm.get(kernels::Backend::cuda)(g, a, b, c); });
    std::printf("gemm %5s 8192^3: %8.3f ms  %7.1f TFLOP/s\n", p, s * 1e3, 2.0 * n * n * n / s / 1e12);
  }
  for (float* p : {a, b, c}) cu::device_free(p);
  cu::set_matmul_precision(cu::MatmulPrecision::f32);

  for (const int64_t B : {int64_t(4), int64_t(32)}) {
    kernels::AttentionDesc at;
    at.B = B, at.H = at.Hk = 8, at.Tq = at.Tk = 512, at.d = 64, at.scale = 0.125, at.causal = true;
    const int64_t nq = B * 8 * 512 * 64, rows = B * 8 * 512;
    float *q = device_floats(nq, 0.1f), *k = device_floats(nq, 0.2f), *v = device_floats(nq, 0.3f);
    float *o = device_floats(nq, 0), *lse = device_floats(rows, 0), *dout = device_floats(nq, 0.01f);
    float *dq = device_floats(nq, 0), *dk = device_floats(nq, 0), *dv = device_floats(nq, 0);
    cu::reset_device_peak();
    const double f =
        seconds(5, [&] { kernels::attention_forward.get(kernels::Backend::cuda)(at, o, lse, q, k, v, nullptr); });
    const double bw = seconds(5, [&] {
      kernels::attention_backward.get(kernels::Backend::cuda)(at, dq, dk, dv, nullptr, dout, q, k, v, nullptr, o, lse);
    });
    // causal: half the score matrix; forward 2 matmuls, backward 5 (as FlashAttention counts)
    const double pairs = double(B) * 8 * 512 * 513 / 2, fl_f = 4.0 * pairs * 64, fl_b = 10.0 * pairs * 64;
    std::printf(
        "attention B=%-2lld H=8 T=512 d=64 causal: forward %7.3f ms %6.1f TFLOP/s, backward %7.3f ms %6.1f TFLOP/s\n",
        (long long)B, f * 1e3, fl_f / f / 1e12, bw * 1e3, fl_b / bw / 1e12);
    for (float* p : {q, k, v, o, lse, dout, dq, dk, dv}) cu::device_free(p);
  }
  const auto st = cu::device_memory_stats();
  std::printf("device memory: peak live %.1f MiB, reserved %.1f MiB, cudaMalloc calls %llu\n",
              double(st.peak_live_bytes) / (1 << 20), double(st.peak_reserved_bytes) / (1 << 20),
              (unsigned long long)st.backing_allocs);
  return 0;
}
#else
int run_cuda_bench() {
  std::printf("bench cuda: this build has no CUDA backend (meson setup -Dcuda=enabled; docs/CUDA.md)\n");
  return 77;
}
#endif

}  // namespace mnemo::bench
