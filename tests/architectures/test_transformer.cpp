// The two baselines: shapes and names, causality, the XL memory (fill-up, contents, influence
// on the next segment) against the plain transformer's independent segments, and a short
// training run through the BPTT trainer where the loss must drop for both.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "architectures/transformer.h"
#include "autograd/optim/adamw.h"
#include "experiments/bptt.h"
#include "tests/support/periodic_batch.h"
#include "tests/support/relative_term_paths.h"
#include "tests/support/tensor_compare.h"

using mnemo::test::max_abs_diff;

using namespace mnemo;
using namespace mnemo::arch;

namespace {

const TransformerConfig kCfg{.vocab = 11, .dim = 16, .depth = 2, .heads = 2, .seq_len = 4};

TransformerConfig xl_cfg(int64_t mem_len) {
  TransformerConfig c = kCfg;
  c.mem_len = mem_len;
  return c;
}

Tensor ids(int64_t B, int64_t T, const std::vector<int32_t>& v) { return Tensor::from_ints({B, T}, v); }

struct Run {
  std::vector<Tensor> logits;  // per segment, (B, T, V)
  Memory memory;               // leaving the last segment
};

// Evaluates segments in order, carrying the memory between tapes as the trainer does.
Run run(const SegmentModel& m, const std::vector<Tensor>& segments, Memory mem = {}) {
  if (mem.empty()) mem = m.initial_memory(segments.at(0).dim(0));
  Run r;
  for (const Tensor& x : segments) {
    Tape tape;
    SegmentOut o = m.forward(tape, x, constants(tape, mem));
    r.logits.push_back(o.logits.value());
    mem = values(o.memory);
  }
  r.memory = mem;
  return r;
}

// logits (B, T, V) at time steps [t0, t0 + n), as a flat vector
std::vector<double> steps(const Tensor& logits, int64_t t0, int64_t n) {
  std::vector<double> out;
  for (int64_t b = 0; b < logits.dim(0); ++b)
    for (int64_t t = t0; t < t0 + n; ++t)
      for (int64_t v = 0; v < logits.dim(2); ++v) out.push_back(logits.at({b, t, v}));
  return out;
}

bool has_name(nn::Module& m, const std::string& name) {
  for (auto& [n, p] : nn::named_params(m))
    if (n == name) return true;
  return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(transformer)

BOOST_AUTO_TEST_CASE(shapes_and_memory_fill_up) {
  nn::Init init(1);
  Transformer t(init, kCfg);
  BOOST_TEST(t.initial_memory(2).empty());
  const Tensor x = ids(2, 4, {1, 2, 3, 4, 5, 6, 7, 8});
  const Run rt = run(t, {x});
  BOOST_TEST(rt.logits[0].shape() == (Shape{2, 4, 11}));
  BOOST_TEST(rt.memory.empty());

  TransformerXL xl(init, xl_cfg(6));
  const Memory m0 = xl.initial_memory(2);
  BOOST_TEST(m0.size() == 2u);
  BOOST_TEST(m0.at("mem.1").shape() == (Shape{2, 0, 16}));
  // T = 4, mem_len = 6: 4, then 6, then stays at 6
  const int64_t expected[] = {4, 6, 6};
  Memory mem = m0;
  for (int64_t s = 0; s < 3; ++s) {
    const Run r = run(xl, {x}, mem);
    BOOST_TEST(r.logits[0].shape() == (Shape{2, 4, 11}));
    for (const char* name : {"mem.0", "mem.1"}) BOOST_TEST(r.memory.at(name).shape() == (Shape{2, expected[s], 16}));
    mem = r.memory;
  }
  // a shorter final segment is fine
  BOOST_TEST(run(xl, {ids(2, 2, {1, 2, 3, 4})}, mem).logits[0].shape() == (Shape{2, 2, 11}));
}

BOOST_AUTO_TEST_CASE(parameter_names) {
  nn::Init init(2);
  Transformer t(init, kCfg);
  for (const char* n : {"token_emb.weight", "pos_emb.emb.weight", "layers.0.attn_norm.weight", "layers.0.attn.to_q.weight",
                        "layers.0.attn.to_kv.weight", "layers.1.attn.to_out.weight", "layers.1.ff_norm.bias",
                        "layers.1.ff.w1.weight", "layers.1.ff.w2.bias", "norm.weight", "to_logits.weight"})
    BOOST_TEST(has_name(t, n), n);
  BOOST_TEST(!has_name(t, "layers.0.rel_pos.weight"));
  BOOST_TEST(nn::find_param(t, "to_logits.weight").value.shape() == (Shape{11, 16}));

  TransformerXL xl(init, xl_cfg(5));
  BOOST_TEST(!has_name(xl, "pos_emb.emb.weight"));  // XL has relative positions only
  BOOST_TEST(has_name(xl, "layers.1.attn.to_q.weight"));
  // R (H, T + mem_len, d)
  BOOST_TEST(nn::find_param(xl, "layers.1.rel_pos.weight").value.shape() == (Shape{2, 9, 8}));
}

BOOST_AUTO_TEST_CASE(causal_for_both_models) {
  nn::Init init(3);
  Transformer t(init, kCfg);
  TransformerXL xl(init, xl_cfg(5));
  // R starts at zero; make the relative path active so it is covered by the check too
  for (auto& [n, p] : nn::named_params(xl))
    if (n.find("rel_pos") != std::string::npos) p->value = Tensor::full(p->value.shape(), 0.3);
  const Tensor a = ids(1, 4, {1, 2, 3, 4}), b = ids(1, 4, {1, 2, 9, 0});  // differ from step 2 on
  const Tensor la = run(t, {a}).logits[0], lb = run(t, {b}).logits[0];
  BOOST_TEST(steps(la, 0, 2) == steps(lb, 0, 2));
  BOOST_TEST(max_abs_diff(la, lb) > 1e-4);  // later steps do change
  // XL with a filled memory (two segments of history)
  const Memory filled = run(xl, {ids(1, 4, {5, 6, 7, 8}), ids(1, 4, {9, 10, 1, 3})}).memory;
  BOOST_TEST(filled.at("mem.0").dim(1) == 5);
  const Tensor xa = run(xl, {a}, filled).logits[0], xb = run(xl, {b}, filled).logits[0];
  BOOST_TEST(steps(xa, 0, 2) == steps(xb, 0, 2));
  BOOST_TEST(max_abs_diff(xa, xb) > 1e-4);
}

BOOST_AUTO_TEST_CASE(xl_memory_holds_the_normalised_layer_inputs) {
  nn::Init init(4);
  TransformerXL xl(init, xl_cfg(6));
  const Tensor x1 = ids(1, 4, {1, 2, 3, 4}), x2 = ids(1, 4, {5, 6, 7, 8});
  const Memory m1 = run(xl, {x1}).memory, m2 = run(xl, {x2}, m1).memory;
  // layer 0's input is LN(E[x]): mem.0 after segment 1 is u(x1); after segment 2 it is
  // [u(x1) steps 2..3; u(x2) steps 0..3] (the oldest two evicted)
  Tape tape;
  const Tensor u1 = xl.layers[0].attn_norm(xl.token_emb(tape, x1)).value();  // (1, 4, D)
  const Tensor u2 = xl.layers[0].attn_norm(xl.token_emb(tape, x2)).value();  // (1, 4, D)
  BOOST_TEST(max_abs_diff(m1.at("mem.0"), u1) < 1e-6);
  BOOST_TEST(std::abs(m2.at("mem.0").at({0, 0, 3}) - u1.at({0, 2, 3})) < 1e-6);
  BOOST_TEST(std::abs(m2.at("mem.0").at({0, 5, 7}) - u2.at({0, 3, 7})) < 1e-6);
  // mem.1 holds layer 1's (different) input
  BOOST_TEST(max_abs_diff(m1.at("mem.1"), u1) > 1e-3);
}

BOOST_AUTO_TEST_CASE(history_matters_for_xl_only) {
  nn::Init init(5);
  Transformer t(init, kCfg);
  TransformerXL xl(init, xl_cfg(4));
  const Tensor h1 = ids(2, 4, {1, 2, 3, 4, 5, 6, 7, 8}), h2 = ids(2, 4, {9, 9, 0, 1, 2, 2, 3, 3});
  const Tensor x = ids(2, 4, {4, 3, 2, 1, 8, 7, 6, 5});
  // plain transformer: same tokens -> same logits in any segment, whatever came before
  const Tensor alone = run(t, {x}).logits[0];
  BOOST_TEST(max_abs_diff(run(t, {h1, x}).logits[1], alone) == 0.0);
  BOOST_TEST(max_abs_diff(run(t, {h2, h1, x}).logits[2], alone) == 0.0);
  // XL: a different history changes the current logits
  const Tensor after1 = run(xl, {h1, x}).logits[1], after2 = run(xl, {h2, x}).logits[1];
  BOOST_TEST(max_abs_diff(after1, after2) > 1e-4);
  BOOST_TEST(max_abs_diff(after1, run(xl, {x}).logits[0]) > 1e-4);
}

BOOST_AUTO_TEST_CASE(xl_relative_band_equals_dense_term) {
  // The relative term as a band (forward()'s path) against the dense gathered logits of before,
  // while the memory fills, once full, and on a partial segment.
  nn::Init init(41);
  TransformerXL m(init, xl_cfg(6));
  Rng rng(42);
  std::vector<std::string> tables;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    nn::RelativePositionTable& R = *m.layers[l].rel_pos;
    R.weight.value = Tensor::randn(R.weight.value.shape(), rng, DType::f32, 0.5);
    tables.push_back("layers." + std::to_string(l) + ".rel_pos.weight");
  }
  test::check_band_equals_dense(m, [&](bool dense) { m.dense_relative_term = dense; }, 2, {4, 4, 4, 3}, kCfg.vocab,
                                tables);
}

BOOST_AUTO_TEST_CASE(training_smoke_loss_drops) {
  // Each row repeats a random period-3 pattern, so past the first period every token is
  // predictable in context.
  const int64_t B = 4, S = 3, T = 8, V = 11;
  const auto make_data = [&](uint64_t seed) { return test::periodic_batch(seed, B, S, T, V); };
  TransformerConfig c{.vocab = V, .dim = 32, .depth = 2, .heads = 2, .seq_len = T};
  nn::Init i1(6), i2(6);
  Transformer t(i1, c);
  c.mem_len = T;
  TransformerXL xl(i2, c);
  for (SegmentModel* m : std::vector<SegmentModel*>{&t, &xl}) {
    AdamW opt(nn::named_params(*m), {.lr = 1e-2, .weight_decay = 0});
    // The trainer checks that memories keep their shape from segment to segment, so XL starts
    // from a full (zero) memory of mem_len here rather than the empty initial one, and carries
    // the memory from batch to batch like a stream.
    Memory mem = m->initial_memory(B);
    for (auto& [name, v] : mem) v = Tensor::zeros({B, T, c.dim});  // (B, mem_len, D)
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
      opt.zero_grad();
      const data::Batch batch = make_data(100 + uint64_t(step));
      const auto r = experiments::train_batch(*m, batch, mem, {.mode = experiments::BpttMode::truncated, .window = 1});
      opt.step();
      mem = r.memory;
      if (step == 0) first = r.loss;
      last = r.loss;
    }
    BOOST_TEST_MESSAGE((m == &t ? "transformer" : "transformer_xl") << " loss " << first << " -> " << last);
    BOOST_TEST(std::isfinite(last));
    BOOST_TEST(last < 0.6 * first);
  }
}

BOOST_AUTO_TEST_SUITE_END()
