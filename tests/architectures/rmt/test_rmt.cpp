// The Recurrent Memory Transformer's forward semantics: memory layout and names, the
// memory-aware mask against a hand-built one, causality, what the read and write slots see,
// the XL caches (tokens only, FIFO, stop-gradient), every option of SPEC 2.1, and a regression
// test per reference deviation P2..P9 of SPEC 2.5. The whole-model gradient checks (f64, three
// segments) run here too.
#include <boost/test/unit_test.hpp>

#include "autograd/gradcheck/gradcheck.h"
#include "tests/architectures/rmt/rmt_test_util.h"

using namespace mnemo;
using namespace mnemo::test_rmt;

namespace {

bool has_name(nn::Module& m, const std::string& name) {
  for (auto& [n, p] : nn::named_params(m))
    if (n == name) return true;
  return false;
}

// The step-5 rule written out as a dense (Tq, P + Tk) boolean mask: P always-visible prefix
// keys, then [read r, tokens n, write w].
Tensor hand_built_mask(int64_t P, int64_t r, int64_t n, int64_t w, bool causal, bool memory_aware) {
  const int64_t N = r + n + w;
  std::vector<double> m;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < P + N; ++j) {
      bool see = true;
      if (j >= P && causal) {
        const int64_t k = j - P;  // key index in [read, tokens, write]
        if (!memory_aware) see = k <= i;
        else if (i < r) see = k < r;                 // read rows: read slots only
        else if (i < r + n) see = k <= i;            // token rows: read slots, tokens up to themselves
        else see = true;                             // write rows: everything
      }
      m.push_back(see ? 1 : 0);
    }
  return Tensor::from({1, 1, N, P + N}, m, DType::u8);
}

RecurrentMemoryTransformer with(void (*edit)(RmtConfig&), uint64_t seed = 1) {
  RmtConfig c = tiny_config();
  edit(c);
  return nudged(c, seed);
}

// Logits of segment 2 after segment 1 = h, from the initial memory.
Tensor second_segment(const RecurrentMemoryTransformer& m, const Tensor& h, const Tensor& x) {
  return run(m, {h, x}).logits[1];
}

}  // namespace

BOOST_AUTO_TEST_SUITE(rmt)

BOOST_AUTO_TEST_CASE(memory_layout_and_shapes) {
  const RecurrentMemoryTransformer m = nudged(tiny_config());
  const Memory m0 = m.initial_memory(2);
  BOOST_TEST(m0.size() == 3u);  // write, xl.0, xl.1
  BOOST_TEST(m0.at("write").shape() == (Shape{2, 3, 16}));
  BOOST_TEST(max_abs(m0.at("write")) == 0.0);
  BOOST_TEST(m0.at("xl.1").shape() == (Shape{2, 2, 2, 0, 8}));
  const Run r = run(m, {random_tokens(2, 5, 11, 1), random_tokens(2, 5, 11, 2), random_tokens(2, 2, 11, 3)});
  BOOST_TEST(r.logits[0].shape() == (Shape{2, 5, 11}));
  BOOST_TEST(r.memory[0].at("write").shape() == (Shape{2, 3, 16}));
  // xl_mem_len 4 < T = 5: the cache holds the last 4 tokens' keys/values
  BOOST_TEST(r.memory[0].at("xl.0").shape() == (Shape{2, 2, 2, 4, 8}));
  BOOST_TEST(r.memory[1].at("xl.1").shape() == (Shape{2, 2, 2, 4, 8}));
  BOOST_TEST(r.logits[2].shape() == (Shape{2, 2, 11}));  // a shorter segment is fine

  RmtConfig c = tiny_config();
  c.use_xl_memories = false;
  c.always_have_read_memories = false;
  const RecurrentMemoryTransformer plain = nudged(c);
  const Memory p0 = plain.initial_memory(2);
  BOOST_TEST(p0.size() == 1u);
  BOOST_TEST(p0.at("write").shape() == (Shape{2, 0, 16}));  // no read slots on the first segment
  BOOST_TEST(run(plain, {random_tokens(2, 5, 11, 1)}).memory[0].at("write").shape() == (Shape{2, 3, 16}));
}

BOOST_AUTO_TEST_CASE(parameter_names_follow_the_layers) {
  RecurrentMemoryTransformer m = nudged(tiny_config());
  for (const char* n : {"token_emb.weight", "pos_emb.emb.weight", "read_memory_emb", "memory_tokens",
                        "layers.0.attn_hc.static_alpha", "layers.0.attn_hc.norm.gamma", "layers.0.attn_norm.weight",
                        "layers.0.attn.to_q.weight", "layers.0.attn.to_kv.weight", "layers.0.attn.to_out.weight",
                        "layers.0.attn.null_kv", "layers.1.attn.to_value_residual_mix.weight",
                        "layers.1.ff_hc.dynamic_beta_fn", "layers.1.ff.norm.weight", "layers.1.ff.proj_in.weight",
                        "layers.1.ff.proj_out.weight", "norm.weight", "to_logits.weight", "to_logits.bias"})
    BOOST_TEST(has_name(m, n), n);
  BOOST_TEST(!has_name(m, "layers.0.attn.to_value_residual_mix.weight"));  // layer 0 provides the values
  BOOST_TEST(nn::find_param(m, "layers.1.attn.null_kv").value.shape() == (Shape{2, 2, 8}));
  BOOST_TEST(nn::find_param(m, "layers.0.ff.proj_in.weight").value.shape() == (Shape{2 * 21, 16}));  // int(16*2*2/3)

  RmtConfig c = tiny_config();
  c.num_residual_streams = 1;
  c.abs_pos_emb = false;
  c.rotary_pos_emb = true;
  c.null_kv = false;
  c.value_residual = false;
  RecurrentMemoryTransformer bare = nudged(c);
  for (const char* n : {"pos_emb.emb.weight", "layers.0.attn_hc.static_alpha", "layers.0.attn.null_kv",
                        "layers.1.attn.to_value_residual_mix.weight"})
    BOOST_TEST(!has_name(bare, n), n);
}

BOOST_AUTO_TEST_CASE(mask_matches_a_hand_built_mask) {
  // The fused op given the model's mask description must equal the op given the dense rule.
  Rng rng(5);
  const int64_t P = 3, r = 2, n = 4, w = 2, N = r + n + w, d = 4;
  const Tensor q = Tensor::randn({1, 2, N, d}, rng), k = Tensor::randn({1, 2, P + N, d}, rng),
               v = Tensor::randn({1, 2, P + N, d}, rng);
  for (const auto& [causal, aware] : {std::pair{true, true}, std::pair{true, false}, std::pair{false, true}}) {
    RmtConfig c = tiny_config();
    c.causal = causal;
    c.memory_not_causal = aware;
    const RecurrentMemoryTransformer m = nudged(c);
    const nn::AttentionContext ctx = m.mask_context(r, w);
    Tape tape;
    AttentionSpec spec{.prefix = P, .causal = ctx.causal, .read_rows = ctx.read_rows, .write_rows = ctx.write_rows};
    const Tensor ours = attention(tape.constant(q), tape.constant(k), tape.constant(v), spec).value();
    const Tensor dense = attention(tape.constant(q), tape.constant(k), tape.constant(v),
                                   {.mask = hand_built_mask(P, r, n, w, causal, aware)})
                             .value();
    BOOST_TEST_CONTEXT("causal " << causal << ", memory-aware " << aware) {
      BOOST_TEST(max_abs_diff(ours, dense) < 1e-6);
    }
  }
  // And the default really is the memory-aware rule, not plain causal: the two differ.
  Tape tape;
  const Tensor aware = attention(tape.constant(q), tape.constant(k), tape.constant(v),
                                 {.mask = hand_built_mask(P, r, n, w, true, true)}).value();
  const Tensor plain = attention(tape.constant(q), tape.constant(k), tape.constant(v),
                                 {.mask = hand_built_mask(P, r, n, w, true, false)}).value();
  BOOST_TEST(max_abs_diff(aware, plain) > 1e-3);
}

BOOST_AUTO_TEST_CASE(causal_within_a_segment) {
  const RecurrentMemoryTransformer m = nudged(tiny_config());
  const Tensor h = random_tokens(1, 5, 11, 7);  // history: the memory and caches are filled
  const Tensor a = Tensor::from_ints({1, 5}, {1, 2, 3, 4, 5}), b = Tensor::from_ints({1, 5}, {1, 2, 9, 0, 5});
  const Tensor la = second_segment(m, h, a), lb = second_segment(m, h, b);
  BOOST_TEST(steps(la, 0, 2) == steps(lb, 0, 2));  // steps before the change: bit for bit
  BOOST_TEST(max_abs_diff(la, lb) > 1e-4);
  // Read rows see only read slots: were they to see tokens, the token at step 2 would reach
  // step 0 through the read slots in layer 2. Write rows see everything: the memory changes.
  const Memory ma = run(m, {h, a}).memory[1], mb = run(m, {h, b}).memory[1];
  BOOST_TEST(max_abs_diff(ma.at("write"), mb.at("write")) > 1e-4);
  // A non-causal model (an encoder) lets step 0 see step 2.
  const RecurrentMemoryTransformer enc = with([](RmtConfig& c) { c.causal = false; });
  BOOST_TEST(steps(second_segment(enc, h, a), 0, 1) != steps(second_segment(enc, h, b), 0, 1));
}

BOOST_AUTO_TEST_CASE(tokens_read_the_memory_but_never_the_write_slots) {
  RecurrentMemoryTransformer m = nudged(tiny_config());
  const Tensor x = random_tokens(2, 5, 11, 3);
  const Run base = run(m, {x});
  // The incoming memory reaches every token (through the read slots) ...
  Memory other = m.initial_memory(2);
  Rng rng(4);
  other["write"] = Tensor::randn({2, 3, 16}, rng);
  const Run moved = run(m, {x}, other);
  BOOST_TEST(steps(moved.logits[0], 0, 1) != steps(base.logits[0], 0, 1));  // even the first token
  // ... while the write slots' inputs change the written memory only.
  Param& tokens = nn::find_param(m, "memory_tokens");
  tokens.value.copy_from(Tensor::randn(tokens.value.shape(), rng));
  const Run rewritten = run(m, {x});
  BOOST_TEST(max_abs_diff(rewritten.logits[0], base.logits[0]) == 0.0);
  BOOST_TEST(max_abs_diff(rewritten.memory[0].at("write"), base.memory[0].at("write")) > 1e-4);
}

BOOST_AUTO_TEST_CASE(xl_cache_holds_the_last_tokens_keys_and_values) {
  // P8 fixed: the cache is the last xl_mem_len *token* positions (the write slots' keys would
  // depend on memory_tokens; token keys never do). Under reference_parity it is the last
  // slots of [null, read, tokens, write], so the write slots are in it.
  for (bool parity : {false, true}) {
    RmtConfig c = tiny_config();
    c.reference_parity = parity;
    RecurrentMemoryTransformer m = nudged(c);
    const Tensor x = random_tokens(2, 5, 11, 3);
    const Memory before = run(m, {x}).memory[0];
    Param& tokens = nn::find_param(m, "memory_tokens");
    Rng rng(8);
    tokens.value.copy_from(Tensor::randn(tokens.value.shape(), rng));
    const Memory after = run(m, {x}).memory[0];
    BOOST_TEST_CONTEXT("reference_parity " << parity) {
      for (const char* xl : {"xl.0", "xl.1"}) {
        BOOST_TEST(after.at(xl).shape() == (Shape{2, 2, 2, 4, 8}));
        if (parity) BOOST_TEST(max_abs_diff(after.at(xl), before.at(xl)) > 1e-4, xl);
        else BOOST_TEST(max_abs_diff(after.at(xl), before.at(xl)) == 0.0, xl);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(xl_cache_is_a_fifo_over_short_segments) {
  RmtConfig c = tiny_config();
  c.xl_mem_len = 4;
  const RecurrentMemoryTransformer m = nudged(c);
  // Segments of 2 tokens: the cache grows 2, 4, 4 and its oldest half is the previous newest.
  const Run r = run(m, {random_tokens(1, 2, 11, 1), random_tokens(1, 2, 11, 2), random_tokens(1, 2, 11, 3)});
  BOOST_TEST(r.memory[0].at("xl.0").dim(3) == 2);
  BOOST_TEST(r.memory[1].at("xl.0").dim(3) == 4);
  BOOST_TEST(r.memory[2].at("xl.0").dim(3) == 4);
  const Tensor a = r.memory[1].at("xl.1"), b = r.memory[2].at("xl.1");  // (1, 2, H, 4, d)
  for (int64_t kv = 0; kv < 2; ++kv)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t e = 0; e < 8; ++e) BOOST_TEST(b.at({0, kv, h, j, e}) == a.at({0, kv, h, j + 2, e}));
}

BOOST_AUTO_TEST_CASE(xl_memory_changes_the_next_segment_and_is_stop_gradient) {
  const RecurrentMemoryTransformer m = nudged(tiny_config());
  const Tensor h = random_tokens(2, 5, 11, 1), x = random_tokens(2, 5, 11, 2);
  const Memory after_h = run(m, {h}).memory[0];
  Memory no_xl = after_h;
  for (const char* xl : {"xl.0", "xl.1"}) no_xl[xl] = m.initial_memory(2).at(xl);
  BOOST_TEST(max_abs_diff(run(m, {x}, after_h).logits[0], run(m, {x}, no_xl).logits[0]) > 1e-4);
  // Returned caches carry no gradient, the write memory does.
  Tape tape;
  MemoryVars in;
  for (const auto& [name, t] : after_h) in[name] = tape.input(t);
  arch::SegmentOut o = m.forward(tape, x, in);
  BOOST_TEST(!o.memory.at("xl.0").requires_grad());
  BOOST_TEST(o.memory.at("write").requires_grad());
}

BOOST_AUTO_TEST_CASE(enhanced_xl_recurrence_reads_the_layer_above) {
  // P4 fixed: layer 0 attends to layer 1's cache, the top layer to its own, so layer 0's own
  // cache is unused by a 2-layer model. Under reference_parity the option does nothing.
  const Tensor h = random_tokens(2, 5, 11, 1), x = random_tokens(2, 5, 11, 2);
  const auto logits_with = [&](const RecurrentMemoryTransformer& m, const char* scrambled) {
    Memory mem = run(m, {h}).memory[0];
    if (scrambled) {
      Rng rng(3);
      mem[scrambled] = Tensor::randn(mem.at(scrambled).shape(), rng);
    }
    return run(m, {x}, mem).logits[0];
  };
  const RecurrentMemoryTransformer plain = nudged(tiny_config());
  const RecurrentMemoryTransformer enhanced = with([](RmtConfig& c) { c.enhanced_xl_recurrence = true; });
  BOOST_TEST(enhanced.xl_source(0) == 1);
  BOOST_TEST(enhanced.xl_source(1) == 1);
  BOOST_TEST(max_abs_diff(logits_with(enhanced, "xl.0"), logits_with(enhanced, nullptr)) == 0.0);
  BOOST_TEST(max_abs_diff(logits_with(enhanced, "xl.1"), logits_with(enhanced, nullptr)) > 1e-4);
  BOOST_TEST(max_abs_diff(logits_with(plain, "xl.0"), logits_with(plain, nullptr)) > 1e-4);
  BOOST_TEST(max_abs_diff(logits_with(enhanced, nullptr), logits_with(plain, nullptr)) > 1e-4);
  // Oracle: the enhanced model equals the plain one (same weights) fed every layer the cache
  // of the layer above, to the bit.
  {
    const Memory mem = run(enhanced, {h}).memory[0];
    Memory shifted = mem;
    shifted["xl.0"] = mem.at("xl.1");
    BOOST_TEST(max_abs_diff(run(enhanced, {x}, mem).logits[0], run(plain, {x}, shifted).logits[0]) == 0.0);
  }
  const RecurrentMemoryTransformer parity = with([](RmtConfig& c) {
    c.reference_parity = true;
    c.enhanced_xl_recurrence = true;
  });
  const RecurrentMemoryTransformer parity_off = with([](RmtConfig& c) { c.reference_parity = true; });
  BOOST_TEST(parity.xl_source(0) == 0);
  BOOST_TEST(max_abs_diff(logits_with(parity, nullptr), logits_with(parity_off, nullptr)) == 0.0);
}

BOOST_AUTO_TEST_CASE(rotary_positions_put_memories_at_zero_and_the_null_before_the_cache) {
  RmtConfig c = tiny_config();
  c.rotary_pos_emb = true;
  const RecurrentMemoryTransformer m = nudged(c);
  // 2 read, 3 tokens, 1 write, 2 cached keys
  const auto [q, k] = m.rotary_positions(2, 3, 1, 2);
  BOOST_TEST(q == (std::vector<int64_t>{0, 0, 10002, 10003, 10004, 0}), boost::test_tools::per_element());
  BOOST_TEST(k == (std::vector<int64_t>{10000, 10001, 9999, 0, 0, 10002, 10003, 10004, 0}),
             boost::test_tools::per_element());
  // P3, the reference's: the position list starts with the null's, so each key is one late.
  c.reference_parity = true;
  const RecurrentMemoryTransformer p = nudged(c);
  BOOST_TEST(p.rotary_positions(2, 3, 1, 2).second ==
                 (std::vector<int64_t>{9999, 10000, 10001, 0, 0, 10002, 10003, 10004, 0}),
             boost::test_tools::per_element());
  BOOST_TEST(p.rotary_positions(2, 3, 1, 0).second == (std::vector<int64_t>{9999, 0, 0, 10000, 10001, 10002, 0}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(positions_tell_the_cache_from_the_segment) {
  // P11. The reference's absolute positions restart at 0 every segment, and the XL cache keeps
  // the keys and values the previous segment computed: a cached token at position j wears the
  // same position as this segment's token j, so a query cannot tell which of the two stands
  // one step before it. Oracle, one layer (its keys come from token + position alone): swap
  // the bytes at position 1 between the cached segment and the current one. Under absolute
  // positions alone the later steps see the same set of keys and values, and their logits do
  // not move (to rounding); with mnemo's default (rotary on as well: the cache sits before the
  // segment, P3 fixed) or rotary alone they do. This is why the absolute-position RMT could not
  // learn to read the previous byte of its text streams (docs/arch/rmt.md, P11).
  const auto swap_effect = [](std::optional<bool> rotary, bool abs) {
    RmtConfig c = tiny_config();
    c.depth = 1;
    c.xl_mem_len = c.seq_len;  // the whole previous segment is cached
    c.rotary_pos_emb = rotary;
    c.abs_pos_emb = abs;
    const RecurrentMemoryTransformer m = nudged(c, 1, DType::f64);
    const auto later_steps = [&](std::vector<int32_t> cached, std::vector<int32_t> current) {
      Memory mem = run(m, {Tensor::from_ints({1, 5}, cached)}).memory[0];
      mem["write"] = m.initial_memory(1).at("write");  // only the cache carries the history
      return steps(run(m, {Tensor::from_ints({1, 5}, current)}, mem).logits[0], 2, 3);
    };
    const std::vector<double> a = later_steps({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}),
                              b = later_steps({1, 7, 3, 4, 5}, {6, 2, 8, 9, 10});
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    return worst;
  };
  BOOST_TEST(swap_effect(std::nullopt, true) > 1e-3);  // mnemo's default tells the two apart
  BOOST_TEST(swap_effect(true, false) > 1e-3);         // so does rotary alone
  BOOST_TEST(swap_effect(false, true) < 1e-9);         // the reference's positions cannot
}

BOOST_AUTO_TEST_CASE(position_defaults_follow_reference_parity) {
  // P11: absolute positions on and rotary on unless reference_parity, whose default is the
  // reference's (rotary off); a value set is kept.
  const auto rotary_of = [](bool parity, std::optional<bool> rot) {
    RmtConfig c = tiny_config();
    c.reference_parity = parity, c.rotary_pos_emb = rot;
    return *arch::resolved(c).rotary_pos_emb;
  };
  BOOST_TEST(rotary_of(false, {}));
  BOOST_TEST(!rotary_of(true, {}));
  BOOST_TEST(!rotary_of(false, false));
  BOOST_TEST(rotary_of(true, true));
  const RecurrentMemoryTransformer m = nudged(tiny_config());
  BOOST_TEST(m.pos_emb.has_value());
  BOOST_TEST(m.rotary.has_value());
}

BOOST_AUTO_TEST_CASE(rotary_only_model_uses_positions) {
  // Without absolute positions only rotary tells the tokens apart by place: swapping the first
  // two tokens changes the later steps' logits. Caches fill as with absolute positions.
  const RecurrentMemoryTransformer m = with([](RmtConfig& c) {
    c.abs_pos_emb = false;
    c.rotary_pos_emb = true;
  });
  const Tensor a = Tensor::from_ints({1, 5}, {1, 2, 3, 4, 5}), b = Tensor::from_ints({1, 5}, {2, 1, 3, 4, 5});
  const Run ra = run(m, {a, a}), rb = run(m, {b, b});
  BOOST_TEST(steps(ra.logits[1], 4, 1) != steps(rb.logits[1], 4, 1));
  BOOST_TEST(ra.memory[1].at("xl.0").dim(3) == 4);
}

BOOST_AUTO_TEST_CASE(recurrent_write_adds_the_last_memory) {
  // add_write_to_next_write_mem: the write slots start from memory_tokens + M_tau, so the
  // next memory depends on M_tau through the write rows too; with stop-gradient that extra
  // path carries no gradient.
  const Tensor h = random_tokens(1, 5, 11, 1), x = random_tokens(1, 5, 11, 2);
  const auto write_of = [&](const RecurrentMemoryTransformer& m) { return run(m, {h, x}).memory[1].at("write"); };
  const RecurrentMemoryTransformer off = nudged(tiny_config());
  const RecurrentMemoryTransformer on = with([](RmtConfig& c) { c.add_write_to_next_write_mem = true; });
  BOOST_TEST(max_abs_diff(write_of(on), write_of(off)) > 1e-4);
  // Oracle, one stream: the recurrent write is the plain model whose memory tokens are
  // memory_tokens + M_tau (one sum either way, so equal to the bit).
  {
    const Tensor h1 = random_tokens(1, 5, 11, 1), x1 = random_tokens(1, 5, 11, 2);
    const Memory m1 = run(on, {h1}).memory[0];
    RecurrentMemoryTransformer shifted = nudged(tiny_config());
    const Tensor M = m1.at("write").reshape({3, 16});
    std::vector<double> sum = shifted.memory_tokens.value.to_vector();
    const std::vector<double> add = M.to_vector();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = double(float(sum[i]) + float(add[i]));
    shifted.memory_tokens.value = Tensor::from({3, 16}, sum);
    const Run a = run(on, {x1}, m1), b = run(shifted, {x1}, m1);
    BOOST_TEST(max_abs_diff(a.memory[0].at("write"), b.memory[0].at("write")) == 0.0);
    BOOST_TEST(max_abs_diff(a.logits[0], b.logits[0]) == 0.0);
  }
  // The first segment has no memory to add: identical.
  BOOST_TEST(max_abs_diff(run(on, {h}).memory[0].at("write"), run(off, {h}).memory[0].at("write")) == 0.0);

  // Gradient of the next memory w.r.t. the incoming one: larger without the stop-gradient.
  const auto grad_norm = [&](bool stop) {
    RmtConfig c = tiny_config();
    c.add_write_to_next_write_mem = true;
    c.next_write_mem_stop_grad = stop;
    const RecurrentMemoryTransformer m = nudged(c);
    const Memory mem = run(m, {h}).memory[0];
    Tape tape;
    MemoryVars in = constants(tape, mem);
    in["write"] = tape.input(mem.at("write"));
    arch::SegmentOut o = m.forward(tape, x, in);
    // only the write rows read the incoming memory through Wm; tokens read it via Rm too
    tape.backward(sum(o.memory.at("write")));
    return max_abs(tape.grad(in.at("write")));
  };
  BOOST_TEST(grad_norm(false) != grad_norm(true));
}

BOOST_AUTO_TEST_CASE(first_segment_read_slots_option) {
  // always_have_read_memories: the first segment has m read slots holding R_emb; without it,
  // none. With a zero incoming memory both read R_emb alone (the reference's first call).
  const Tensor x = random_tokens(2, 5, 11, 9);
  const RecurrentMemoryTransformer with_slots = nudged(tiny_config());
  const RecurrentMemoryTransformer without = with([](RmtConfig& c) { c.always_have_read_memories = false; });
  BOOST_TEST(max_abs_diff(run(with_slots, {x}).logits[0], run(without, {x}).logits[0]) > 1e-4);
  // a model without first-segment slots still reads a carried memory
  Memory zero = with_slots.initial_memory(2);  // (2, 3, 16) zeros
  BOOST_TEST(max_abs_diff(run(without, {x}, zero).logits[0], run(with_slots, {x}).logits[0]) == 0.0);
}

BOOST_AUTO_TEST_CASE(mask_out_read_memories_hides_only_the_read_slots) {
  // P7 fixed: the option removes the read columns; it does not invert the mask.
  const RecurrentMemoryTransformer m = with([](RmtConfig& c) { c.mask_out_read_memories = true; });
  const Tensor x = random_tokens(2, 5, 11, 4);
  Memory a = m.initial_memory(2), b = a;
  Rng rng(6);
  b["write"] = Tensor::randn({2, 3, 16}, rng);
  const Run ra = run(m, {x}, a), rb = run(m, {x}, b);
  BOOST_TEST(max_abs_diff(ra.logits[0], rb.logits[0]) == 0.0);                     // nothing reads them
  BOOST_TEST(max_abs_diff(ra.memory[0].at("write"), rb.memory[0].at("write")) == 0.0);
  const Tensor y = random_tokens(2, 5, 11, 5);  // tokens still see each other causally
  BOOST_TEST(max_abs_diff(run(m, {y}).logits[0], ra.logits[0]) > 1e-4);
}

BOOST_AUTO_TEST_CASE(plain_causal_mask_option_runs) {
  // P5 fixed: memory_not_causal: false is one causal triangle over [read, tokens, write]
  // (in the reference it fails on shapes). Write rows then no longer all see each other.
  const RecurrentMemoryTransformer aware = nudged(tiny_config());
  const RecurrentMemoryTransformer plain = with([](RmtConfig& c) { c.memory_not_causal = false; });
  const Tensor x = random_tokens(2, 5, 11, 4);
  const Run ra = run(aware, {x}), rp = run(plain, {x});
  BOOST_TEST(max_abs_diff(ra.memory[0].at("write"), rp.memory[0].at("write")) > 1e-4);
  // tokens see the same keys under both rules in layer 1; read rows differ, so layer 2 differs
  BOOST_TEST(max_abs_diff(ra.logits[0], rp.logits[0]) > 1e-6);
}

BOOST_AUTO_TEST_CASE(embedding_gradient_fraction) {
  // The forward value is unchanged; the embeddings' gradient is scaled by f.
  const Tensor x = random_tokens(2, 5, 11, 4), y = random_tokens(2, 5, 11, 5);
  const auto emb_grad = [&](double f, Tensor* logits) {
    RmtConfig c = tiny_config();
    c.emb_gradient_frac = f;
    RecurrentMemoryTransformer m = nudged(c);
    Tape tape;
    arch::SegmentOut o = m.forward(tape, x, constants(tape, m.initial_memory(2)));
    *logits = o.logits.value();
    tape.backward(cross_entropy(o.logits, y));
    return std::pair{nn::find_param(m, "token_emb.weight").grad, nn::find_param(m, "to_logits.weight").grad};
  };
  Tensor l1, l2;
  const auto [e1, h1] = emb_grad(1.0, &l1);
  const auto [e2, h2] = emb_grad(0.1, &l2);
  BOOST_TEST(max_abs_diff(l1, l2) < 1e-6);
  BOOST_TEST(max_abs_diff(h1, h2) < 1e-6);  // other parameters as before
  const auto a = e1.to_vector(), b = e2.to_vector();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(0.1 * a[i] - b[i]));
  BOOST_TEST(worst < 1e-6);
  BOOST_TEST(max_abs(e1) > 1e-3);
}

BOOST_AUTO_TEST_CASE(dropout_only_while_training) {
  RmtConfig c = tiny_config();
  c.attn_dropout = 0.3;
  c.ff_dropout = 0.3;
  RecurrentMemoryTransformer m = nudged(c);
  const RecurrentMemoryTransformer same = nudged(tiny_config());
  const Tensor x = random_tokens(2, 5, 11, 4);
  nn::eval(m);
  BOOST_TEST(max_abs_diff(run(m, {x}).logits[0], run(same, {x}).logits[0]) == 0.0);
  nn::train(m);
  BOOST_TEST(max_abs_diff(run(m, {x}).logits[0], run(same, {x}).logits[0]) > 1e-4);
}

BOOST_AUTO_TEST_CASE(hyper_connection_streams) {
  // S = 1 is a plain pre-norm residual without mixing parameters; each hyper-connection of
  // S streams adds S (beta) + S (S+1) (alpha) + D (S+1) + D (dynamic) + 2 scales + D (norm).
  RmtConfig c = tiny_config();
  const int64_t D = c.dim, hc_count = 2 * c.depth;
  const auto count = [&](int64_t S) {
    c.num_residual_streams = S;
    RecurrentMemoryTransformer m = nudged(c);
    return nn::param_count(m);
  };
  const int64_t base = count(1);
  for (int64_t S : {2, 4})
    BOOST_TEST(count(S) - base == hc_count * (S + S * (S + 1) + D * (S + 1) + D + 2 + D), "S = " << S);
  c.num_residual_streams = 1;
  const RecurrentMemoryTransformer one = nudged(c);
  c.num_residual_streams = 4;
  const RecurrentMemoryTransformer four = nudged(c);
  const Tensor x = random_tokens(2, 5, 11, 4);
  BOOST_TEST(max_abs_diff(run(one, {x}).logits[0], run(four, {x}).logits[0]) > 1e-4);
}

BOOST_AUTO_TEST_CASE(rejects_bad_inputs_and_configs) {
  const RecurrentMemoryTransformer m = nudged(tiny_config());
  Tape tape;
  MemoryVars mem = constants(tape, m.initial_memory(2));
  BOOST_CHECK_THROW(m.forward(tape, random_tokens(2, 6, 11, 1), mem), Error);  // longer than seq_len
  mem["write"] = tape.constant(Tensor::zeros({2, 2, 16}));
  BOOST_CHECK_THROW(m.forward(tape, random_tokens(2, 5, 11, 1), mem), Error);  // wrong slot count
  RmtConfig c = tiny_config();
  c.abs_pos_emb = false;
  c.rotary_pos_emb = false;
  nn::Init init(1);
  BOOST_CHECK_THROW(RecurrentMemoryTransformer(init, c), Error);
  c = tiny_config();
  c.xl_mem_len = 6;
  BOOST_CHECK_THROW(RecurrentMemoryTransformer(init, c), Error);
}

BOOST_AUTO_TEST_CASE(whole_model_gradient_checks_in_f64) {
  int checked = 0;
  for (const gradcheck::Check& check : gradcheck::all()) {
    if (check.name.rfind("arch.rmt", 0) != 0) continue;
    const gradcheck::Result r = gradcheck::run(check);
    BOOST_TEST(r.ok, r.summary());
    ++checked;
  }
  BOOST_TEST(checked == 3);
}

BOOST_AUTO_TEST_SUITE_END()
