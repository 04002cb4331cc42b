// Compressive Transformer: memory bookkeeping over many segments (FIFO and compressed lengths
// and contents), the gradient routing of the reconstruction loss (P1), relative rows by distance
// (P2), enhanced recurrence (P5), final norm and gate bias (P6, P7), options and config errors,
// the whole-model gradient check, a short training run, and (suite compressive_parity) the
// reference fixture ct_a: logits and memories of 3 segments, loss and gradients of segment 0.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "architectures/compressive.h"
#include "architectures/transformer.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/optim/adamw.h"
#include "experiments/bptt.h"
#include "experiments/models.h"
#include "tests/support/periodic_batch.h"
#include "tests/support/relative_term_paths.h"
#include "tests/support/tensor_compare.h"

using mnemo::test::max_abs_diff;
using mnemo::test::max_abs;

using namespace mnemo;
using namespace mnemo::arch;

namespace {

CompressiveConfig small_cfg() {
  CompressiveConfig c{.vocab = 13, .dim = 8, .depth = 2, .heads = 2, .seq_len = 4};
  c.mem_len = 6, c.cmem_ratio = 3, c.cmem_len = 3;  // mem_len not a multiple of T: evictions of 2, then 4
  return c;
}

Tensor random_tokens(int64_t B, int64_t T, int32_t V, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(size_t(B * T));
  for (auto& x : v) x = int32_t(rng.randint(V));
  return Tensor::from_ints({B, T}, v);
}

// One segment on its own tape, memory as data; returns the memory after it.
Memory step(const CompressiveTransformer& m, const Tensor& x, const Memory& mem) {
  Tape tape;
  Tape::NoRecord nr(tape);
  return values(m.forward(tape, x, constants(tape, mem)).memory);
}

// x[:, :, start:start+len] of a (k, B, L, D) memory, or of (B, L, D) along axis 1.
Tensor time_slice(const Tensor& t, int axis, int64_t start, int64_t len) {
  Tape tape;
  Tape::NoRecord nr(tape);
  return slice(tape.constant(t), axis, start, len).value().clone();
}

double grad_abs(const Param& p) { return p.grad.defined() ? max_abs(p.grad) : 0.0; }

void zero_grads(nn::Module& m) {
  for (Param* p : nn::params(m)) p->grad = Tensor();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(compressive)

BOOST_AUTO_TEST_CASE(fifo_and_compression_lengths_over_many_segments) {
  // T = 4, mem_len = 6, c = 3, cmem_len = 3. FIFO lengths 4, 6, 6, ...; evictions 0, 2, 4, 4, ...
  // Compressed slots per eviction: ceil(e / c) = 1, 2, 2 (the intended padding); the reference's
  // padding (P3) gives floor((e + e mod c) / c) = 1, 1, 1.
  for (bool parity : {false, true}) {
    CompressiveConfig c = small_cfg();
    c.enhanced_recurrence = false;  // each layer reads its own memory: contents are checkable
    c.reference_parity = parity;
    nn::Init init(3);
    CompressiveTransformer m(init, c);
    nn::eval(m);
    Memory mem = m.initial_memory(2);
    BOOST_TEST(mem.at("mem").shape() == Shape({2, 2, 0, 8}));
    BOOST_TEST(mem.at("cmem").shape() == Shape({2, 2, 0, 8}));
    const std::vector<int64_t> mem_len{4, 6, 6, 6, 6, 6, 6, 6};
    const std::vector<int64_t> cmem_len = parity ? std::vector<int64_t>{0, 1, 2, 3, 3, 3, 3, 3}
                                                 : std::vector<int64_t>{0, 1, 3, 3, 3, 3, 3, 3};
    for (int s = 0; s < 8; ++s) {
      // A partial segment in between leaves the memories as they were.
      const Memory after_partial = step(m, random_tokens(2, 3, 13, 500 + s), mem);
      if (!parity) {
        BOOST_TEST(max_abs_diff(after_partial.at("mem"), mem.at("mem")) == 0.0);
        BOOST_TEST(max_abs_diff(after_partial.at("cmem"), mem.at("cmem")) == 0.0);
      }
      const Memory next = step(m, random_tokens(2, 4, 13, 100 + s), mem);
      BOOST_TEST_INFO("parity " << parity << " segment " << s);
      BOOST_TEST(next.at("mem").dim(2) == mem_len[size_t(s)]);
      BOOST_TEST(next.at("cmem").dim(2) == cmem_len[size_t(s)]);
      const int64_t Lm = mem.at("mem").dim(2), e = std::max<int64_t>(Lm + 4 - 6, 0);
      // FIFO: the slots that stay move to the front, older first
      if (Lm > 0) {
        const int64_t stay = Lm - e;
        BOOST_TEST(max_abs_diff(time_slice(next.at("mem"), 2, 0, stay), time_slice(mem.at("mem"), 2, e, stay)) == 0.0);
      }
      // compression: the newest compressed slots are the conv of each layer's evicted slots
      if (e > 0) {
        const int64_t added = parity ? (e + e % 3) / 3 : (e + 2) / 3;
        const int64_t Lc = next.at("cmem").dim(2);
        for (int64_t l = 0; l < 2; ++l) {
          Tape tape;
          Tape::NoRecord nr(tape);
          Tensor evicted = time_slice(time_slice(mem.at("mem"), 0, l, 1), 2, 0, e);
          evicted = evicted.reshape({2, e, 8});
          const Tensor expect = m.attn_layers[size_t(l)].compress(tape.constant(evicted)).value();
          const Tensor got = time_slice(time_slice(next.at("cmem"), 0, l, 1), 2, Lc - added, added).reshape({2, added, 8});
          BOOST_TEST(max_abs_diff(got, expect) < 1e-6);
        }
      }
      mem = next;
    }
  }
}

BOOST_AUTO_TEST_CASE(compressor_trained_by_the_aux_loss_only_and_to_kv_keeps_training) {
  // P1 regression: the reference freezes to_kv from the first compression on. Here the
  // reconstruction loss reaches the conv and nothing else, the task loss never reaches the
  // conv, and to_kv keeps its task-loss gradient on every segment after compression starts.
  CompressiveConfig c = small_cfg();
  c.mem_len = 4;  // = T: every segment from the second on evicts 4 slots
  nn::Init init(5);
  CompressiveTransformer m(init, c);
  nn::train(m);
  Memory mem = step(m, random_tokens(2, 4, 13, 1), m.initial_memory(2));  // fills the FIFO
  for (int s = 1; s <= 3; ++s) {
    const Tensor x = random_tokens(2, 4, 13, 10 + s), y = random_tokens(2, 4, 13, 20 + s);
    // task loss alone
    zero_grads(m);
    {
      Tape tape;
      SegmentOut o = m.forward(tape, x, constants(tape, mem));
      BOOST_REQUIRE(o.aux_loss.defined());  // this segment compressed something
      tape.backward(cross_entropy(o.logits, y));
      mem = values(o.memory);
    }
    for (const GatedAttention& a : m.attn_layers) {
      BOOST_TEST(grad_abs(a.compress.weight) == 0.0);
      BOOST_TEST(grad_abs(a.compress.bias) == 0.0);
      BOOST_TEST(grad_abs(a.attn.to_kv.weight) > 0.0);  // still training after compression started
    }
    // reconstruction loss alone: only the compressors
    zero_grads(m);
    {
      Tape tape;
      SegmentOut o = m.forward(tape, x, constants(tape, step(m, x, mem)));
      BOOST_TEST(o.aux_loss.value().item() > 0.0);
      tape.backward(o.aux_loss);
    }
    for (auto& [name, p] : nn::named_params(m)) {
      const bool conv = name.find("compress_mem_fn") != std::string::npos;
      BOOST_TEST_INFO(name);
      BOOST_TEST((grad_abs(*p) > 0.0) == conv);
    }
  }
  // One tape over two segments: the compressed memory made in the first carries no task
  // gradient from the second back to the conv.
  zero_grads(m);
  {
    Tape tape;
    SegmentOut o1 = m.forward(tape, random_tokens(2, 4, 13, 40), constants(tape, mem));
    SegmentOut o2 = m.forward(tape, random_tokens(2, 4, 13, 41), o1.memory);
    tape.backward(cross_entropy(o2.logits, random_tokens(2, 4, 13, 42)));
  }
  for (const GatedAttention& a : m.attn_layers) {
    BOOST_TEST(grad_abs(a.compress.weight) == 0.0);
    BOOST_TEST(grad_abs(a.attn.to_q.weight) > 0.0);
  }
}

BOOST_AUTO_TEST_CASE(compressor_task_grad_lets_the_task_loss_reach_the_compressor) {
  // The paper's stop-gradient (above) against the ablation: with compressor_task_grad the task
  // loss of a later segment reaches the conv through the compressed slots (the test above has
  // the same two-segment tape without the option, and no gradient there); refused with parity.
  CompressiveConfig c = small_cfg();
  c.mem_len = 4;
  c.enhanced_recurrence = false;  // each layer reads its own compressed memory
  c.compressor_task_grad = true;
  nn::Init init(5);
  CompressiveTransformer m(init, c);
  nn::train(m);
  const Memory mem = step(m, random_tokens(2, 4, 13, 1), m.initial_memory(2));
  zero_grads(m);
  Tape tape;
  SegmentOut o1 = m.forward(tape, random_tokens(2, 4, 13, 40), constants(tape, mem));  // compresses
  SegmentOut o2 = m.forward(tape, random_tokens(2, 4, 13, 41), o1.memory);           // reads cmem
  tape.backward(cross_entropy(o2.logits, random_tokens(2, 4, 13, 42)));
  for (const GatedAttention& a : m.attn_layers) {
    BOOST_TEST(grad_abs(a.compress.weight) > 0.0);
    BOOST_TEST(grad_abs(a.compress.bias) > 0.0);
  }
  c.reference_parity = true;
  try {
    CompressiveTransformer bad(init, c);
    BOOST_FAIL("compressor_task_grad with reference_parity was accepted");
  } catch (const arch::OptionError& e) {
    BOOST_TEST(e.key() == "compressor_task_grad");
  }
}

BOOST_AUTO_TEST_CASE(aux_loss_is_weighted_and_only_while_training) {
  CompressiveConfig c = small_cfg();
  c.mem_len = 4;
  nn::Init i1(8), i2(8);
  CompressiveTransformer m(i1, c);
  c.reconstruction_loss_weight = 0.25;
  CompressiveTransformer w(i2, c);
  const Tensor x0 = random_tokens(2, 4, 13, 1), x1 = random_tokens(2, 4, 13, 2);
  const Memory mem = step(m, x0, m.initial_memory(2));
  Tape tape;
  SegmentOut a = m.forward(tape, x0, constants(tape, m.initial_memory(2)));
  BOOST_TEST(!a.aux_loss.defined());  // nothing compressed on the first segment
  SegmentOut full = m.forward(tape, x1, constants(tape, mem));
  SegmentOut quarter = w.forward(tape, x1, constants(tape, mem));
  BOOST_TEST(quarter.aux_loss.value().item() == 0.25 * full.aux_loss.value().item(), boost::test_tools::tolerance(1e-6));
  nn::eval(m);
  BOOST_TEST(!m.forward(tape, x1, constants(tape, mem)).aux_loss.defined());
}

BOOST_AUTO_TEST_CASE(aux_loss_trains_the_compressor) {
  CompressiveConfig c = small_cfg();
  c.mem_len = 4;
  nn::Init init(9);
  CompressiveTransformer m(init, c);
  std::vector<Param*> conv;
  for (auto& [name, p] : nn::named_params(m))
    if (name.find("compress_mem_fn") != std::string::npos) conv.push_back(p);
  const Tensor x0 = random_tokens(4, 4, 13, 1), x1 = random_tokens(4, 4, 13, 2);
  const Memory mem = step(m, x0, m.initial_memory(4));
  double first = 0, last = 0;
  for (int it = 0; it < 40; ++it) {
    zero_grads(m);
    Tape tape;
    SegmentOut o = m.forward(tape, x1, constants(tape, mem));
    tape.backward(o.aux_loss);
    (it == 0 ? first : last) = o.aux_loss.value().item();
    for (Param* p : conv) {  // plain gradient descent on the conv only
      auto v = p->value.to_vector();
      const auto g = p->grad.to_vector();
      for (size_t i = 0; i < v.size(); ++i) v[i] -= 0.5 * g[i];
      p->value = Tensor::from(p->value.shape(), v);
    }
  }
  BOOST_TEST_MESSAGE("reconstruction loss " << first << " -> " << last);
  BOOST_TEST(last < 0.5 * first);
}

BOOST_AUTO_TEST_CASE(relative_row_for_a_distance_is_the_same_at_every_fill_level) {
  // P2. The fixture's configuration: T = 16, mem_len 16, cmem_len 4, so P = 36 rows.
  CompressiveConfig c{.vocab = 11, .dim = 8, .depth = 1, .heads = 2, .seq_len = 16};
  c.mem_len = 16, c.cmem_len = 4;
  nn::Init i1(1), i2(1);
  CompressiveTransformer intended(i1, c);
  c.reference_parity = true;
  CompressiveTransformer parity(i2, c);
  for (int64_t dist : {0, 1, 7, 15}) {
    for (int64_t M : {0, 16, 20}) {
      BOOST_TEST(intended.relative_row(dist, M) == 35 - dist);
      BOOST_TEST(parity.relative_row(dist, M) == M + 15 - dist);  // rows 15-d, 31-d, 35-d (README)
    }
  }
  // In the model: the rows a segment's gradient reaches end at P - 1 (distance 0) whatever the
  // memory holds; the reference's end at M + T - 1.
  for (CompressiveTransformer* m : {&intended, &parity}) {
    Rng rng(2);
    m->rel.weight.value = Tensor::randn(m->rel.weight.value.shape(), rng, DType::f32, 0.1);
    Memory mem = m->initial_memory(1);
    for (int s = 0; s < 3; ++s) {
      const int64_t M = mem.at("mem").dim(2) + mem.at("cmem").dim(2);
      zero_grads(*m);
      Tape tape;
      SegmentOut o = m->forward(tape, random_tokens(1, 16, 11, 30 + s), constants(tape, mem));
      tape.backward(cross_entropy(o.logits, random_tokens(1, 16, 11, 40 + s)));
      const Tensor& g = m->rel.weight.grad;  // (H, 36, d)
      int64_t lo = 36, hi = -1;
      for (int64_t r = 0; r < 36; ++r) {
        double w = 0;
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t k = 0; k < 4; ++k) w = std::max(w, std::abs(g.at({h, r, k})));
        if (w > 0) lo = std::min(lo, r), hi = std::max(hi, r);
      }
      BOOST_TEST_INFO("segment " << s << " with " << M << " memory slots");
      if (m == &intended) {
        BOOST_TEST(hi == 35);
        BOOST_TEST(lo == 35 - (M + 15));
      } else {
        BOOST_TEST(hi == M + 15);
        BOOST_TEST(lo == 0);
      }
      mem = values(o.memory);
    }
  }
}

BOOST_AUTO_TEST_CASE(relative_band_equals_dense_term) {
  // The relative term as a band (forward()'s path) against the dense gathered logits of before:
  // memories filling, compressing, a partial segment; under parity also P2's memory-less layer,
  // whose rows read the memory count although it holds none.
  for (const bool parity : {false, true}) {
    CompressiveConfig c = small_cfg();
    c.reference_parity = parity;
    if (parity) c.memory_layers = {1};
    nn::Init init(31);
    CompressiveTransformer m(init, c);
    Rng rng(32);
    m.rel.weight.value = Tensor::randn(m.rel.weight.value.shape(), rng, DType::f32, 0.5);
    BOOST_TEST_CONTEXT((parity ? "reference_parity" : "default")) {
      test::check_band_equals_dense(m, [&](bool dense) { m.dense_relative_term = dense; }, 2, {4, 4, 4, 4, 3}, c.vocab,
                                    {"pos_emb"});
    }
  }
}

BOOST_AUTO_TEST_CASE(enhanced_recurrence_routes_memories) {
  // P5: memory layer j reads layer j + 1's memory; the top reads its own (intended) or the
  // bottom's (reference).
  CompressiveConfig c = small_cfg();
  c.depth = 4, c.memory_layers = {2, 3, 4};
  nn::Init i1(1), i2(1), i3(1);
  CompressiveTransformer intended(i1, c);
  BOOST_TEST(intended.num_memory_layers() == 3);
  BOOST_TEST(intended.memory_slot(0) == -1);
  BOOST_TEST(intended.memory_slot(3) == 2);
  BOOST_TEST(intended.memory_source(0) == 1);
  BOOST_TEST(intended.memory_source(1) == 2);
  BOOST_TEST(intended.memory_source(2) == 2);
  c.reference_parity = true;
  CompressiveTransformer parity(i2, c);
  BOOST_TEST(parity.memory_source(2) == 0);
  c.enhanced_recurrence = false;
  CompressiveTransformer plain(i3, c);
  for (int64_t j = 0; j < 3; ++j) BOOST_TEST(plain.memory_source(j) == j);
  // The routing shows in the logits: memory layer 0's stored memory is read by nobody in the
  // intended model (layer 2 reads layer 3's, layer 3 layer 4's, the top its own), by the top
  // layer in the reference's.
  for (CompressiveTransformer* m : {&intended, &parity}) {
    nn::eval(*m);
    const Memory mem = step(*m, random_tokens(1, 4, 13, 1), m->initial_memory(1));
    Memory other = mem;
    std::vector<double> v = mem.at("mem").to_vector();
    for (size_t i = 0; i < v.size() / 3; ++i) v[i] += 1.0;  // memory layer 0 only
    other["mem"] = Tensor::from(mem.at("mem").shape(), v);
    Tape tape;
    const Tensor x = random_tokens(1, 4, 13, 2);
    const Tensor a = m->forward(tape, x, constants(tape, mem)).logits.value();
    const Tensor b = m->forward(tape, x, constants(tape, other)).logits.value();
    if (m == &intended) BOOST_TEST(max_abs_diff(a, b) == 0.0);
    else BOOST_TEST(max_abs_diff(a, b) > 1e-4);
  }
}

BOOST_AUTO_TEST_CASE(final_norm_and_gate_bias_init) {
  // P6, P7: a final LayerNorm and an identity-favouring update-gate bias by default; neither
  // under parity.
  CompressiveConfig c = small_cfg();
  nn::Init i1(4), i2(4);
  CompressiveTransformer intended(i1, c);
  c.gate_bias_init = 0;
  CompressiveTransformer zero(i2, c);
  BOOST_TEST(intended.norm.has_value());
  const auto a = intended.attn_layers[0].gate->gru.bias_hh.value.to_vector();
  const auto b = zero.attn_layers[0].gate->gru.bias_hh.value.to_vector();
  for (size_t k = 0; k < a.size(); ++k) BOOST_TEST(a[k] - b[k] == (k >= 8 && k < 16 ? 2.0 : 0.0), boost::test_tools::tolerance(1e-6));
  experiments::ExperimentConfig cfg;
  cfg.model.arch = "compressive";
  cfg.model.dim = 8, cfg.model.depth = 1, cfg.model.heads = 2, cfg.model.vocab = 13;
  cfg.data.segment_len = 4;
  experiments::set_arch_options(cfg, "{reference_parity: true}");
  nn::Init i3(4);
  auto parity = experiments::find_arch("compressive").build(cfg, i3);
  for (auto& [name, p] : nn::named_params(*parity)) BOOST_TEST(name.rfind("norm.", 0) != 0);
  const auto& pc = dynamic_cast<CompressiveTransformer&>(*parity).cfg;
  BOOST_TEST(!pc.final_norm.value());
  BOOST_TEST(pc.gate_bias_init.value() == 0.0);
}

BOOST_AUTO_TEST_CASE(options_names_and_dropouts) {
  CompressiveConfig c = small_cfg();
  c.emb_dim = 6, c.mogrify_gru = true, c.ff_glu = true;
  c.attn_dropout = 0.2, c.ff_dropout = 0.2, c.attn_layer_dropout = 0.2, c.reconstruction_attn_dropout = 0.2;
  nn::Init init(6);
  CompressiveTransformer m(init, c);
  std::set<std::string> names;
  for (auto& [name, p] : nn::named_params(m)) names.insert(name);
  for (const char* n : {"pos_emb", "token_emb.weight", "to_model_dim.weight", "to_logits.0.weight", "to_logits.1.bias",
                        "attn_layers.1.fn.norm.weight", "attn_layers.1.fn.fn.to_kv.weight",
                        "attn_layers.1.fn.fn.compress_mem_fn.conv.weight", "attn_layers.0.gru.weight_hh",
                        "attn_layers.0.mogrify.Q.0.weight", "attn_layers.0.mogrify.R.1.weight",
                        "ff_layers.1.fn.fn.w1.weight", "ff_layers.0.gru.bias_ih", "norm.weight"})
    BOOST_TEST(names.count(n) == 1u, n);
  BOOST_TEST(m.ff_layers[0].fn.w1.weight.value.dim(0) == 8 * 4 * 2);  // GLU: 2 x 4D
  // dropout: train mode differs between tapes with different seeds, eval mode is deterministic
  const Tensor x = random_tokens(2, 4, 13, 1);
  const auto logits = [&](uint64_t seed) {
    Tape tape;
    tape.set_seed(seed);
    return m.forward(tape, x, constants(tape, m.initial_memory(2))).logits.value();
  };
  BOOST_TEST(max_abs_diff(logits(1), logits(2)) > 1e-4);
  nn::eval(m);
  BOOST_TEST(max_abs_diff(logits(1), logits(2)) == 0.0);
  // plain residuals: no gates
  c.gru_gated_residual = false;
  nn::Init i2(6);
  CompressiveTransformer r(i2, c);
  for (auto& [name, p] : nn::named_params(r)) BOOST_TEST(name.find("gru") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(config_errors) {
  const auto build = [](const std::string& yaml) {
    experiments::ExperimentConfig cfg;
    cfg.model.arch = "compressive";
    cfg.model.dim = 8, cfg.model.depth = 2, cfg.model.heads = 2;
    cfg.data.segment_len = 8;
    experiments::set_arch_options(cfg, yaml);
    nn::Init init(1);
    return experiments::find_arch("compressive").build(cfg, init);
  };
  const auto fails_with = [&](const std::string& yaml, const std::string& what) {
    try {
      build(yaml);
    } catch (const Error& e) {
      BOOST_TEST_INFO(e.what());
      BOOST_TEST(std::string(e.what()).find(what) != std::string::npos);
      return;
    }
    BOOST_TEST(false, "no error for " << yaml);
  };
  fails_with("{mem_len: 4}", "mem_len");
  fails_with("{cmem_len: 1}", "cmem_len");
  fails_with("{memory_layers: [3]}", "memory_layers");
  fails_with("{mem_lenn: 8}", "mem_len");  // unknown key, with a suggestion
  fails_with("{attn_dropout: 1.5}", "attn_dropout");
  auto m = build("{mem_len: 16, cmem_ratio: 2, memory_layers: [2], enhanced_recurrence: false}");
  const auto& cc = dynamic_cast<CompressiveTransformer&>(*m).cfg;
  BOOST_TEST(cc.cmem_len == 8);
  BOOST_TEST(cc.memory_layers == std::vector<int64_t>{2});
}

BOOST_AUTO_TEST_CASE(experiment_files_load_and_build) {
  // enwik8's model is built narrow (its model.compressive block is still read and checked).
  const std::string dir = std::string(MNEMO_SOURCE_DIR) + "/experiments/configs/";
  for (const char* f : {"compressive_copy.yaml", "compressive_shakespeare.yaml", "compressive_enwik8.yaml"}) {
    BOOST_TEST_INFO(f);
    const auto cfg = experiments::load_config(dir + f, {"model.dim=16", "model.heads=2"});
    BOOST_TEST(cfg.model.arch == "compressive");
    const auto m = experiments::build_model(cfg);
    const auto& c = dynamic_cast<CompressiveTransformer&>(*m).cfg;
    BOOST_TEST(c.mem_len >= cfg.data.segment_len);
    BOOST_TEST(c.cmem_len > 0);
  }
  // the copy file's baseline run: --set model.arch=transformer_xl (same mem_len)
  const auto xl = experiments::load_config(dir + "compressive_copy.yaml", {"model.arch=transformer_xl"});
  BOOST_TEST(dynamic_cast<TransformerXL*>(experiments::build_model(xl).get())->cfg.mem_len == 16);
}

BOOST_AUTO_TEST_CASE(whole_model_gradient_checks_are_registered) {
  // The f64 checks over 3 segments with the aux loss (architectures/compressive.cpp) run in the
  // arch_gradcheck suite and `mnemo gradcheck`; here only that they exist under arch.*.
  for (const char* name : {"arch.compressive.three_segments", "arch.compressive.three_segments.residual"})
    BOOST_TEST(gradcheck::find(name) != nullptr, name);
}

BOOST_AUTO_TEST_CASE(replay_gradients_equal_full_bptt_with_the_aux_loss) {
  // The memories carry gradient where they should (mem; cmem's new slots only with
  // compressor_task_grad) and stop where they should (the compressor's input, and cmem's new
  // slots by default), the same way on one tape and across replayed tapes; the
  // reconstruction dropout draws the same masks when a segment is replayed.
  for (const bool task_grad : {false, true}) {
    BOOST_TEST_CONTEXT("compressor_task_grad " << task_grad) {
      CompressiveConfig c = small_cfg();
      c.reconstruction_attn_dropout = 0.3, c.attn_dropout = 0.1;
      c.compressor_task_grad = task_grad;
      nn::Init init(12, DType::f64);
      CompressiveTransformer m(init, c);
      Rng rng(3);
      std::vector<int32_t> rows(size_t(2 * (5 * 4 + 1)));
      for (auto& r : rows) r = int32_t(rng.randint(13));
      const data::Batch batch = data::make_batch(rows, 2, 5, 4);
      const auto grads = [&](experiments::BpttMode mode) {
        zero_grads(m);
        const auto r = experiments::train_batch(m, batch, m.initial_memory(2), {.mode = mode, .seed = 4});
        BOOST_TEST(r.aux_loss > 0.0);
        std::vector<std::vector<double>> g;
        for (Param* p : nn::params(m))
          g.push_back(p->grad.defined() ? p->grad.to_vector() : std::vector<double>(p->value.numel()));
        return g;
      };
      const auto full = grads(experiments::BpttMode::full), replay = grads(experiments::BpttMode::replay);
      double worst = 0, largest = 0;
      for (size_t i = 0; i < full.size(); ++i)
        for (size_t j = 0; j < full[i].size(); ++j)
          worst = std::max(worst, std::abs(full[i][j] - replay[i][j])), largest = std::max(largest, std::abs(full[i][j]));
      BOOST_TEST(largest > 0.0);
      BOOST_TEST(worst <= 1e-10 * largest);
    }
  }
}

BOOST_AUTO_TEST_CASE(training_smoke_loss_drops) {
  // Period-3 rows: predictable in context. Truncated BPTT over 3 segments with the aux loss.
  const int64_t B = 4, S = 3, T = 8, V = 11;
  const auto make_data = [&](uint64_t seed) { return test::periodic_batch(seed, B, S, T, V); };
  CompressiveConfig c{.vocab = V, .dim = 32, .depth = 2, .heads = 2, .seq_len = T};
  c.mem_len = 8, c.cmem_len = 4, c.cmem_ratio = 2;
  nn::Init init(6);
  CompressiveTransformer m(init, c);
  AdamW opt(nn::named_params(m), {.lr = 1e-2, .weight_decay = 0});
  double first = 0, last = 0, aux = 0;
  for (int s = 0; s < 80; ++s) {
    opt.zero_grad();
    // the memory keeps its shape within a batch only from the full FIFO on: start each batch full
    Memory mem = step(m, random_tokens(B, T, int32_t(V), 900 + s), step(m, random_tokens(B, T, int32_t(V), 800 + s), m.initial_memory(B)));
    const auto r = experiments::train_batch(m, make_data(100 + uint64_t(s)), mem, {.mode = experiments::BpttMode::truncated, .window = 2});
    opt.step();
    (s == 0 ? first : last) = r.loss;
    aux = r.aux_loss;
    if (s % 10 == 0) BOOST_TEST_MESSAGE(s << " " << r.loss << " " << r.aux_loss);
  }
  BOOST_TEST_MESSAGE("compressive loss " << first << " -> " << last << ", aux " << aux);
  BOOST_TEST(std::isfinite(last));
  BOOST_TEST(last < 0.6 * first);
  BOOST_TEST(aux > 0.0);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- the reference fixture ----------------------------------------------------------------

namespace {

struct Fixture {
  experiments::Safetensors file = experiments::read_safetensors(std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures/ct_a.safetensors");
  experiments::ExperimentConfig cfg;
  std::unique_ptr<SegmentModel> model;

  Fixture() {
    cfg.model.arch = "compressive";
    cfg.model.dim = 32, cfg.model.depth = 2, cfg.model.heads = 2, cfg.model.vocab = 256;
    cfg.data.segment_len = 16;
    experiments::set_arch_options(cfg, "{mem_len: 16, cmem_len: 4, cmem_ratio: 4, memory_layers: [1, 2], reference_parity: true}");
    const experiments::ArchInfo& info = experiments::find_arch("compressive");
    nn::Init init(0);
    model = info.build(cfg, init);
    for (auto& [name, t] : info.import_reference(file.tensors, cfg)) nn::find_param(*model, name).value = t.clone();
  }
  const Tensor& at(const std::string& name) const {
    const auto it = file.tensors.find(name);
    BOOST_REQUIRE_MESSAGE(it != file.tensors.end(), "fixture has no " << name);
    return it->second;
  }
  Tensor segment(const std::string& name, int64_t i) const {  // (B, 16) columns of segment i
    const Tensor& all = at(name);
    std::vector<int32_t> v;
    for (int64_t b = 0; b < all.dim(0); ++b)
      for (int64_t t = 0; t < 16; ++t) v.push_back(all.data<int32_t>()[b * all.dim(1) + i * 16 + t]);
    return Tensor::from_ints({all.dim(0), 16}, v);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(compressive_parity)

BOOST_AUTO_TEST_CASE(forward_logits_and_memories_of_three_segments) {
  Fixture f;
  nn::eval(*f.model);
  Memory mem = f.model->initial_memory(2);
  for (int64_t i = 0; i < 3; ++i) {
    Tape tape;
    Tape::NoRecord nr(tape);
    SegmentOut o = f.model->forward(tape, f.segment("input.tokens", i), constants(tape, mem));
    const std::string seg = "seg" + std::to_string(i);
    const double dl = max_abs_diff(o.logits.value(), f.at("expected.logits." + seg));
    const double dm = max_abs_diff(o.memory.at("mem").value(), f.at("expected.mem." + seg + ".mem"));
    const double dc = max_abs_diff(o.memory.at("cmem").value(), f.at("expected.mem." + seg + ".cmem"));
    const double loss = cross_entropy(o.logits, f.segment("input.labels", i)).value().item();
    BOOST_TEST_MESSAGE(seg << ": logits " << dl << ", mem " << dm << ", cmem " << dc);
    BOOST_TEST(dl <= 2e-5);
    BOOST_TEST(dm <= 2e-5);
    BOOST_TEST(dc <= 2e-5);
    BOOST_TEST(std::abs(loss - f.at("expected.eval_loss." + seg).item()) <= 1e-5);
    mem = values(o.memory);
  }
}

BOOST_AUTO_TEST_CASE(loss_and_gradients_of_segment_zero) {
  Fixture f;
  nn::train(*f.model);
  Tape tape;
  SegmentOut o = f.model->forward(tape, f.segment("input.tokens", 0), constants(tape, f.model->initial_memory(2)));
  BOOST_TEST(!o.aux_loss.defined());  // nothing compressed yet: the reference's aux is exactly 0
  Var loss = cross_entropy(o.logits, f.segment("input.labels", 0));
  BOOST_TEST(std::abs(loss.value().item() - f.at("expected.loss.seg0").item()) <= 1e-5);
  tape.backward(loss);
  double largest = 0;
  for (const auto& [name, t] : f.file.tensors)
    if (name.rfind("expected.grad.", 0) == 0) largest = std::max(largest, max_abs(t));
  int checked = 0;
  for (auto& [name, p] : nn::named_params(*f.model)) {
    const auto it = f.file.tensors.find("expected.grad." + name);
    BOOST_TEST_INFO(name);
    if (it == f.file.tensors.end()) {
      BOOST_TEST(grad_abs(*p) == 0.0);  // the convs: no gradient from the task loss
      continue;
    }
    BOOST_REQUIRE(p->grad.defined());
    BOOST_TEST(max_abs_diff(p->grad, it->second) <= 1e-4 * max_abs(it->second) + 1e-6 * largest);
    ++checked;
  }
  BOOST_TEST(checked == 44);
}

BOOST_AUTO_TEST_CASE(import_lists_every_missing_and_unused_name) {
  Fixture f;
  std::map<std::string, Tensor> dict = f.file.tensors;
  dict.erase("pos_emb");
  dict.erase("attn_layers.1.gru.bias_hh");
  dict["extra.weight"] = Tensor::zeros({2});
  try {
    f.model = nullptr;
    experiments::find_arch("compressive").import_reference(dict, f.cfg);
    BOOST_TEST(false, "import accepted a broken state dict");
  } catch (const Error& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("missing: pos_emb") != std::string::npos);
    BOOST_TEST(w.find("missing: attn_layers.1.gru.bias_hh") != std::string::npos);
    BOOST_TEST(w.find("unused: extra.weight") != std::string::npos);
  }
  // the default (intended) model has a final norm the reference lacks: import says so
  experiments::set_arch_options(f.cfg, "{mem_len: 16, cmem_len: 4, memory_layers: [1, 2]}");
  try {
    experiments::find_arch("compressive").import_reference(f.file.tensors, f.cfg);
    BOOST_TEST(false, "import accepted a model with a final norm");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()).find("missing: norm.weight") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(import_refuses_integer_and_non_finite_tensors_by_name) {
  Fixture f;
  std::map<std::string, Tensor> dict = f.file.tensors;
  const Tensor pos = dict.at("pos_emb");
  dict["pos_emb"] = Tensor::zeros(pos.shape(), DType::i32);
  Tensor nan = dict.at("token_emb.weight").clone();
  nan.data<float>()[5] = std::nanf("");
  nan.data<float>()[9] = -std::numeric_limits<float>::infinity();
  dict["token_emb.weight"] = nan;
  try {
    experiments::find_arch("compressive").import_reference(dict, f.cfg);
    BOOST_TEST(false, "import accepted an integer tensor and a NaN");
  } catch (const Error& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("dtype: pos_emb is i32 in the reference") != std::string::npos, w);
    BOOST_TEST(w.find("non-finite: token_emb.weight holds nan at flat index 5 (2 of 8192 values)") != std::string::npos, w);
  }
}

BOOST_AUTO_TEST_SUITE_END()
