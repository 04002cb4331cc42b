// `mnemo bench kernels`: first this machine's own limits (raw oneDNN sgemm at 1024^3 and
// the transformer shapes, and copy bandwidth), then each kernel through mnemo's ops,
// dispatch included, as a rate and a fraction of those limits.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>
#include <omp.h>

#include "autograd/ops/ops.h"
#include "autograd/optim/adamw.h"
#include "bench/bench.h"
#include "bench/timing.h"
#include "kernels/memory.h"
#include "mnemo_config.h"
#if MNEMO_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/onednn/onednn.h"
#endif

namespace mnemo::bench {
namespace {

struct Gemm {
  const char* what;
  int64_t M, K, N;
};

// Transformer shapes at B*T = 4096 tokens, D = 512, FFN 2048, plus a small head-sized one.
const Gemm kShapes[] = {
    {"ffn up", 4096, 512, 2048}, {"ffn down", 4096, 2048, 512}, {"projection", 4096, 512, 512},
    {"square 1024", 1024, 1024, 1024}, {"small", 256, 64, 256},
};

std::string shape_str(const Gemm& g) {
  return std::to_string(g.M) + "x" + std::to_string(g.K) + "x" + std::to_string(g.N);
}

double flops(const Gemm& g) { return 2.0 * double(g.M) * double(g.N) * double(g.K); }

// The machine's own sgemm, outside mnemo: one oneDNN matmul primitive, made once.
double raw_sgemm_seconds(const Gemm& g) {
#if MNEMO_WITH_ONEDNN
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc a({g.M, g.K}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc b({g.K, g.N}, memory::data_type::f32, memory::format_tag::ba);  // W^T, as a Linear
  memory::desc c({g.M, g.N}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul prim(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), eng));
  Rng rng(1);
  Tensor A = Tensor::randn({g.M, g.K}, rng), B = Tensor::randn({g.N, g.K}, rng), C = Tensor::empty({g.M, g.N});
  memory ma(a, eng, A.raw()), mb(b, eng, B.raw()), mc(c, eng, C.raw());
  return median_seconds([&] {
    prim.execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    s.wait();
  });
#else
  (void)g;
  return 0;
#endif
}

// Weight gradients, dW = X^T dY with X stored (rows x M): the shapes of the small and medium
// bench configs' backward passes (MemXL small's FFN, MemXL medium's projections).
const Gemm kWeightGradients[] = {
    {"ffn small", 1024, 1024, 256}, {"proj small", 256, 1024, 256}, {"proj medium", 512, 2048, 512},
    {"xl proj small", 512, 2560, 256}, {"ffn medium", 2048, 2048, 512},
};

// mnemo's matmul op, dispatch included: x W^T as a Linear's forward, or X^T dY as its weight
// gradient (X stored rows x M).
double op_matmul_seconds(const Gemm& g, bool weight_gradient = false) {
  Rng rng(weight_gradient ? 4 : 2);
  const Tensor a = weight_gradient ? Tensor::randn({g.K, g.M}, rng) : Tensor::randn({g.M, g.K}, rng);
  const Tensor b = weight_gradient ? Tensor::randn({g.K, g.N}, rng) : Tensor::randn({g.N, g.K}, rng);
  const MatmulOpts opts{.trans_a = weight_gradient, .trans_b = !weight_gradient};
  return median_seconds([&] {
    Tape tape;
    Var y = matmul(tape.constant(a), tape.constant(b), opts);
  });
}

// mnemo's choice for a transposed left operand, then each way forced (kernels/onednn/onednn.h).
void bench_weight_gradients(const std::vector<double>& raw) {
  const double peak = *std::max_element(raw.begin(), raw.end());
  const auto rows = [&](const std::string& label) {
    for (const Gemm& g : kWeightGradients) {
      const double s = op_matmul_seconds(g, true), rate = flops(g) / s / 1e9;
      print_row({label + g.what, shape_str(g), s, rate, "GFLOP/s", rate / peak});
    }
  };
  rows("weight grad f32: ");
#if MNEMO_WITH_ONEDNN
  using kernels::onednn::TransposedA;
  for (const auto& [mode, name] : {std::pair{TransposedA::in_place, "in place"}, {TransposedA::copy, "copied"}}) {
    kernels::onednn::set_transposed_a(mode);
    rows(std::string("  A^T ") + name + ": ");
  }
  kernels::onednn::set_transposed_a(TransposedA::automatic);
#endif
}

// Seconds for a parallel memcpy that reads and writes `bytes` in all (bytes / 2 each way).
double copy_seconds(double bytes) {
  const size_t n = size_t(bytes / 2) / 64 * 64;
  Tensor a = Tensor::zeros({int64_t(n / 4)}), b = Tensor::zeros({int64_t(n / 4)});
  char* dst = static_cast<char*>(b.raw());
  const char* src = static_cast<const char*>(a.raw());
  return median_seconds([&] {
#pragma omp parallel
    {
      const size_t nt = size_t(omp_get_num_threads()), t = size_t(omp_get_thread_num());
      const size_t lo = n * t / nt / 64 * 64, hi = t + 1 == nt ? n : n * (t + 1) / nt / 64 * 64;
      std::memcpy(dst + lo, src + lo, hi - lo);
    }
  });
}

double copy_bandwidth() { return 512.0 * (1 << 20) / copy_seconds(512.0 * (1 << 20)); }

// Memory-bound kernels run on tensors well beyond the last-level cache (64 MB and up), so
// both they and the reference copy stream from DRAM; the copy is timed next to each kernel.
Row bandwidth_row(const std::string& name, const std::string& shape, double seconds, double bytes) {
  const double copy_bw = copy_bandwidth();
  return {name, shape, seconds, bytes / seconds / 1e9, "GB/s", bytes / seconds / copy_bw};
}

void bench_memory_bound() {
  Rng rng(3);
  const int64_t N = 32768, D = 512;
  const std::string nd = std::to_string(N) + "x" + std::to_string(D);
  {
    Tensor x = Tensor::randn({N, D}, rng), g = Tensor::full({D}, 1.0), b = Tensor::zeros({D});
    const double s = median_seconds([&] {
      Tape t;
      layer_norm(t.constant(x), t.constant(g), t.constant(b));
    });
    print_row(bandwidth_row("layer_norm forward", nd, s, 2.0 * double(N * D) * 4));
    const double sb = median_seconds([&] {
      Tape t;
      Var xi = t.input(x);
      const Var roots[] = {layer_norm(xi, t.constant(g), t.constant(b))};
      const Tensor seeds[] = {x};
      t.backward(roots, seeds);
    });
    // forward: read x, write y; backward: read x, dy, write dx
    print_row(bandwidth_row("layer_norm forward+backward", nd, sb, 5.0 * double(N * D) * 4));
    const double sr = median_seconds([&] {
      Tape t;
      Var xi = t.input(x);
      const Var roots[] = {rms_norm(xi, t.constant(g), 1e-6)};
      const Tensor seeds[] = {x};
      t.backward(roots, seeds);
    });
    print_row(bandwidth_row("rms_norm forward+backward", nd, sr, 5.0 * double(N * D) * 4));
  }
  {
    Tensor x = Tensor::randn({8192, 4096}, rng);
    const double s = median_seconds([&] {
      Tape t;
      Var xi = t.input(x);
      const Var roots[] = {gelu(xi)};
      const Tensor seeds[] = {x};
      t.backward(roots, seeds);
    });
    print_row(bandwidth_row("gelu forward+backward", "8192x4096", s, 5.0 * double(x.numel()) * 4));
    const double sg = median_seconds([&] {
      Tape t;
      Var xi = t.input(x);
      Var y = geglu(xi);
      const Var roots[] = {y};
      const Tensor seeds[] = {y.value()};
      t.backward(roots, seeds);
    });
    // forward reads x (2I) and writes y (I); backward reads x, dy and writes dx
    print_row(bandwidth_row("geglu forward+backward", "8192x4096 -> 2048", sg, 4.0 * double(x.numel()) * 4));
  }
  {
    Tensor x = Tensor::randn({4096, 8192}, rng);
    const double s = median_seconds([&] {
      Tape t;
      softmax(t.constant(x));
    });
    print_row(bandwidth_row("softmax forward", "4096x8192", s, 2.0 * double(x.numel()) * 4));
  }
  {
    const int64_t rows = 65536, V = 256;
    Tensor logits = Tensor::randn({rows, V}, rng);
    std::vector<int32_t> tv(static_cast<size_t>(rows));
    for (auto& v : tv) v = int32_t(rng.randint(V));
    Tensor targets = Tensor::from_ints({rows}, tv);
    const double s = median_seconds([&] {
      Tape t;
      Var l = cross_entropy(t.input(logits), targets);
      t.backward(l);
    });
    // forward reads the logits; backward reads them again and writes their gradient
    print_row(bandwidth_row("cross_entropy forward+backward", "65536x256", s, 3.0 * double(logits.numel()) * 4));
  }
  {
    const int64_t n = int64_t(1) << 24;
    Param p(Tensor::randn({n}, rng));
    p.grad = Tensor::randn({n}, rng);
    AdamW opt({{"w", &p}}, {.lr = 1e-4});
    const double s = median_seconds([&] { opt.step(); });
    // reads w, g, m, v; writes w, m, v
    print_row(bandwidth_row("adamw step", "16M params", s, 7.0 * double(n) * 4));
  }
}

// Attention at B=4, H=8, T=512, d=64, causal after 512 memory keys. FLOPs are counted as
// 4 B H T Tk d forward and twice that backward, masked keys included (the usual convention).
void bench_attention(double peak) {
  const int64_t B = 4, H = 8, T = 512, P = 512, Tk = T + P, d = 64;
  Rng rng(6);
  Tensor q = Tensor::randn({B, H, T, d}, rng), k = Tensor::randn({B, H, Tk, d}, rng), v = Tensor::randn({B, H, Tk, d}, rng);
  Tensor dy = Tensor::randn({B, H, T, d}, rng);
  const double fwd = 4.0 * double(B * H * T * Tk * d);
  const AttentionSpec spec{.prefix = P, .causal = true};
  const double sf = median_seconds([&] {
    Tape t;
    attention(t.constant(q), t.constant(k), t.constant(v), spec);
  });
  print_row({"attention forward", "4x8x512+512 mem, d64", sf, fwd / sf / 1e9, "GFLOP/s", fwd / sf / 1e9 / peak});
  const double sb = median_seconds([&] {
    Tape t;
    const Var roots[] = {attention(t.input(q), t.input(k), t.input(v), spec)};
    const Tensor seeds[] = {dy};
    t.backward(roots, seeds);
  });
  print_row({"attention forward+backward", "4x8x512+512 mem, d64", sb, 3 * fwd / sb / 1e9, "GFLOP/s",
             3 * fwd / sb / 1e9 / peak});
}

// A small training step repeated: after warm-up, every activation should come from the
// allocator's cache, so the count of fresh system allocations stays at zero.
void bench_allocator() {
  Rng rng(4);
  Param w1(Tensor::randn({1024, 512}, rng, DType::f32, 0.02)), w2(Tensor::randn({512, 1024}, rng, DType::f32, 0.02));
  Tensor x = Tensor::randn({2048, 512}, rng);
  AdamW opt({{"w1", &w1}, {"w2", &w2}}, {.lr = 1e-4});
  auto step = [&] {
    Tape t;
    Var h = gelu(matmul(t.constant(x), t.param(w1), {.trans_b = true}));
    Var y = matmul(h, t.param(w2), {.trans_b = true});
    t.backward(mean(square(y)));
    opt.step();
    opt.zero_grad();
  };
  for (int i = 0; i < 3; ++i) step();
  const auto before = kernels::memory_stats();
  const int steps = 10;
  const double s = median_seconds(step, steps, 0);
  const auto after = kernels::memory_stats();
  const uint64_t fresh = (after.allocations - before.allocations) - (after.cache_hits - before.cache_hits);
  std::printf("\nallocator: %llu allocations over %d+ steady-state steps, %llu of them fresh from the system "
              "(step median %.2f ms, %.1f MB live at peak)\n",
              static_cast<unsigned long long>(after.allocations - before.allocations), steps,
              static_cast<unsigned long long>(fresh), s * 1e3, double(after.peak_live_bytes) / 1e6);
}

}  // namespace

int run_kernels_bench(const KernelsBenchOptions& opts) {
  std::printf("mnemo bench kernels: %d OpenMP threads, oneDNN %s\n\n", omp_get_max_threads(),
              MNEMO_WITH_ONEDNN ? "on" : "off (reference backend)");
  // 1. The machine's limits.
  double peak = 0;
  std::printf("%-34s %-22s %12s\n", "raw oneDNN sgemm", "MxKxN", "GFLOP/s");
  std::vector<double> raw;
  for (const Gemm& g : kShapes) {
    const double s = raw_sgemm_seconds(g);
    raw.push_back(s > 0 ? flops(g) / s / 1e9 : 0);
    peak = std::max(peak, raw.back());
    std::printf("%-34s %-22s %12.1f\n", g.what, shape_str(g).c_str(), raw.back());
  }
  const double bw = copy_bandwidth();
  std::printf("%-34s %-22s %12.1f GB/s\n\n", "copy bandwidth (memcpy, r+w)", "512 MiB moved", bw / 1e9);
  std::printf("(memory-bound kernels: \"of peak\" is against a 512 MiB memcpy timed right after each kernel)\n");

  // 2. mnemo's matmul op vs the raw primitive at the same shape.
  print_header();
  for (size_t i = 0; i < std::size(kShapes); ++i) {
    const Gemm& g = kShapes[i];
    const double s = op_matmul_seconds(g);
    const double rate = flops(g) / s / 1e9;
    print_row({std::string("matmul op f32: ") + g.what, shape_str(g), s, rate, "GFLOP/s", raw[i] > 0 ? rate / raw[i] : 0});
  }
#if MNEMO_WITH_ONEDNN
  kernels::onednn::set_bf16_matmul(true);
  for (size_t i = 0; i < 2; ++i) {
    const Gemm& g = kShapes[i];
    const double s = op_matmul_seconds(g);
    const double rate = flops(g) / s / 1e9;
    print_row({std::string("matmul op bf16: ") + g.what, shape_str(g), s, rate, "x f32 raw", rate / raw[i]});
  }
  kernels::onednn::set_bf16_matmul(false);
#endif
  bench_weight_gradients(raw);
  bench_attention(peak);
  if (!opts.quick) bench_memory_bound();
  bench_allocator();
  return 0;
}

}  // namespace mnemo::bench
