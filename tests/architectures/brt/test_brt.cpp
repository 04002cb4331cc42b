// Block-Recurrent Transformer: names and memory layout, block-by-block state updates, the
// memory manager on hand-built cases, read routing, causality, the SPEC 1.6 regressions
// (P3 partial blocks, P4 batch-free init state, P5 bottom-right masks, history bugs), the
// whole-model gradient checks, a training smoke run, and cached generation.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "architectures/brt.h"
#include "architectures/brt_memory.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/optim/adamw.h"
#include "experiments/bptt.h"
#include "tests/architectures/brt/brt_small.h"
#include "tests/support/tensor_compare.h"

using mnemo::test::max_abs_diff;

using namespace mnemo;
using namespace mnemo::arch;

namespace {

Tensor ids(int64_t B, int64_t T, uint64_t seed, int64_t V = 11) {
  Rng rng(seed);
  std::vector<int32_t> v;
  for (int64_t i = 0; i < B * T; ++i) v.push_back(int32_t(rng.randint(V)));
  return Tensor::from_ints({B, T}, v);
}

struct Run {
  std::vector<Tensor> logits;
  Memory memory;
};

Run run(const SegmentModel& m, const std::vector<Tensor>& segments, Memory mem = {}) {
  if (mem.empty()) mem = m.initial_memory(segments.at(0).dim(0));
  Run r;
  for (const Tensor& x : segments) {
    Tape tape;
    Tape::NoRecord nr(tape);
    SegmentOut o = m.forward(tape, x, constants(tape, mem));
    r.logits.push_back(o.logits.value());
    mem = values(o.memory);
  }
  r.memory = mem;
  return r;
}

// columns [t0, t0 + n) of (B, T, ...) as a tensor (B, n, ...)
Tensor cols(const Tensor& x, int64_t t0, int64_t n) {
  Tape tape;
  Tape::NoRecord nr(tape);
  if (x.dtype() == DType::i32) {
    std::vector<int32_t> v;
    for (int64_t b = 0; b < x.dim(0); ++b)
      for (int64_t t = t0; t < t0 + n; ++t) v.push_back(x.data<int32_t>()[b * x.dim(1) + t]);
    return Tensor::from_ints({x.dim(0), n}, v);
  }
  return slice(tape.constant(x), 1, t0, n).value();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(brt)

BOOST_AUTO_TEST_CASE(names_and_memory_layout) {
  nn::Init init(1);
  BlockRecurrentTransformer m(init, test::brt_small());
  const Memory m0 = m.initial_memory(2);
  BOOST_TEST(m0.size() == 3u);
  BOOST_TEST(m0.at("xl.0").shape() == (Shape{2, 0, 16}));
  BOOST_TEST(m0.at("state.0").shape() == (Shape{2, 0, 16}));
  for (const char* n : {"token_emb.weight", "layers.0.attn.norm.weight", "layers.0.attn.to_kv.weight",
                        "layers.1.attn.q_scale", "layers.1.attn.state.init_state", "layers.1.attn.state.learned_ema_beta",
                        "layers.1.attn.state.state_self_attn.k_scale", "layers.1.ff.proj_in.weight", "norm.weight",
                        "to_logits.weight"})
    BOOST_CHECK_NO_THROW(nn::find_param(m, n));
  BOOST_CHECK_THROW(nn::find_param(m, "layers.0.attn.q_scale"), Error);  // QK-norm only where states are
  BOOST_TEST(nn::find_param(m, "layers.0.attn.to_kv.weight").value.shape() == (Shape{16, 16}));  // one K/V head
  BOOST_TEST(nn::find_param(m, "layers.1.attn.to_out.weight").value.shape() == (Shape{16, 32}));  // + its read

  const Run r = run(m, {ids(2, 8, 1), ids(2, 8, 2), ids(2, 6, 3)});
  BOOST_TEST(r.logits[0].shape() == (Shape{2, 8, 11}));
  BOOST_TEST(r.logits[2].shape() == (Shape{2, 6, 11}));  // a short segment is fine
  BOOST_TEST(r.memory.at("xl.1").shape() == (Shape{2, 4, 16}));
  BOOST_TEST(r.memory.at("state.0").shape() == (Shape{2, 3, 16}));

  BrtConfig c = test::brt_small();
  c.use_compressed_mem = true;
  c.compressed_mem_factor = 2;
  nn::Init init2(1);
  BlockRecurrentTransformer mc(init2, c);
  BOOST_TEST(mc.initial_memory(1).size() == 5u);
  const Run rc = run(mc, {ids(1, 8, 1), ids(1, 8, 2)});
  BOOST_TEST(rc.memory.at("xl.0").shape() == (Shape{1, 4, 16}));
  BOOST_TEST(rc.memory.at("xlc.0").shape() == (Shape{1, 2, 16}));  // 3 evictions of 4 -> 2 slots each, keep W/2
  BOOST_TEST(nn::find_param(mc, "layers.1.mem_compress.weight").value.shape() == (Shape{16, 8, 2}));
}


BOOST_AUTO_TEST_CASE(states_update_block_by_block) {
  nn::Init init(2);
  BlockRecurrentTransformer m(init, test::brt_small());
  const Tensor x = ids(1, 8, 7);
  const Run whole = run(m, {x});                                // one call, two blocks
  const Run split = run(m, {cols(x, 0, 4), cols(x, 4, 4)});     // one block per call
  // the same computation: block 2 reads the states block 1 wrote, inside one call as across two
  BOOST_TEST(max_abs_diff(cols(whole.logits[0], 0, 4), split.logits[0]) < 1e-6);
  BOOST_TEST(max_abs_diff(cols(whole.logits[0], 4, 4), split.logits[1]) < 1e-6);
  BOOST_TEST(max_abs_diff(whole.memory.at("state.0"), split.memory.at("state.0")) < 1e-6);
  BOOST_TEST(max_abs_diff(whole.memory.at("xl.1"), split.memory.at("xl.1")) < 1e-6);
  // History bug (fixed upstream 2023-04-03): states updated once per segment from its last
  // block. Then block 2 would read init_state; it must read block 1's write instead.
  Memory stale = run(m, {cols(x, 0, 4)}).memory;
  BOOST_TEST(max_abs_diff(stale.at("state.0"), split.memory.at("state.0")) > 1e-3);  // each block writes
  stale["state.0"] = m.initial_memory(1).at("state.0");
  BOOST_TEST(max_abs_diff(run(m, {cols(x, 4, 4)}, stale).logits[0], split.logits[1]) > 1e-4);
}

BOOST_AUTO_TEST_CASE(carried_states_are_read) {
  // History bug (upstream issue #3): state keys/values came from init_state, not the carried state.
  nn::Init init(3);
  BlockRecurrentTransformer m(init, test::brt_small());
  const Memory after = run(m, {ids(2, 8, 1)}).memory;
  Memory fresh_state = after;
  fresh_state["state.0"] = m.initial_memory(2).at("state.0");
  const Tensor x = ids(2, 8, 2);
  const Tensor carried = run(m, {x}, after).logits[0], reset = run(m, {x}, fresh_state).logits[0];
  BOOST_TEST(max_abs_diff(cols(carried, 0, 4), cols(reset, 0, 4)) > 1e-4);  // already in block 1
}

BOOST_AUTO_TEST_CASE(memory_manager_hand_built) {
  Tape tape;
  const auto kv = [&](int64_t n, double base) {  // (1, n, 4): slot t = [k k v v] = base + t, -(base + t)
    std::vector<double> v;
    for (int64_t t = 0; t < n; ++t)
      for (double x : {base + double(t), base + double(t), -(base + double(t)), -(base + double(t))}) v.push_back(x);
    return tape.constant(Tensor::from({1, n, 4}, v));
  };
  // identity stage alone: W slots kept, the oldest evicted, nothing else kept
  BrtMemory a = brt_push_memory(Var{}, Var{}, kv(4, 0), 4, nullptr);
  BOOST_TEST(a.xl.shape() == (Shape{1, 4, 4}));
  BOOST_TEST(!a.xlc.defined());
  a = brt_push_memory(a.xl, Var{}, kv(4, 10), 4, nullptr);
  BOOST_TEST(a.xl.value().at({0, 0, 0}) == 10.0);
  // compressed stage: W 4, c 3 -> each eviction of 4 slots is trimmed to its newest 3 and
  // compressed to 1 slot; W/2 = 2 slots kept. Conv weights all 1, bias 0: a K channel sums the
  // K channels of its 3 slots, a V channel the V channels, never the other (groups = 2).
  nn::Init init(0);
  nn::Compressor conv(init, 4, 3, 2, true);
  conv.drop_remainder = true;
  conv.weight.value = Tensor::full({4, 2, 3}, 1.0);
  conv.bias.value = Tensor::zeros({4});
  BrtMemory b = brt_push_memory(Var{}, Var{}, kv(4, 0), 4, &conv);
  BOOST_TEST(!b.xlc.defined());  // nothing evicted yet
  b = brt_push_memory(b.xl, b.xlc, kv(4, 10), 4, &conv);
  BOOST_REQUIRE(b.xlc.shape() == (Shape{1, 1, 4}));
  // evicted slots 0..3 = 0, 1, 2, 3: slot 0 dropped, slots 1..3 summed over 2 channels each
  BOOST_TEST(b.xlc.value().at({0, 0, 0}) == 2.0 * (1 + 2 + 3));
  BOOST_TEST(b.xlc.value().at({0, 0, 3}) == -2.0 * (1 + 2 + 3));
  b = brt_push_memory(b.xl, b.xlc, kv(4, 20), 4, &conv);
  b = brt_push_memory(b.xl, b.xlc, kv(4, 30), 4, &conv);
  BOOST_TEST(b.xl.shape() == (Shape{1, 4, 4}));
  BOOST_REQUIRE(b.xlc.shape() == (Shape{1, 2, 4}));               // capped at W/2, oldest out
  BOOST_TEST(b.xlc.value().at({0, 0, 1}) == 2.0 * (11 + 12 + 13));  // from the block at 10
  BOOST_TEST(b.xlc.value().at({0, 1, 2}) == -2.0 * (21 + 22 + 23)); // the newest on the right
  BOOST_TEST(b.xl.value().at({0, 3, 0}) == 33.0);
}

BOOST_AUTO_TEST_CASE(read_routing_below_the_write_layer) {
  BrtConfig c = test::brt_small();
  c.depth = 3;
  c.recurrent_layers = {3};
  c.read_recurrent_layers = {1};  // read at layer 1, written at layer 3
  nn::Init init(4);
  BlockRecurrentTransformer m(init, c);
  BOOST_TEST(nn::find_param(m, "layers.0.attn.to_out.weight").value.shape() == (Shape{16, 32}));  // + the read
  BOOST_TEST(nn::find_param(m, "layers.2.attn.to_out.weight").value.shape() == (Shape{16, 16}));
  BOOST_TEST(m.reads_at[0] == std::vector<int64_t>{0});
  // Gradient reach. Block 1's logits see the state through the read at layer 1 only: the
  // read's weights get gradient, the write's (used for block 2) none.
  const auto grads = [&](int64_t T) {
    for (Param* p : nn::params(m)) p->grad = Tensor();
    Tape tape;
    MemoryVars in;
    for (auto& [name, t] : m.initial_memory(1)) in[name] = tape.constant(t);
    const Tensor x = ids(1, T, 5);
    tape.backward(cross_entropy(m.forward(tape, x, in).logits, x));
    const auto reached = [&](const char* n) {
      const Param& p = nn::find_param(m, n);
      return p.grad.defined() && max_abs_diff(p.grad, p.grad.zeros_like()) > 0;
    };
    return std::pair{reached("layers.2.attn.state.q_to_state.weight"), reached("layers.2.attn.state.state_to_q.weight")};
  };
  BOOST_CHECK(grads(4) == std::pair(true, false));
  BOOST_CHECK(grads(8) == std::pair(true, true));  // block 2 reads what block 1 wrote
}

BOOST_AUTO_TEST_CASE(causal_within_a_block_and_across_the_memory) {
  nn::Init init(5);
  BlockRecurrentTransformer m(init, test::brt_small());
  const Memory filled = run(m, {ids(1, 8, 1)}).memory;
  const Tensor a = ids(1, 8, 2);
  for (int64_t j : {2, 5}) {  // a change inside block 1, then inside block 2
    Tensor b = a.clone();
    b.data<int32_t>()[j] = (a.data<int32_t>()[j] + 1) % 11;
    for (const Memory& mem : {m.initial_memory(1), filled}) {
      const Tensor la = run(m, {a}, mem).logits[0], lb = run(m, {b}, mem).logits[0];
      BOOST_TEST(max_abs_diff(cols(la, 0, j), cols(lb, 0, j)) == 0.0);  // the past never sees the future
      BOOST_TEST(max_abs_diff(cols(la, j, 8 - j), cols(lb, j, 8 - j)) > 1e-5);
    }
  }
  // and the memory carries the past segment into this one
  BOOST_TEST(max_abs_diff(run(m, {a}, filled).logits[0], run(m, {a}).logits[0]) > 1e-4);
}

BOOST_AUTO_TEST_CASE(bottom_right_mask_over_memory_P5) {
  // A query attends to every memory key and the block's keys up to its own. With PyTorch 2.0's
  // top-left is_causal (the bug BRT fixed), query 0 would see memory slot 0 only.
  nn::Init init(6);
  BlockRecurrentTransformer m(init, test::brt_small());
  Tape tape;
  Tape::NoRecord nr(tape);
  Rng rng(1);
  const auto layer0 = [&](const Tensor& mem, const Tensor& x) {
    BlockRecurrentTransformer::Carry c;
    c.xl = {tape.constant(mem), Var{}};
    c.xlc = {Var{}, Var{}};
    Var kv;
    return m.layer_forward(0, tape.constant(x), c, Var{}, 0, 4, {}, &kv).value();  // (1, 4, D)
  };
  const Tensor mem = Tensor::randn({1, 4, 16}, rng), x = Tensor::randn({1, 4, 16}, rng);
  const Tensor base = layer0(mem, x);
  for (int64_t slot : {0, 3}) {  // the oldest and the newest memory slot
    Tensor mem2 = mem.clone();
    mem2.data<float>()[slot * 16 + 9] += 1.0f;  // one value channel
    BOOST_TEST(max_abs_diff(cols(layer0(mem2, x), 0, 1), cols(base, 0, 1)) > 1e-4);
  }
  Tensor x2 = x.clone();
  x2.data<float>()[2 * 16 + 3] += 1.0f;  // token 2
  const Tensor changed = layer0(mem, x2);
  BOOST_TEST(max_abs_diff(cols(changed, 0, 2), cols(base, 0, 2)) == 0.0);
  BOOST_TEST(max_abs_diff(cols(changed, 2, 2), cols(base, 2, 2)) > 1e-4);
}

BOOST_AUTO_TEST_CASE(partial_blocks_P3) {
  nn::Init init(7);
  BlockRecurrentTransformer m(init, test::brt_small());
  const Memory filled = run(m, {ids(2, 8, 1)}).memory;
  const Tensor x = ids(2, 8, 3);
  const Run full = run(m, {x}, filled), part = run(m, {cols(x, 0, 6)}, filled), one = run(m, {cols(x, 0, 4)}, filled);
  // a block's prefix computes exactly what the full block computes for those tokens
  BOOST_TEST(max_abs_diff(part.logits[0], cols(full.logits[0], 0, 6)) < 1e-6);
  // the partial block advances the states but does not enter the XL memory
  BOOST_TEST(max_abs_diff(part.memory.at("xl.0"), one.memory.at("xl.0")) == 0.0);
  BOOST_TEST(max_abs_diff(part.memory.at("state.0"), one.memory.at("state.0")) > 1e-4);
  BOOST_TEST(max_abs_diff(part.memory.at("state.0"), full.memory.at("state.0")) > 1e-4);
  // the reference right-aligns the partial block's positions; with relative positions the
  // logits agree up to rounding
  BrtConfig c = test::brt_small();
  c.reference_parity = true;
  nn::Init init2(7);
  BlockRecurrentTransformer mp(init2, c);
  const Memory fp = run(mp, {ids(2, 8, 1)}).memory;
  BOOST_TEST(max_abs_diff(run(mp, {cols(x, 0, 6)}, fp).logits[0], cols(run(mp, {x}, fp).logits[0], 0, 6)) < 1e-4);
}

BOOST_AUTO_TEST_CASE(batch_free_initial_state_P4) {
  nn::Init init(8);
  BlockRecurrentTransformer m(init, test::brt_small());
  const Tensor row = ids(1, 8, 4);
  std::vector<int32_t> three;
  for (int i = 0; i < 3; ++i) for (int64_t t = 0; t < 8; ++t) three.push_back(row.data<int32_t>()[t]);
  const Run r1 = run(m, {row}), r3 = run(m, {Tensor::from_ints({3, 8}, three)});
  BOOST_TEST(r3.memory.at("state.0").shape() == (Shape{3, 3, 16}));  // the first write adds the batch
  for (int64_t b = 0; b < 3; ++b) {
    Tape tape;
    Tape::NoRecord nr(tape);
    const Tensor lb = slice(tape.constant(r3.logits[0]), 0, b, 1).value();
    BOOST_TEST(max_abs_diff(lb, r1.logits[0]) < 1e-6);
  }
  // init_state is a parameter: the loss reaches it through the broadcast
  Tape tape;
  MemoryVars in;
  for (auto& [name, t] : m.initial_memory(3)) in[name] = tape.constant(t);
  tape.backward(cross_entropy(m.forward(tape, Tensor::from_ints({3, 8}, three), in).logits, Tensor::from_ints({3, 8}, three)));
  const Param& s0 = nn::find_param(m, "layers.1.attn.state.init_state");
  BOOST_TEST((s0.grad.defined() && max_abs_diff(s0.grad, s0.grad.zeros_like()) > 0));
}

BOOST_AUTO_TEST_CASE(xpos_keys_scale_inversely) {
  // History bug (2023-03-24): keys were scaled by zeta^+p like queries. With zeta^-p for keys,
  // q'.k' depends only on the offset, so shifting both positions changes nothing.
  nn::Init init(0);
  const nn::Rotary rope(init, 8, 10000, true, 16, 32);  // a small scale base makes xPos strong
  Rng rng(2);
  Tape tape;
  const Var q = tape.constant(Tensor::randn({1, 1, 1, 8}, rng, DType::f64));
  const Var k = tape.constant(Tensor::randn({1, 1, 1, 8}, rng, DType::f64));
  const auto dot = [&](int64_t qp, int64_t kp) {
    auto [qr, kr] = rope(q, k, std::vector<int64_t>{qp}, std::vector<int64_t>{kp});
    return sum(qr * kr).value().item();
  };
  BOOST_TEST(std::abs(dot(10, 7) - dot(25, 22)) < 1e-10);
  BOOST_TEST(std::abs(dot(10, 7) - dot(10, 2)) > 1e-6);
}

BOOST_AUTO_TEST_CASE(qk_norm_scale_is_honoured_P1) {
  // Default: QK-normed logits scaled by qk_rmsnorm_scale; the reference's 1/sqrt(d) only under
  // reference_parity. The two must differ, and the scale option must reach the logits.
  BrtConfig c = test::brt_small();
  const Tensor x = ids(1, 8, 9);
  std::vector<Tensor> out;
  for (auto [parity, scale] : {std::pair{false, 8.0}, std::pair{true, 8.0}, std::pair{false, 2.0}}) {
    c.reference_parity = parity;
    c.qk_rmsnorm_scale = scale;
    nn::Init init(10);
    BlockRecurrentTransformer m(init, c);
    out.push_back(run(m, {x}).logits[0]);
  }
  BOOST_TEST(max_abs_diff(out[0], out[1]) > 1e-4);
  BOOST_TEST(max_abs_diff(out[0], out[2]) > 1e-4);
}

BOOST_AUTO_TEST_CASE(config_errors) {
  // Each rule names the option it is about, so the config loader can point at its line.
  nn::Init init(0);
  const auto fails = [&](BrtConfig c, const std::string& key, const std::string& what) {
    try {
      BlockRecurrentTransformer m(init, c);
    } catch (const arch::OptionError& e) {
      BOOST_TEST(e.key() == key);
      return std::string(e.what()).find(what) != std::string::npos;
    }
    return false;
  };
  BrtConfig c = test::brt_small();
  c.seq_len = 6;
  BOOST_TEST(fails(c, "block_width", "must divide data.segment_len = 6, got 4"));
  c = test::brt_small();
  c.read_recurrent_layers = {3};
  BOOST_TEST(fails(c, "read_recurrent_layers", "layers are 1-based in 1..2, got 3"));
  c = test::brt_small();
  c.recurrent_layers = {1};
  c.read_recurrent_layers = {2};
  BOOST_TEST(fails(c, "read_recurrent_layers", "read at or below"));
  c = test::brt_small();
  c.ema_gate_init = 1.0;
  BOOST_TEST(fails(c, "ema_gate_init", "must be in (0, 1)"));
  c = test::brt_small();
  c.ff_dropout = 1.0;
  BOOST_TEST(fails(c, "ff_dropout", "must be in [0, 0.99], got 1"));
  c = test::brt_small();
  c.reference_parity = true;
  c.ff_dropout = 0.1;
  BOOST_TEST(fails(c, "ff_dropout", "the reference has no feed-forward dropout"));
  c = test::brt_small();
  c.block_width = 0;  // derived: seq_len / 2
  BOOST_TEST(arch::resolved(c).block_width == 4);
}

BOOST_AUTO_TEST_CASE(ff_dropout_acts_in_training_only) {
  // A mnemo extension for text runs that overfit: the same weights with ff_dropout give the
  // dropout-free logits in eval mode, other logits in training mode, and the same ones again
  // for the same tape seed (a replayed segment drops the same units).
  BrtConfig c = test::brt_small();
  nn::Init i0(4), i1(4);
  BlockRecurrentTransformer plain(i0, c);
  c.ff_dropout = 0.5;
  BlockRecurrentTransformer dropped(i1, c);
  const Tensor x = ids(2, 8, 3);
  nn::eval(plain);
  nn::eval(dropped);
  const Tensor reference = run(plain, {x}).logits[0];
  BOOST_TEST(max_abs_diff(run(dropped, {x}).logits[0], reference) == 0.0);
  nn::train(dropped);
  const auto training_logits = [&](uint64_t seed) {
    Tape tape;
    tape.set_seed(seed);
    Tape::NoRecord nr(tape);
    return dropped.forward(tape, x, constants(tape, dropped.initial_memory(2))).logits.value();
  };
  BOOST_TEST(max_abs_diff(training_logits(7), reference) > 1e-3);
  BOOST_TEST(max_abs_diff(training_logits(7), training_logits(7)) == 0.0);
  BOOST_TEST(max_abs_diff(training_logits(7), training_logits(8)) > 1e-3);
}

BOOST_AUTO_TEST_CASE(ema_gate_init_moves_only_the_mean_of_beta) {
  // g0 = 0.5 is the reference's N(0, 0.1); another g0 shifts those same draws by logit(g0).
  BrtConfig c = test::brt_small();
  std::vector<std::vector<double>> betas;
  for (double g0 : {0.5, 0.2}) {
    c.ema_gate_init = g0;
    nn::Init init(3);
    BlockRecurrentTransformer m(init, c);
    betas.push_back(nn::find_param(m, "layers.1.attn.state.learned_ema_beta").value.to_vector());
  }
  double mean_gate = 0;
  for (size_t i = 0; i < betas[0].size(); ++i) {
    BOOST_TEST(betas[1][i] - betas[0][i] == std::log(0.2 / 0.8), boost::test_tools::tolerance(1e-6));
    mean_gate += 1 / (1 + std::exp(-betas[1][i])) / double(betas[0].size());
  }
  BOOST_TEST(mean_gate == 0.2, boost::test_tools::tolerance(0.05));
}

BOOST_AUTO_TEST_SUITE_END()
