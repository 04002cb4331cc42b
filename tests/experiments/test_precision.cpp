// train.precision: the key (its errors, its round trip, its refusal where bf16 cannot run),
// the matmul op in bf16 against exact products on odd shapes, forward and backward, within
// what rounding both operands to bf16 can cost, a weight's bf16 copy made once a batch and
// never stale, the attention op's bf16 tiles only inside a bf16 scope, and bf16 training
// tracking f32 training.
// Suites: precision (runs anywhere), precision_bf16 (SKIP where bf16 cannot run),
// precision_refused (meson runs it with ONEDNN_MAX_CPU_ISA=AVX2, standing in for a CPU
// without avx512_bf16).
#include <boost/test/unit_test.hpp>

#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "architectures/transformer.h"
#include "autograd/optim/adamw.h"
#include "autograd/ops/ops.h"
#include "data/streams.h"
#include "experiments/config.h"
#include "experiments/trainer.h"
#include "kernels/cpu/bf16_tile.h"
#include "kernels/kernels.h"
#include "kernels/precision.h"
#include "layers/init.h"
#include "tests/support/contains.h"
#include "tests/support/error_of.h"
#include "tests/support/temp_dir.h"
#include "tests/support/skip.h"

using namespace mnemo;
using mnemo::test::contains;
using namespace mnemo::experiments;
using mnemo::test::error_of;

namespace {

// Config files in a fresh folder, removed with it; each holds a tiny model and the given
// lines of the train block (its line 8 is the first of them).
struct Configs {
  test::TempDir tmp{"mnemo_precision"};
  int count = 0;
  std::string write(const std::string& train_lines) {
    const std::string path = tmp / ("c" + std::to_string(count++) + ".yaml");
    std::ofstream(path) << "model:\n  arch: transformer\n  dim: 16\n  depth: 1\n  heads: 2\ntrain:\n  steps: 3\n"
                        << train_lines;
    return path;
  }
};

// Restores the kernel switches a test changes, however it ends.
struct SwitchesBack {
  ~SwitchesBack() {
    kernels::set_force_reference(false);
    kernels::set_prefer_onednn(true);
    kernels::set_matmul_precision(kernels::MatmulPrecision::f32);
  }
};

// |a| |b| summed over k: how large each product's terms are, which bounds the rounding.
std::vector<double> abs_product(const std::vector<double>& a, const std::vector<double>& b, int64_t M, int64_t K,
                                int64_t N, bool ta, bool tb) {
  std::vector<double> out(size_t(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k)
        out[size_t(i * N + j)] += std::abs(a[size_t(ta ? k * M + i : i * K + k)]) * std::abs(b[size_t(tb ? j * K + k : k * N + j)]);
  return out;
}

// Worst |got - want| over the elements, alone and relative to |A| |B|.
struct Deviation {
  double worst_relative = 0, worst_absolute = 0;
};
Deviation deviation(const Tensor& got, const Tensor& want, const std::vector<double>& scale) {
  const auto g = got.to_vector(), w = want.to_vector();
  BOOST_REQUIRE(g.size() == w.size() && g.size() == scale.size());
  Deviation d;
  for (size_t i = 0; i < g.size(); ++i) {
    const double diff = std::abs(g[i] - w[i]);
    d.worst_absolute = std::max(d.worst_absolute, diff);
    if (scale[i] > 0) d.worst_relative = std::max(d.worst_relative, diff / scale[i]);
  }
  return d;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(precision)

BOOST_AUTO_TEST_CASE(f32_is_the_default_and_a_bad_name_is_refused_at_its_key) {
  Configs files;
  const ExperimentConfig plain = load_config(files.write(""));
  BOOST_TEST((plain.train.precision == Precision::f32));
  BOOST_TEST(contains(to_yaml(plain), "precision: f32"));
  const std::string path = files.write("  precision: fp16\n");
  const std::string err = error_of([&] { load_config(path); });
  BOOST_TEST(contains(err, path + ":8:"));
  BOOST_TEST(contains(err, "train.precision"));
  BOOST_TEST(contains(err, "fp16"));
  BOOST_TEST(contains(err, "bf16"));
}

BOOST_AUTO_TEST_CASE(bf16_is_refused_at_load_where_the_reference_backend_runs_floats) {
  Configs files;
  const SwitchesBack back;
  kernels::set_force_reference(true);
  const std::string path = files.write("  precision: bf16\n");
  const std::string err = error_of([&] { load_config(path); });
  BOOST_TEST(contains(err, path + ":8:"));
  BOOST_TEST(contains(err, "train.precision"));
  BOOST_TEST(contains(err, "MNEMO_BACKEND=reference"));
  const std::string set_err = error_of([&] { load_config(files.write(""), {"train.precision=bf16"}); });
  BOOST_TEST(contains(set_err, "train.precision"));
  BOOST_CHECK_THROW(kernels::set_matmul_precision(kernels::MatmulPrecision::bf16), std::runtime_error);
  BOOST_TEST((kernels::matmul_precision() == kernels::MatmulPrecision::f32));
  kernels::set_force_reference(false);
  kernels::set_prefer_onednn(false);  // MNEMO_BACKEND=cpu: oneDNN off, and with it bf16
  BOOST_TEST(contains(error_of([&] { load_config(path); }), kernels::onednn_built() ? "MNEMO_BACKEND=cpu" : "no oneDNN"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(precision_bf16)

BOOST_AUTO_TEST_CASE(bf16_is_read_from_the_file_and_from_set_and_written_back) {
  if (const std::string why = kernels::bf16_unavailable(); !why.empty()) test::skip_test(why);
  Configs files;
  const std::string path = files.write("  precision: bf16\n");
  const ExperimentConfig cfg = load_config(path);
  BOOST_TEST((cfg.train.precision == Precision::bf16));
  BOOST_TEST(contains(to_yaml(cfg), "precision: bf16"));
  const std::string again = files.write("");
  std::ofstream(again) << to_yaml(cfg);
  BOOST_TEST((load_config(again) == cfg));
  BOOST_TEST((load_config(files.write(""), {"train.precision=bf16"}).train.precision == Precision::bf16));
}

// Rounding both operands to bf16 (8 significant bits, unit roundoff u = 2^-8) costs each
// product at most 2u + u^2 of its size; accumulating K of them in f32 adds about K 2^-24.
// So |C_bf16 - C| <= (2u + u^2 + K 2^-23) (|A| |B|) element by element. The gradients are
// products too: dA = dC B^T sums over N, dB = A^T dC over M.
BOOST_AUTO_TEST_CASE(matmul_forward_and_backward_stay_within_bf16_rounding_on_odd_shapes) {
  if (const std::string why = kernels::bf16_unavailable(); !why.empty()) test::skip_test(why);
  const SwitchesBack back;
  struct Case {
    int64_t M, K, N;
    bool ta, tb;
  };
  const Case cases[] = {{1, 1, 1, false, false}, {3, 7, 5, false, false}, {17, 33, 65, false, true},
                        {65, 130, 31, true, false}, {33, 257, 17, true, true}, {130, 65, 129, false, false}};
  Rng rng(7);
  const double u = std::ldexp(1.0, -8);
  double worst_seen = 0;
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("M " << c.M << " K " << c.K << " N " << c.N << " trans " << c.ta << c.tb) {
      const Tensor a = Tensor::randn(c.ta ? Shape{c.K, c.M} : Shape{c.M, c.K}, rng);
      const Tensor b = Tensor::randn(c.tb ? Shape{c.N, c.K} : Shape{c.K, c.N}, rng);
      const Tensor dy = Tensor::randn({c.M, c.N}, rng);
      auto run = [&](DType t, kernels::MatmulPrecision p) {
        const kernels::MatmulPrecisionScope scope(p);
        Tape tape;
        Var va = tape.input(a.to(t)), vb = tape.input(b.to(t));
        Var y = matmul(va, vb, {.trans_a = c.ta, .trans_b = c.tb});
        const Tensor seed = dy.to(t);
        tape.backward(std::span<const Var>(&y, 1), std::span<const Tensor>(&seed, 1));
        return std::array<Tensor, 3>{y.value().to(DType::f64), tape.grad(va).to(DType::f64), tape.grad(vb).to(DType::f64)};
      };
      const auto exact = run(DType::f64, kernels::MatmulPrecision::f32);
      const auto bf16 = run(DType::f32, kernels::MatmulPrecision::bf16);
      const auto av = a.to(DType::f64).to_vector(), bv = b.to(DType::f64).to_vector(), dv = dy.to(DType::f64).to_vector();
      // dA has a's layout: (M, K) = dY B^T, or (K, M) = B dY^T with trans_a
      const std::vector<double> scale_y = abs_product(av, bv, c.M, c.K, c.N, c.ta, c.tb);
      const std::vector<double> scale_da = c.ta ? abs_product(bv, dv, c.K, c.N, c.M, c.tb, true)
                                                : abs_product(dv, bv, c.M, c.N, c.K, false, !c.tb);
      const std::vector<double> scale_db = c.tb ? abs_product(dv, av, c.N, c.M, c.K, true, c.ta)
                                                : abs_product(av, dv, c.K, c.M, c.N, !c.ta, false);
      const int64_t sums[3] = {c.K, c.N, c.M};
      const std::vector<double>* scales[3] = {&scale_y, &scale_da, &scale_db};
      const char* names[3] = {"y", "dA", "dB"};
      for (int i = 0; i < 3; ++i) {
        const double bound = 2 * u + u * u + double(sums[i]) * std::ldexp(1.0, -23);
        const Deviation d = deviation(bf16[size_t(i)], exact[size_t(i)], *scales[i]);
        BOOST_TEST_MESSAGE(names[i] << ": worst error " << d.worst_relative << " of |A||B| (bound " << bound << ")");
        BOOST_TEST(d.worst_relative <= bound, names[i] << " " << d.worst_relative << " > " << bound);
        worst_seen = std::max(worst_seen, d.worst_relative);
      }
    }
  }
  // Ran in bf16, not f32: f32 products of these sizes are within ~1e-6 of |A||B|.
  BOOST_TEST(worst_seen > 1e-4);
}

// A weight's bf16 copy is made once per layout for every product of a training batch
// (forward and backward, every segment's tape), and no product ever reads a copy older
// than the weight: a copy_from, an optimizer step, or a raw write between two batches.
BOOST_AUTO_TEST_CASE(weight_copies_are_made_once_per_batch_and_never_stale) {
  if (const std::string why = kernels::bf16_unavailable(); !why.empty()) test::skip_test(why);
  const SwitchesBack back;
  Rng rng(11);
  Param w(Tensor::randn({48, 40}, rng));  // (out, in), as a linear layer's: y = x W^T
  const Tensor x = Tensor::randn({33, 40}, rng), dy = Tensor::randn({33, 48}, rng);
  auto segment = [&] {  // y on a fresh tape, and dx (which reads W in its other layout)
    Tape tape;
    Var vx = tape.input(x);
    Var y = matmul(vx, tape.param(w), {.trans_b = true});
    tape.backward(std::span<const Var>(&y, 1), std::span<const Tensor>(&dy, 1));
    return std::array<Tensor, 2>{y.value(), tape.grad(vx)};
  };
  auto exact = [&] {  // x W^T in f64
    Tape tape;
    return matmul(tape.constant(x.to(DType::f64)), tape.constant(w.value.to(DType::f64)), {.trans_b = true}).value();
  };
  auto close = [&](const Tensor& got, const Tensor& want) {  // within bf16 rounding of |x| |W|^T (K = 40)
    const auto g = got.to_vector(), e = want.to_vector(), xa = x.to_vector(), wa = w.value.to_vector();
    double worst = 0;
    for (int64_t i = 0; i < 33; ++i)
      for (int64_t j = 0; j < 48; ++j) {
        double scale = 0;
        for (int64_t k = 0; k < 40; ++k) scale += std::abs(xa[size_t(i * 40 + k)] * wa[size_t(j * 40 + k)]);
        worst = std::max(worst, std::abs(g[size_t(i * 48 + j)] - e[size_t(i * 48 + j)]) / scale);
      }
    return worst <= 2 * std::ldexp(1.0, -8) + std::ldexp(1.0, -16) + 40 * std::ldexp(1.0, -23);
  };
  {
    const kernels::MatmulPrecisionScope batch(kernels::MatmulPrecision::bf16);
    const uint64_t before = kernels::bf16_weight_conversions();
    const auto first = segment();
    const auto second = segment();  // another segment of the batch: the copies are reused
    BOOST_TEST(kernels::bf16_weight_conversions() - before == 2u);  // W for y, W^T's layout for dx
    BOOST_TEST(close(first[0], exact()));
    BOOST_TEST(first[0].to_vector() == second[0].to_vector());
    BOOST_TEST(first[1].to_vector() == second[1].to_vector());

    w.value.copy_from(Tensor::randn({48, 40}, rng));  // a new weight inside the batch
    const auto third = segment();
    BOOST_TEST(kernels::bf16_weight_conversions() - before == 4u);
    BOOST_TEST(close(third[0], exact()));

    AdamW opt({{"w", &w}}, {.lr = 0.5, .weight_decay = 0.0});  // an update as large as the weights
    opt.step();
    BOOST_TEST(close(segment()[0], exact()));
    BOOST_TEST(kernels::bf16_weight_conversions() - before == 6u);
  }
  w.value.data<float>()[0] += 8.0f;  // a raw write, between batches: the next batch converts afresh
  const kernels::MatmulPrecisionScope next(kernels::MatmulPrecision::bf16);
  BOOST_TEST(close(segment()[0], exact()));
}

// The attention op's tile products follow the GEMM precision: bf16 inside a bf16 scope
// (close to f32, not equal), bit for bit the f32 kernel outside it, before and after.
BOOST_AUTO_TEST_CASE(attention_runs_bf16_tiles_only_inside_a_bf16_scope) {
  if (const std::string why = kernels::bf16_unavailable(); !why.empty()) test::skip_test(why);
  const SwitchesBack back;
  Rng rng(12);
  const Tensor q = Tensor::randn({2, 3, 70, 24}, rng), k = Tensor::randn({2, 3, 90, 24}, rng),
               v = Tensor::randn({2, 3, 90, 24}, rng), dy = Tensor::randn({2, 3, 70, 24}, rng);
  auto run = [&] {
    Tape tape;
    Var vq = tape.input(q), vk = tape.input(k), vv = tape.input(v);
    Var o = attention(vq, vk, vv, {.prefix = 20, .causal = true});
    tape.backward(std::span<const Var>(&o, 1), std::span<const Tensor>(&dy, 1));
    return std::array<std::vector<double>, 4>{o.value().to_vector(), tape.grad(vq).to_vector(),
                                              tape.grad(vk).to_vector(), tape.grad(vv).to_vector()};
  };
  const auto f32 = run();
  std::array<std::vector<double>, 4> bf16;
  {
    const kernels::MatmulPrecisionScope scope(kernels::MatmulPrecision::bf16);
    bf16 = run();
  }
  const auto after = run();
  for (size_t t = 0; t < 4; ++t) {
    BOOST_TEST(f32[t] == after[t]);  // f32 untouched by the bf16 scope before it
    double worst = 0, scale = 0;
    for (size_t i = 0; i < f32[t].size(); ++i) {
      worst = std::max(worst, std::abs(bf16[t][i] - f32[t][i]));
      scale = std::max(scale, std::abs(f32[t][i]));
    }
    BOOST_TEST_MESSAGE("attention output/grad " << t << ": bf16 max diff " << worst << " of " << scale);
    BOOST_TEST(worst < 0.03 * scale);
    if (kernels::cpu::bf16_tiles_supported()) BOOST_TEST(worst > 0.0);  // it really ran bf16 tiles
  }
}

// The same tiny transformer, seed and batches, trained 60 steps in f32 and in bf16: the
// bf16 curve stays within 2% (+ 0.02 nats) of the f32 one at every step, and both learn.
BOOST_AUTO_TEST_CASE(bf16_training_tracks_f32_training) {
  if (const std::string why = kernels::bf16_unavailable(); !why.empty()) test::skip_test(why);
  const SwitchesBack back;
  auto bytes = std::make_shared<std::vector<uint8_t>>();
  const std::string text = "It is a truth universally acknowledged, that a single man in possession of a good "
                           "fortune, must be in want of a wife. However little known the feelings or views of such a "
                           "man may be on his first entering a neighbourhood, this truth is so well fixed. ";
  for (int rep = 0; rep < 40; ++rep) bytes->insert(bytes->end(), text.begin(), text.end());
  data::ByteSpan span{.bytes = bytes, .begin = 0, .size = int64_t(bytes->size()), .name = "pride"};
  auto curve = [&](bool bf16) {
    nn::Init init(3);
    arch::Transformer model(init, {.vocab = 256, .dim = 64, .depth = 2, .heads = 4, .seq_len = 32, .ff_mult = 4});
    data::ContiguousStreams streams(span, {.batch = 4, .segments = 1, .seg_len = 32});
    AdamW opt(nn::named_params(model), {.lr = 3e-3, .weight_decay = 0.0});
    Trainer trainer(model, streams, opt, {.bptt = {.bf16 = bf16}, .clip = 1.0, .seed = 5});
    std::vector<double> losses;
    for (int i = 0; i < 60; ++i) losses.push_back(trainer.step().loss);
    BOOST_TEST((kernels::matmul_precision() == kernels::MatmulPrecision::f32));  // the step's scope ended
    return losses;
  };
  const std::vector<double> f32 = curve(false), bf16 = curve(true);
  double worst = 0;
  bool differ = false;
  for (size_t i = 0; i < f32.size(); ++i) {
    const double gap = std::abs(bf16[i] - f32[i]);
    worst = std::max(worst, gap / f32[i]);
    differ = differ || gap > 0;
    BOOST_TEST(gap <= 0.02 * f32[i] + 0.02, "step " << i + 1 << ": f32 " << f32[i] << ", bf16 " << bf16[i]);
  }
  BOOST_TEST_MESSAGE("loss f32 " << f32.front() << " -> " << f32.back() << ", bf16 " << bf16.front() << " -> "
                                 << bf16.back() << "; worst relative gap " << worst);
  BOOST_TEST(f32.back() < 0.6 * f32.front());
  BOOST_TEST(bf16.back() < 0.6 * bf16.front());
  BOOST_TEST(differ);  // the bf16 run really ran bf16 GEMMs
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(precision_refused)

BOOST_AUTO_TEST_CASE(bf16_is_refused_at_load_on_a_cpu_without_avx512_bf16) {
  if (!std::getenv("ONEDNN_MAX_CPU_ISA"))
    test::skip_test("ONEDNN_MAX_CPU_ISA is not set (meson's precision_refused test sets it to AVX2)");
  Configs files;
  const std::string path = files.write("  precision: bf16\n");
  const std::string err = error_of([&] { load_config(path); });
  BOOST_TEST(contains(err, path + ":8:"));
  BOOST_TEST(contains(err, "train.precision"));
  BOOST_TEST(contains(err, kernels::onednn_built() ? "avx512_bf16" : "no oneDNN"));
  BOOST_CHECK_THROW(kernels::set_matmul_precision(kernels::MatmulPrecision::bf16), std::runtime_error);
  BOOST_TEST((load_config(files.write("  precision: f32\n")).train.precision == Precision::f32));
}

BOOST_AUTO_TEST_SUITE_END()
