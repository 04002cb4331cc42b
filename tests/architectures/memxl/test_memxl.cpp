// Memory Transformer-XL: memory layout and update rule (P5), causality, the intended
// behaviour where the reference deviates (P1 normalised memories, P2 the writer's head merge
// against a hand computation, P4 positions), parameter names, and the gradient reach of the
// long memory under the trainer's BPTT windows.
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "architectures/memxl.h"
#include "autograd/optim/adamw.h"
#include "experiments/bptt.h"
#include "experiments/config.h"
#include "experiments/models.h"
#include "layers/relative_bias.h"
#include "tests/support/tensor_compare.h"

using mnemo::test::max_abs_diff;

using namespace mnemo;
using namespace mnemo::arch;

namespace {

MemXLConfig tiny() {
  return {.vocab = 11, .dim = 16, .depth = 2, .heads = 2, .seq_len = 4, .mem_len = 4, .lmem_len = 3};
}

Tensor ids(int64_t B, int64_t T, uint64_t seed, int32_t V = 11) {
  Rng rng(seed);
  std::vector<int32_t> v(size_t(B * T));
  for (auto& x : v) x = int32_t(rng.randint(V));
  return Tensor::from_ints({B, T}, v);
}

struct Step {
  Tensor logits;
  Memory memory;
};

Step run(const SegmentModel& m, const Tensor& x, const Memory& mem) {
  Tape tape;
  SegmentOut o = m.forward(tape, x, constants(tape, mem));
  Step s{o.logits.value(), values(o.memory)};
  return s;
}

// Memory after running `n` random full segments from the initial memory.
Memory history(const SegmentModel& m, int64_t B, int64_t T, int n, uint64_t seed = 50) {
  Memory mem = m.initial_memory(B);
  for (int i = 0; i < n; ++i) mem = run(m, ids(B, T, seed + uint64_t(i)), mem).memory;
  return mem;
}

bool has_name(nn::Module& m, const std::string& name) {
  for (auto& [n, p] : nn::named_params(m))
    if (n == name) return true;
  return false;
}

void randomise_positions(MemoryTransformerXL& m, uint64_t seed) {  // R starts at zero
  Rng rng(seed);
  m.pos_emb.value = Tensor::randn(m.pos_emb.value.shape(), rng, m.pos_emb.value.dtype(), 0.5);
}

Tensor scaled(const Tensor& t, double c) {
  std::vector<double> v = t.to_vector();
  for (double& x : v) x *= c;
  return Tensor::from(t.shape(), v, t.dtype());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memxl)

BOOST_AUTO_TEST_CASE(memory_layout_fill_up_and_full_segment_writes) {
  nn::Init init(1);
  MemXLConfig c = tiny();
  c.memory_layers = {2};  // only layer 2 keeps a short memory
  c.mem_len = 6;
  MemoryTransformerXL m(init, c);
  const Memory m0 = m.initial_memory(2);
  BOOST_TEST(m0.at("short").shape() == (Shape{1, 2, 0, 16}));
  BOOST_TEST(m0.at("long").shape() == (Shape{2, 0, 16}));
  // T = 4, mem_len = 6: the short memory fills 4, 6, 6; the long memory has its 3 slots at once
  const int64_t fill[] = {4, 6, 6};
  Memory mem = m0;
  for (int s = 0; s < 3; ++s) {
    Step r = run(m, ids(2, 4, 10 + uint64_t(s)), mem);
    BOOST_TEST(r.logits.shape() == (Shape{2, 4, 11}));
    BOOST_TEST(r.memory.at("short").shape() == (Shape{1, 2, fill[s], 16}));
    BOOST_TEST(r.memory.at("long").shape() == (Shape{2, 3, 16}));
    if (s > 0) BOOST_TEST(max_abs_diff(r.memory.at("long"), mem.at("long")) > 1e-6);  // rewritten every segment
    mem = r.memory;
  }
  // P5: a partial segment (t = 3 < T, though >= mem_len 2 below) leaves both memories as they were
  Step partial = run(m, ids(2, 3, 20), mem);
  BOOST_TEST(partial.logits.shape() == (Shape{2, 3, 11}));
  BOOST_TEST(max_abs_diff(partial.memory.at("short"), mem.at("short")) == 0.0);
  BOOST_TEST(max_abs_diff(partial.memory.at("long"), mem.at("long")) == 0.0);

  // the reference writes whenever t >= mem_len, partial or not (P5)
  nn::Init i2(1), i3(1);
  MemXLConfig small = tiny();
  small.mem_len = 2;
  MemoryTransformerXL intended(i2, small);
  small.reference_parity = true;
  MemoryTransformerXL parity(i3, small);
  const Tensor x3 = ids(2, 3, 21);
  BOOST_TEST(run(intended, x3, intended.initial_memory(2)).memory.at("long").dim(1) == 0);
  const Step p = run(parity, x3, parity.initial_memory(2));
  BOOST_TEST(p.memory.at("long").dim(1) == 3);
  BOOST_TEST(p.memory.at("short").shape() == (Shape{2, 2, 2, 16}));
}

BOOST_AUTO_TEST_CASE(short_memory_holds_the_raw_layer_inputs) {
  nn::Init init(2);
  MemoryTransformerXL m(init, tiny());
  const Tensor x1 = ids(1, 4, 1), x2 = ids(1, 4, 2);
  const Memory m1 = run(m, x1, m.initial_memory(1)).memory;
  const Memory m2 = run(m, x2, m1).memory;
  // layer 1's input is the raw embedding E[x]: not normalised (P1 keeps the reference's storage)
  Tape tape;
  const Tensor e1 = m.emb(tape, x1).value(), e2 = m.emb(tape, x2).value();  // (1, 4, D)
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t d = 0; d < 16; d += 5) {
      BOOST_TEST(m1.at("short").at({0, 0, i, d}) == e1.at({0, i, d}));
      BOOST_TEST(m2.at("short").at({0, 0, i, d}) == e2.at({0, i, d}));  // mem_len = T: all replaced
    }
}

BOOST_AUTO_TEST_CASE(causal_with_filled_memories) {
  nn::Init init(3);
  MemXLConfig c = tiny();
  c.num_mem_kv = 2;
  MemoryTransformerXL m(init, c);
  randomise_positions(m, 7);
  const Memory mem = history(m, 1, 4, 2);
  const Tensor a = Tensor::from_ints({1, 4}, {1, 2, 3, 4}), b = Tensor::from_ints({1, 4}, {1, 2, 9, 0});
  const Tensor la = run(m, a, mem).logits, lb = run(m, b, mem).logits;
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t v = 0; v < 11; ++v) BOOST_TEST(la.at({0, t, v}) == lb.at({0, t, v}));
  BOOST_TEST(max_abs_diff(la, lb) > 1e-4);
}

BOOST_AUTO_TEST_CASE(both_memories_change_the_next_segment) {
  nn::Init init(4);
  MemoryTransformerXL m(init, tiny());
  const Memory mem = history(m, 2, 4, 2);
  const Tensor x = ids(2, 4, 99);
  const Tensor base = run(m, x, mem).logits;
  Memory no_long = mem, no_short = mem;
  no_long.at("long") = m.initial_memory(2).at("long");
  no_short.at("short") = m.initial_memory(2).at("short");
  BOOST_TEST(max_abs_diff(run(m, x, no_long).logits, base) > 1e-4);
  BOOST_TEST(max_abs_diff(run(m, x, no_short).logits, base) > 1e-4);
}

BOOST_AUTO_TEST_CASE(p1_memories_are_normalised_when_read) {
  // Intended: each layer normalises memory slots with its pre-norm, so scaling every stored
  // slot by 3 changes nothing (up to LayerNorm's eps). The reference projects them raw.
  for (bool parity : {false, true}) {
    nn::Init init(5);
    MemXLConfig c = tiny();
    c.reference_parity = parity;
    MemoryTransformerXL m(init, c);
    const Memory mem = history(m, 2, 4, 2);
    Memory big = mem;
    for (auto& [name, t] : big) t = scaled(t, 3.0);
    const Tensor x = ids(2, 4, 77);
    const double d = max_abs_diff(run(m, x, mem).logits, run(m, x, big).logits);
    BOOST_TEST_MESSAGE("parity " << parity << ": logits change by " << d);
    if (parity)
      BOOST_TEST(d > 1e-3);
    else
      BOOST_TEST(d < 1e-4);
  }
}

BOOST_AUTO_TEST_CASE(p4_position_rows) {
  nn::Init i1(6), i2(6);
  MemXLConfig c = tiny();  // T 4, mem_len 4, lmem_len 3: P = 11, D = 16
  c.num_mem_kv = 2;
  MemoryTransformerXL intended(i1, c);
  c.reference_parity = true;
  MemoryTransformerXL parity(i2, c);
  // steady state: keys [2 persistent, 3 long, 4 short, 4 tokens] = 13, query r = 1 at key 10
  const int64_t n = 13, t = 4;
  BOOST_TEST(intended.position_row(1, 0, t, n, 4) == -1);   // persistent: no position
  BOOST_TEST(intended.position_row(1, 10, t, n, 4) == 10);  // itself: distance 0 -> row P - 1
  BOOST_TEST(intended.position_row(1, 2, t, n, 4) == 2);    // oldest long slot: distance 8
  BOOST_TEST(intended.position_row(1, 11, t, n, 4) == -1);  // the future
  // the reference: end = min(Ls + D + T, P) = 11 here too, but persistent keys are positioned
  // and those before row T - 1 - r = 2 get nothing
  BOOST_TEST(parity.position_row(1, 10, t, n, 4) == 10);
  BOOST_TEST(parity.position_row(1, 2, t, n, 4) == 2);
  BOOST_TEST(parity.position_row(1, 1, t, n, 4) == -1);
  BOOST_TEST(parity.position_row(3, 1, t, n, 4) == -1);  // distance 11: before the table
  // segment 0 (no memory): keys [2 persistent, 4 tokens]; the reference's end is
  // min(0 + 16 + 4, 11) = 11, so token distances use the same rows as later segments
  BOOST_TEST(parity.position_row(0, 2, t, 6, 0) == 10);
  BOOST_TEST(parity.position_row(3, 2, t, 6, 0) == 7);
  BOOST_TEST(parity.position_row(3, 1, t, 6, 0) == 6);   // a persistent key takes the row in front
  BOOST_TEST(intended.position_row(3, 1, t, 6, 0) == -1);
  // D < mem_len + lmem_len: in segment 0 the reference's window ends at Ls + D + T = 12 < P = 16,
  // so distance 0 reads row 11 there and row 15 once the short memory is full (P4)
  nn::Init i3(6), i4(6);
  MemXLConfig w{.vocab = 5, .dim = 8, .depth = 1, .heads = 2, .seq_len = 4, .mem_len = 8, .lmem_len = 4};
  MemoryTransformerXL by_distance(i3, w);
  w.reference_parity = true;
  MemoryTransformerXL reference(i4, w);
  BOOST_TEST(reference.position_row(0, 0, 4, 4, 0) == 11);
  BOOST_TEST(reference.position_row(0, 12, 4, 16, 8) == 15);
  BOOST_TEST(by_distance.position_row(0, 0, 4, 4, 0) == 15);
  BOOST_TEST(by_distance.position_row(0, 12, 4, 16, 8) == 15);
}

BOOST_AUTO_TEST_CASE(p2_writer_head_merge_by_hand) {
  // The writer's linear attention on D = 8 (4 heads of 2), 3 slots and 2 context rows,
  // computed here element by element, for both head merges.
  for (bool parity : {false, true}) {
    nn::Init init(8, DType::f64);
    MemXLConfig c{.vocab = 5, .dim = 8, .depth = 1, .heads = 2, .seq_len = 2, .mem_len = 2, .lmem_len = 3};
    c.reference_parity = parity;
    MemoryTransformerXL m(init, c);
    const nn::LinearSelfAttention& att = m.writer.attn;
    const int64_t S = 3, N = 2, D = 8, H = 4, d = 2, L = S + N;
    Rng rng(31);
    const Tensor x = Tensor::randn({1, S, D}, rng, DType::f64), ctx = Tensor::randn({1, N, D}, rng, DType::f64);
    const Tensor Wq = att.wq.value, Wkv = att.wkv.value, Wo = att.wout.value;
    // n = LN(x) without affine; rows of [n; ctx]
    std::vector<std::vector<double>> rows(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(D)));
    for (int64_t s = 0; s < S; ++s) {
      double mu = 0, var = 0;
      for (int64_t j = 0; j < D; ++j) mu += x.at({0, s, j}) / D;
      for (int64_t j = 0; j < D; ++j) var += (x.at({0, s, j}) - mu) * (x.at({0, s, j}) - mu) / D;
      for (int64_t j = 0; j < D; ++j) rows[size_t(s)][size_t(j)] = (x.at({0, s, j}) - mu) / std::sqrt(var + 1e-5);
    }
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < D; ++j) rows[size_t(S + i)][size_t(j)] = ctx.at({0, i, j});
    auto proj = [&](const Tensor& W, int64_t row, int64_t col) {
      double acc = 0;
      for (int64_t j = 0; j < D; ++j) acc += rows[size_t(row)][size_t(j)] * W.at({j, col});
      return acc;
    };
    // o[h][s][e] = sum_f softmax_f(q[s, h d + .])[f] * sum_l softmax_l(k[., h d + f])[l] v[l, h d + e]
    std::vector<double> o(size_t(H * S * d));
    for (int64_t h = 0; h < H; ++h) {
      double ctxm[2][2] = {{0, 0}, {0, 0}};
      for (int64_t f = 0; f < d; ++f) {
        double z = 0;
        for (int64_t l = 0; l < L; ++l) z += std::exp(proj(Wkv, l, h * d + f));
        for (int64_t l = 0; l < L; ++l)
          for (int64_t e = 0; e < d; ++e)
            ctxm[f][e] += std::exp(proj(Wkv, l, h * d + f)) / z * proj(Wkv, l, D + h * d + e);
      }
      for (int64_t s = 0; s < S; ++s) {
        const double q0 = proj(Wq, s, h * d), q1 = proj(Wq, s, h * d + 1);
        const double p0 = std::exp(q0) / (std::exp(q0) + std::exp(q1)), p1 = 1 - p0;
        for (int64_t e = 0; e < d; ++e) o[size_t((h * S + s) * d + e)] = p0 * ctxm[0][e] + p1 * ctxm[1][e];
      }
    }
    // merge: intended [s, h d + e] = o[h][s][e]; the reference reads the (H, d, S) buffer as (S, D)
    std::vector<double> merged(size_t(S * D));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t e = 0; e < d; ++e) {
          const int64_t flat = parity ? (h * d + e) * S + s : s * D + h * d + e;
          merged[size_t(flat)] = o[size_t((h * S + s) * d + e)];
        }
    Tape tape;
    const Tensor y = att(tape.constant(x), tape.constant(ctx)).value();  // (1, S, D)
    double worst = 0;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t j = 0; j < D; ++j) {
        double want = 0;
        for (int64_t i = 0; i < D; ++i) want += merged[size_t(s * D + i)] * Wo.at({i, j});
        worst = std::max(worst, std::abs(y.at({0, s, j}) - want));
      }
    BOOST_TEST(worst < 1e-12, "parity " << parity << ": writer output differs from the hand computation by " << worst);
  }
}

BOOST_AUTO_TEST_CASE(parameter_names_follow_the_reference) {
  nn::Init init(9);
  MemXLConfig c = tiny();
  c.emb_dim = 8, c.mogrify = true, c.num_mem_kv = 2, c.one_kv_head = true;
  MemoryTransformerXL m(init, c);
  for (const char* n : {"token_emb.weight", "to_model_dim.weight", "pos_emb", "attn_layers.0.fn.norm.weight",
                        "attn_layers.0.fn.fn.mem_kv", "attn_layers.1.fn.fn.to_kv.weight",
                        "attn_layers.1.fn.fn.to_out.bias", "attn_layers.0.gru.Ua.weight",
                        "attn_layers.0.mogrify.Q.0.weight", "ff_layers.1.fn.fn.w1.bias",
                        "ff_layers.0.gru.U.bias", "to_emb_dim.weight", "to_logits.bias", "memory_network.depth_emb",
                        "memory_network.init_lmem", "memory_network.lmem_pos_emb", "memory_network.mem_kv",
                        "memory_network.attn.to_q", "memory_network.attn.to_kv", "memory_network.gate.Wc.weight"})
    BOOST_TEST(has_name(m, n), n);
  BOOST_TEST(nn::find_param(m, "attn_layers.0.fn.fn.to_kv.weight").value.shape() == (Shape{16, 16}));  // 2 d
  BOOST_TEST(nn::find_param(m, "pos_emb").value.shape() == (Shape{2, 4 + 4 + 3, 8}));
  BOOST_TEST(nn::find_param(m, "memory_network.depth_emb").value.shape() == (Shape{2, 1, 1, 1}));
  c.gated_residual = false;
  MemoryTransformerXL plain(init, c);
  BOOST_TEST(!has_name(plain, "attn_layers.0.gru.Ua.weight"));
  BOOST_TEST(run(plain, ids(1, 4, 3), plain.initial_memory(1)).logits.shape() == (Shape{1, 4, 11}));
}

BOOST_AUTO_TEST_CASE(writer_keep_init_shifts_only_the_keep_gate_bias) {
  // 0.5 is the reference's init; another value moves Uc's bias by logit(keep) and nothing else.
  std::vector<NamedParams> params;
  std::vector<std::unique_ptr<MemoryTransformerXL>> models;
  for (double keep : {0.5, 0.9}) {
    MemXLConfig c = tiny();
    c.writer_keep_init = keep;
    nn::Init init(4);
    models.push_back(std::make_unique<MemoryTransformerXL>(init, c));
    params.push_back(nn::named_params(*models.back()));
  }
  BOOST_TEST_REQUIRE(params[0].size() == params[1].size());
  for (size_t i = 0; i < params[0].size(); ++i) {
    const std::vector<double> a = params[0][i].second->value.to_vector(), b = params[1][i].second->value.to_vector();
    const double shift = params[0][i].first == "memory_network.gate.Uc.bias" ? std::log(0.9 / 0.1) : 0.0;
    BOOST_TEST_CONTEXT(params[0][i].first) {
      for (size_t j = 0; j < a.size(); ++j) BOOST_TEST(b[j] - a[j] == shift, boost::test_tools::tolerance(1e-6));
    }
  }
  MemXLConfig bad = tiny();
  bad.writer_keep_init = 0;
  nn::Init init(4);
  try {
    MemoryTransformerXL m(init, bad);
    BOOST_FAIL("writer_keep_init 0 was accepted");
  } catch (const arch::OptionError& e) {
    BOOST_TEST(e.key() == "writer_keep_init");
  }
}

BOOST_AUTO_TEST_CASE(gradient_reach_follows_the_bptt_window) {
  // S = 4 segments; only segment k's tokens count. init_lmem enters only the first write (end of
  // segment 0), so it gets gradient from segment k exactly when one window holds segments 0..k
  // (w > k); the writer's gate gets some whenever the window holds any write before k.
  nn::Init init(10);
  MemoryTransformerXL m(init, tiny());
  const int64_t B = 2, S = 4, T = 4;
  Rng rng(3);
  std::vector<int32_t> rows;
  for (int64_t i = 0; i < B * (S * T + 1); ++i) rows.push_back(int32_t(rng.randint(11)));
  const Param& init_lmem = nn::find_param(m, "memory_network.init_lmem");
  const Param& gate_w = nn::find_param(m, "memory_network.gate.U.weight");
  const Param& first_layer = nn::find_param(m, "attn_layers.0.fn.fn.to_q.weight");
  auto nonzero = [](const Param& p) {
    if (!p.grad.defined()) return false;
    for (double v : p.grad.to_vector())
      if (v != 0) return true;
    return false;
  };
  for (int64_t k = 1; k < S; ++k) {
    std::vector<uint8_t> mask(size_t(B * S * T), 0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < T; ++i) mask[size_t(b * S * T + k * T + i)] = 1;
    data::Batch batch = data::make_batch(rows, B, S, T, mask);
    batch.reset_memory = true;
    for (int64_t w = 1; w <= S; ++w) {
      for (Param* p : nn::params(m)) p->zero_grad();
      experiments::train_batch(m, batch, {}, {.mode = experiments::BpttMode::truncated, .window = w});
      BOOST_TEST(nonzero(init_lmem) == (w > k), "k " << k << ", window " << w);
      BOOST_TEST(nonzero(gate_w) == (k % w != 0), "k " << k << ", window " << w);
      BOOST_TEST(nonzero(first_layer));  // the segment's own loss
    }
  }
}

BOOST_AUTO_TEST_CASE(replay_gives_the_gradients_of_full_bptt) {
  nn::Init init(11);
  MemXLConfig c = tiny();
  c.num_mem_kv = 1;
  MemoryTransformerXL m(init, c);
  randomise_positions(m, 12);
  const int64_t B = 2, S = 3, T = 4;
  Rng rng(4);
  std::vector<int32_t> rows;
  for (int64_t i = 0; i < B * (S * T + 1); ++i) rows.push_back(int32_t(rng.randint(11)));
  data::Batch batch = data::make_batch(rows, B, S, T);
  batch.reset_memory = true;
  auto grads = [&](experiments::BpttMode mode) {
    for (Param* p : nn::params(m)) p->zero_grad();
    const double loss = experiments::train_batch(m, batch, {}, {.mode = mode}).loss;
    std::vector<double> g;
    for (Param* p : nn::params(m))
      for (double v : p->grad.defined() ? p->grad.to_vector() : std::vector<double>(size_t(p->value.numel()), 0.0))
        g.push_back(v);
    return std::make_pair(loss, g);
  };
  const auto full = grads(experiments::BpttMode::full), replay = grads(experiments::BpttMode::replay);
  BOOST_TEST(std::abs(full.first - replay.first) < 1e-6);
  double worst = 0, largest = 0;
  for (size_t i = 0; i < full.second.size(); ++i) {
    worst = std::max(worst, std::abs(full.second[i] - replay.second[i]));
    largest = std::max(largest, std::abs(full.second[i]));
  }
  BOOST_TEST(worst < 1e-5 * largest);
}

BOOST_AUTO_TEST_CASE(training_smoke_loss_drops) {
  // Each row repeats a random period-5 pattern, longer than a segment of 4: from the second
  // segment on every target is the token 4 back, found only in memory (floor ~ ln(11) / 3).
  const int64_t B = 4, S = 3, T = 4, V = 11;
  nn::Init init(12);
  MemXLConfig c = tiny();
  c.dim = 32;
  MemoryTransformerXL m(init, c);
  AdamW opt(nn::named_params(m), {.lr = 3e-3, .weight_decay = 0});  // 1e-2 is too much for the nBRC gates
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    Rng rng(100 + uint64_t(step));
    std::vector<int32_t> rows;
    for (int64_t b = 0; b < B; ++b) {
      int32_t p[5];
      for (auto& x : p) x = int32_t(rng.randint(V));
      for (int64_t i = 0; i < S * T + 1; ++i) rows.push_back(p[i % 5]);
    }
    data::Batch batch = data::make_batch(rows, B, S, T);
    batch.reset_memory = true;
    opt.zero_grad();
    const auto r = experiments::train_batch(m, batch, {}, {.mode = experiments::BpttMode::full});
    opt.step();
    if (step == 0) first = r.loss;
    if (step >= 190) last += r.loss / 10;  // the mean of the last 10 batches
  }
  BOOST_TEST_MESSAGE("memxl loss " << first << " -> " << last);
  BOOST_TEST(std::isfinite(last));
  BOOST_TEST(last < 0.6 * first);
}

BOOST_AUTO_TEST_CASE(every_option_trains_through_two_segments) {
  // Factorised embedding, a memory-layer subset, mogrified gates, GLU feed-forward, one shared
  // key/value head, persistent slots, three write rounds and every dropout: two segments on one
  // tape in train mode; every parameter but those only the unused paths reach gets a finite,
  // non-zero gradient, and dropout makes train differ from eval.
  nn::Init init(13);
  MemXLConfig c{.vocab = 11, .dim = 16, .depth = 3, .heads = 4, .seq_len = 4, .emb_dim = 8, .memory_layers = {3, 2},
                .mem_len = 2, .lmem_len = 3, .mogrify = true, .attn_dropout = 0.1, .ff_dropout = 0.1,
                .attn_layer_dropout = 0.1, .ff_glu = true, .one_kv_head = true, .num_mem_kv = 2,
                .mem_write_iters = 3};
  MemoryTransformerXL m(init, c);
  BOOST_TEST(m.cfg.memory_layers == (std::vector<int64_t>{2, 3}));  // stacked in layer order
  BOOST_TEST(m.memory_index(0) == -1);
  BOOST_TEST(m.memory_index(2) == 1);
  BOOST_TEST(nn::find_param(m, "ff_layers.0.fn.fn.w1.weight").value.shape() == (Shape{128, 16}));  // GLU: 2 x 4D
  randomise_positions(m, 14);
  const Tensor x1 = ids(2, 4, 1), x2 = ids(2, 4, 2);
  Tape tape;
  tape.set_seed(5);
  MemoryVars mem;
  for (auto& [name, t] : m.initial_memory(2)) mem[name] = tape.constant(t);
  SegmentOut o1 = m.forward(tape, x1, mem);
  BOOST_TEST(o1.memory.at("short").value().shape() == (Shape{2, 2, 2, 16}));
  SegmentOut o2 = m.forward(tape, x2, o1.memory);
  tape.backward(cross_entropy(o2.logits, x1) + cross_entropy(o1.logits, x2));
  for (auto& [name, p] : nn::named_params(m)) {
    BOOST_REQUIRE_MESSAGE(p->grad.defined(), name << " got no gradient");
    double norm = 0;
    for (double v : p->grad.to_vector()) norm += v * v;
    BOOST_TEST(std::isfinite(norm), name);
    BOOST_TEST(norm > 0.0, name << " has a zero gradient");
  }
  const Tensor train_logits = o2.logits.value();
  nn::eval(m);
  Memory m1;
  for (auto& [name, v] : o1.memory) m1[name] = v.value();
  BOOST_TEST(max_abs_diff(run(m, x2, m1).logits, train_logits) > 1e-4);
}

BOOST_AUTO_TEST_CASE(experiment_configs_load_and_build) {
  const std::string dir = std::string(MNEMO_SOURCE_DIR) + "/experiments/configs/";
  for (const char* name : {"memxl_copy.yaml", "memxl_shakespeare.yaml", "memxl_enwik8.yaml"}) {
    // the enwik8 model is built at a tenth of its width: the options are what is checked here
    const std::vector<std::string> small = std::string(name) == "memxl_enwik8.yaml"
                                               ? std::vector<std::string>{"model.dim=64"}
                                               : std::vector<std::string>{};
    const experiments::ExperimentConfig cfg = experiments::load_config(dir + name, small);
    BOOST_TEST(cfg.model.arch == "memxl");
    auto model = experiments::build_model(cfg);
    auto& mx = dynamic_cast<MemoryTransformerXL&>(*model);
    BOOST_TEST(mx.cfg.seq_len == cfg.data.segment_len);
    if (std::string(name) == "memxl_enwik8.yaml") {
      BOOST_TEST(mx.cfg.memory_layers == (std::vector<int64_t>{6, 7, 8}));
      BOOST_TEST(mx.cfg.lmem_len == 128);
      BOOST_TEST(mx.initial_memory(4).at("short").shape() == (Shape{3, 4, 0, 64}));
    }
  }
  // model.memxl is read strictly
  experiments::ExperimentConfig cfg;
  cfg.model.arch = "memxl", cfg.model.dim = 16, cfg.model.heads = 2, cfg.model.depth = 2;
  cfg.data.segment_len = 4;
  BOOST_CHECK_THROW(experiments::set_arch_options(cfg, "{mem_len: 4, lmem_lenn: 2}"), Error);
  BOOST_CHECK_THROW(experiments::set_arch_options(cfg, "{memory_layers: [3]}"), Error);  // depth 2
  experiments::set_arch_options(cfg, "{reference_parity: true, num_mem_kv: 2, detach_hiddens: false}");
  auto built = experiments::build_model(cfg);
  auto& mx = dynamic_cast<MemoryTransformerXL&>(*built);
  BOOST_TEST(mx.cfg.reference_parity);
  BOOST_TEST(mx.cfg.num_mem_kv == 2);
  BOOST_TEST(!mx.cfg.detach_hiddens);
  BOOST_TEST(mx.cfg.mem_len == 4);   // defaults: segment_len
  BOOST_TEST(mx.cfg.lmem_len == 4);  // and mem_len
}

// MemXL's rows of R (P4 intended and reference_parity, persistent slots, a short memory that
// fills up, partial segments) all have the band form the fused attention reads through its
// shifted index, and the band expands to exactly the (B, H, t, n_keys) gather it replaces.
BOOST_AUTO_TEST_CASE(position_rows_are_a_band) {
  for (const bool parity : {false, true}) {
    MemXLConfig c{.vocab = 11, .dim = 16, .depth = 2, .heads = 2, .seq_len = 6, .mem_len = 6, .lmem_len = 3,
                  .num_mem_kv = 2, .reference_parity = parity};
    nn::Init init(5);
    MemoryTransformerXL m(init, c);
    randomise_positions(m, 11);
    Tape tape;
    Var R = tape.param(m.pos_emb);
    Rng rng(12);
    for (const int64_t t : {int64_t(1), int64_t(4), int64_t(6)})
      for (const int64_t Ls : {int64_t(0), int64_t(3), int64_t(6)})
        for (const int64_t Ll : {int64_t(0), int64_t(3)}) {
          const int64_t n_keys = c.num_mem_kv + Ll + Ls + t;
          std::vector<int64_t> rows(size_t(t * n_keys));
          for (int64_t r = 0; r < t; ++r)
            for (int64_t k = 0; k < n_keys; ++k) rows[size_t(r * n_keys + k)] = m.position_row(r, k, t, n_keys, Ls);
          Var q = tape.constant(Tensor::randn({2, c.heads, t, c.dim / c.heads}, rng));
          const BandBias b = nn::band_row_logits(R, q, n_keys, rows, 0.5);
          const Tensor dense = nn::gather_row_logits(R, q, n_keys, rows, 0.5).value();
          BOOST_TEST_CONTEXT((parity ? "parity" : "default") << ", t " << t << ", Ls " << Ls << ", Ll " << Ll) {
            BOOST_TEST_REQUIRE(b.defined());
            BOOST_TEST(b.band.dim(3) <= n_keys);  // the band itself, not the wide fallback
            BOOST_TEST(max_abs_diff(band_to_dense(b, n_keys).value(), dense) == 0.0);
          }
        }
  }
}


BOOST_AUTO_TEST_SUITE_END()
