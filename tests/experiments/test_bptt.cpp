// The three BPTT modes on a tiny recurrent model whose memory carries gradient:
// memory-replay gradients equal full-BPTT gradients; truncated(k) cuts exactly at window
// edges; dropout draws the same masks in the replayed segments.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>

#include "autograd/ops/ops.h"
#include "experiments/bptt.h"
#include "experiments/replay_schedule.h"
#include "layers/init.h"

using namespace mnemo;
using namespace mnemo::experiments;

namespace {

// h' = tanh(mean_t(x) W + h U);  logits = dropout(x + h) O^T, x = E[tokens]
struct TinyRecurrent : arch::SegmentModel {
  Param E, W, U, O;
  int64_t D;
  double p_drop;
  mutable int64_t forwards = 0;  // segment forwards run, taped or not
  TinyRecurrent(nn::Init& init, int64_t V, int64_t d, double p)
      : E(init.normal({V, d}, 0.5)), W(init.normal({d, d}, 0.3)), U(init.normal({d, d}, 0.3)),
        O(init.normal({V, d}, 0.5)), D(d), p_drop(p) {}

  arch::Memory initial_memory(int64_t B) const override { return {{"h", Tensor::zeros({B, D}, E.value.dtype())}}; }

  arch::SegmentOut forward(Tape& t, const Tensor& tokens, const arch::MemoryVars& mem) const override {
    ++forwards;
    Var h = mem.at("h");                                                              // (B, D)
    Var x = embedding(t.param(E), tokens);                                            // (B, T, D)
    Var h_next = tanh(matmul(mean(x, 1), t.param(W)) + matmul(h, t.param(U)));        // (B, D)
    Var y = dropout(x + reshape(h, {h.dim(0), 1, D}), p_drop, t.next_seed(), p_drop > 0);
    return {matmul(y, t.param(O), {.trans_b = true}), {{"h", h_next}}};              // (B, T, V)
  }
  void visit(nn::ParamVisitor& v) override {
    v("E", E);
    v("W", W);
    v("U", U);
    v("O", O);
  }
};

data::Batch make(int64_t B, int64_t S, int64_t T, int64_t V, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> rows(size_t(B * (S * T + 1)));
  for (auto& r : rows) r = int32_t(rng.randint(V));
  return data::make_batch(rows, B, S, T);
}

std::vector<std::vector<double>> grads_of(TinyRecurrent& m, const data::Batch& b, BpttOptions o,
                                          arch::Memory mem = {}) {
  for (Param* p : nn::params(m)) p->zero_grad();
  if (mem.empty()) mem = m.initial_memory(b.batch_size());
  train_batch(m, b, mem, o);
  std::vector<std::vector<double>> g;
  for (Param* p : nn::params(m)) g.push_back(p->grad.defined() ? p->grad.to_vector() : std::vector<double>());
  return g;
}

double max_rel_diff(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  // a parameter no gradient reached (an empty vector) counts as zeros
  BOOST_REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const size_t n = std::max(a[i].size(), b[i].size());
    BOOST_REQUIRE((a[i].empty() || b[i].empty() || a[i].size() == b[i].size()));
    for (size_t j = 0; j < n; ++j) {
      const double x = a[i].empty() ? 0.0 : a[i][j], y = b[i].empty() ? 0.0 : b[i][j];
      worst = std::max(worst, std::abs(x - y) / (1e-12 + std::abs(y)));
    }
  }
  return worst;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(bptt)

BOOST_AUTO_TEST_CASE(replay_gradients_equal_full_bptt) {
  for (double p : {0.0, 0.2}) {
    nn::Init init(3, DType::f64);
    TinyRecurrent m(init, 11, 6, p);
    const data::Batch b = make(2, 5, 3, 11, 7);
    const auto full = grads_of(m, b, {.mode = BpttMode::full, .seed = 4});
    m.forwards = 0;
    const auto rep = grads_of(m, b, {.mode = BpttMode::replay, .seed = 4});
    BOOST_TEST_CONTEXT("dropout " << p) {
      BOOST_TEST(max_rel_diff(rep, full) < 1e-9);
      BOOST_TEST(m.forwards == 2 * 5 - 1);  // the last segment runs taped only
      BOOST_TEST(max_rel_diff(full, grads_of(m, b, {.mode = BpttMode::truncated, .window = 5, .seed = 4})) < 1e-12);
    }
  }
}

BOOST_AUTO_TEST_CASE(replay_with_recomputed_memories_equals_full_bptt) {
  // Odd and even segment counts, from the fewest slots to more than needed, with dropout and
  // memory dropout, whose draws must repeat in every recomputed forward.
  for (int64_t S : {1, 2, 5, 8, 13}) {
    for (int64_t slots : {1, 2, 3, 4, 6}) {
      if (slots < ReplaySchedule::least_slots(S)) continue;
      nn::Init init(3, DType::f64);
      TinyRecurrent m(init, 11, 6, 0.2);
      const data::Batch b = make(2, S, 3, 11, 7);
      const BpttOptions full{.mode = BpttMode::full, .seed = 4, .memory_dropout = {{"h", 0.3}}};
      BpttOptions rep = full;
      rep.mode = BpttMode::replay;
      rep.replay_recompute = true;
      rep.replay_snapshots = slots;
      const auto g_full = grads_of(m, b, full);
      m.forwards = 0;
      const auto g_rep = grads_of(m, b, rep);
      BOOST_TEST_CONTEXT("S = " << S << ", replay_snapshots = " << slots) {
        BOOST_TEST(max_rel_diff(g_rep, g_full) < 1e-9);
        // S taped forwards and the schedule's re-runs: no untaped pass ahead of the sweep
        BOOST_TEST(m.forwards == S + ReplaySchedule(S, slots).reruns(S, slots, false));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(replay_over_a_window_equals_truncated_window) {
  // Replay with a truncation window (the RMT reference's truncate_at_step under
  // memory_replay_backprop) gives truncated(k)'s gradients: plain backprop with one tape per
  // window, with and without recomputation, dropout and memory dropout included.
  for (int64_t S : {1, 4, 5, 7}) {
    for (int64_t k : {1, 2, 3, 7}) {
      if (k > S) continue;
      for (const bool recompute : {false, true}) {
        nn::Init init(3, DType::f64);
        TinyRecurrent m(init, 11, 6, 0.2);
        const data::Batch b = make(2, S, 3, 11, 7);
        const BpttOptions trunc{.mode = BpttMode::truncated, .window = k, .seed = 4, .memory_dropout = {{"h", 0.2}}};
        BpttOptions rep = trunc;
        rep.mode = BpttMode::replay;
        rep.replay_recompute = recompute;
        rep.replay_snapshots = 3;
        const auto g_trunc = grads_of(m, b, trunc);
        const auto g_full = grads_of(m, b, {.mode = BpttMode::full, .seed = 4, .memory_dropout = {{"h", 0.2}}});
        m.forwards = 0;
        const auto g_rep = grads_of(m, b, rep);
        BOOST_TEST_CONTEXT("S = " << S << ", window = " << k << (recompute ? ", recompute" : "")) {
          BOOST_TEST(max_rel_diff(g_rep, g_trunc) < 1e-9);
          // the cut is real: a window shorter than the batch differs from full BPTT
          if (k < S) BOOST_TEST(max_rel_diff(g_rep, g_full) > 1e-6);
          if (k >= S) BOOST_TEST(max_rel_diff(g_rep, g_full) < 1e-9);
          if (!recompute) BOOST_TEST(m.forwards == 2 * S - 1);
          if (recompute) BOOST_TEST(m.forwards == S + ReplaySchedule(S, 3).reruns(S, 3, false));
        }
      }
    }
  }
  // window 0 (the default) cuts nothing
  nn::Init init(3, DType::f64);
  TinyRecurrent m(init, 11, 6, 0.0);
  const data::Batch b = make(2, 4, 3, 11, 7);
  BOOST_TEST(max_rel_diff(grads_of(m, b, {.mode = BpttMode::replay, .window = 0}),
                          grads_of(m, b, {.mode = BpttMode::full})) < 1e-9);
  BOOST_TEST(max_rel_diff(grads_of(m, b, {.mode = BpttMode::replay, .window = 2}),
                          grads_of(m, b, {.mode = BpttMode::truncated, .window = 2})) < 1e-9);
}

namespace {
// Plays a schedule of S segments without a model, as bptt.cpp's replay walks it: the forwards
// it re-runs and the most memory-sized buffers alive at once besides the first memory (stored
// ones, a re-run's running one and the next, the gradient carried back).
struct Played {
  int64_t forwards = 0, most_alive = 0;
};
void play(const ReplaySchedule& plan, int64_t S, int64_t lo, int64_t hi, int64_t slots, int64_t stored, Played& p) {
  const bool carrying = hi < S;
  p.most_alive = std::max(p.most_alive, stored + int64_t(carrying));  // at a backward
  if (hi - lo == 1) return;
  const int64_t m = plan.split(hi - lo, slots, carrying);
  BOOST_REQUIRE(m >= 1 && m < hi - lo);
  p.forwards += m;
  p.most_alive = std::max(p.most_alive, stored + (m >= 2 ? 2 : 1) + int64_t(carrying));
  play(plan, S, lo + m, hi, slots - 1, stored + 1, p);
  play(plan, S, lo, lo + m, slots, stored, p);
}
}  // namespace

BOOST_AUTO_TEST_CASE(replay_schedule_is_the_cheapest_within_its_slots) {
  for (int64_t S = 1; S <= 40; ++S) {
    const ReplaySchedule plan(S, 7);
    for (int64_t c = ReplaySchedule::least_slots(S); c <= 7; ++c) {
      BOOST_TEST_CONTEXT("S = " << S << ", slots = " << c) {
        Played p;
        play(plan, S, 0, S, c, 0, p);
        BOOST_TEST(p.forwards == plan.reruns(S, c, false));
        BOOST_TEST(p.most_alive <= c);
        // one more slot never costs more forwards
        if (c < 7) BOOST_TEST(plan.reruns(S, c + 1, false) <= plan.reruns(S, c, false));
      }
    }
    if (ReplaySchedule::least_slots(S) > 0) BOOST_TEST(plan.reruns(S, ReplaySchedule::least_slots(S) - 1, false) == ReplaySchedule::kNever);
  }
  // By hand: two segments need one slot (the memory at 1, then the gradient from it); three
  // need two: store 1, do 2, drop it, do 1 from 0 (one re-run) and 0 (two in all).
  const ReplaySchedule plan(32, 7);
  BOOST_TEST(plan.reruns(2, 1, false) == 1);
  BOOST_TEST(plan.reruns(3, 2, false) == 2);
  BOOST_TEST(plan.reruns(3, 1, false) == ReplaySchedule::kNever);
  BOOST_CHECK_THROW(plan.split(3, 1, false), Error);
  // 32 segments, from an independent search in Python: halving [0, 32) re-runs 80 and holds
  // five buffers at its deepest; the schedule re-runs 73 in five, 98 in four, 228 in three.
  BOOST_TEST(plan.reruns(32, 5, false) == 73);
  BOOST_TEST(plan.reruns(32, 4, false) == 98);
  BOOST_TEST(plan.reruns(32, 3, false) == 228);
  // slots beyond the segment count change nothing
  BOOST_TEST(ReplaySchedule(6, 100).reruns(6, 100, false) == ReplaySchedule(6, 6).reruns(6, 6, false));
  BOOST_TEST(ReplaySchedule(6, 100).reruns(6, 100, false) == 5);
}

BOOST_AUTO_TEST_CASE(truncated_windows_cut_exactly_at_their_edges) {
  nn::Init init(5, DType::f64);
  TinyRecurrent m(init, 9, 5, 0.0);
  const data::Batch b = make(2, 4, 3, 9, 11);
  // truncated(2) over 4 segments = full BPTT over segments 0-1, then over 2-3 from the
  // (detached) memory the first half produced; each half weighted 2/4.
  const auto trunc = grads_of(m, b, {.mode = BpttMode::truncated, .window = 2});
  data::Batch first = b, second = b;
  first.inputs.resize(2), first.targets.resize(2);
  second.inputs.erase(second.inputs.begin(), second.inputs.begin() + 2);
  second.targets.erase(second.targets.begin(), second.targets.begin() + 2);
  for (Param* p : nn::params(m)) p->zero_grad();
  const BpttResult r1 = train_batch(m, first, m.initial_memory(2), {.mode = BpttMode::full, .loss_scale = 0.5});
  train_batch(m, second, r1.memory, {.mode = BpttMode::full, .loss_scale = 0.5});
  std::vector<std::vector<double>> halves;
  for (Param* p : nn::params(m)) halves.push_back(p->grad.to_vector());
  BOOST_TEST(max_rel_diff(trunc, halves) < 1e-12);
  // and a window of 1 lets no gradient reach U, which only acts through the carried memory
  const auto one = grads_of(m, b, {.mode = BpttMode::truncated, .window = 1});
  double u = 0;
  for (double g : one[2]) u = std::max(u, std::abs(g));
  BOOST_TEST(u == 0.0);
  double u2 = 0;
  for (double g : trunc[2]) u2 = std::max(u2, std::abs(g));
  BOOST_TEST(u2 > 1e-6);
}

BOOST_AUTO_TEST_CASE(modes_agree_on_loss_and_memory) {
  nn::Init init(8);
  TinyRecurrent m(init, 13, 8, 0.0);
  const data::Batch b = make(3, 4, 5, 13, 2);
  // replay takes the last segment's loss and memory from its taped run; with recomputation
  // every loss comes from the taped sweep
  BpttResult r[4];
  const BpttOptions modes[] = {{.mode = BpttMode::truncated}, {.mode = BpttMode::full}, {.mode = BpttMode::replay},
                               {.mode = BpttMode::replay, .replay_recompute = true, .replay_snapshots = 2}};
  for (int i = 0; i < 4; ++i) r[i] = train_batch(m, b, m.initial_memory(3), modes[i]);
  for (int i = 1; i < 4; ++i) {
    BOOST_TEST(std::abs(r[i].loss - r[0].loss) < 1e-6);
    BOOST_TEST(r[i].memory.at("h").to_vector() == r[0].memory.at("h").to_vector());
  }
  BOOST_TEST(r[0].tokens == 3 * 4 * 5);
  BOOST_TEST(std::abs(r[0].loss - std::log(13.0)) < 1.5);  // near chance at init
}

BOOST_AUTO_TEST_CASE(masked_positions_do_not_count) {
  data::Batch b = make(1, 2, 4, 7, 3);
  b.loss_mask = {Tensor::from({1, 4}, {0, 0, 1, 1}, DType::u8), Tensor::from({1, 4}, {1, 0, 0, 0}, DType::u8)};
  const Tensor t0 = masked_targets(b, 0);
  BOOST_TEST(t0.at({0, 0}) == kIgnoreIndex);
  BOOST_TEST(t0.at({0, 2}) == b.targets[0].at({0, 2}));
  nn::Init init(1);
  TinyRecurrent m(init, 7, 4, 0.0);
  BOOST_TEST(train_batch(m, b, m.initial_memory(1), {}).tokens == 3);
}

BOOST_AUTO_TEST_CASE(memory_dropout_drops_whole_segments_and_replay_agrees) {
  nn::Init init(6, DType::f64);
  TinyRecurrent m(init, 11, 6, 0.0);
  const data::Batch b = make(2, 6, 3, 11, 5);
  BpttOptions o{.mode = BpttMode::full, .seed = 9, .memory_dropout = {{"h", 0.5}}};
  // p = 0.5 over 6 segments: some dropped, some kept (fixed by the seed).
  std::vector<bool> dropped;
  for (int64_t s = 0; s < 6; ++s) dropped.push_back(!dropped_memories(m.initial_memory(2), o, s).empty());
  BOOST_TEST(std::count(dropped.begin(), dropped.end(), true) > 0);
  BOOST_TEST(std::count(dropped.begin(), dropped.end(), false) > 0);
  // Replay drops exactly what the forward pass dropped: its gradients still equal full BPTT's.
  const auto full = grads_of(m, b, o);
  BpttOptions r = o;
  r.mode = BpttMode::replay;
  BOOST_TEST(max_rel_diff(grads_of(m, b, r), full) < 1e-9);
  // And dropping changes the gradient (the memory really was replaced).
  BOOST_TEST(max_rel_diff(grads_of(m, b, {.mode = BpttMode::full, .seed = 9}), full) > 1e-6);
  // Always dropping = every segment starts from zero memory: U gets no gradient at all.
  const auto always = grads_of(m, b, {.mode = BpttMode::full, .seed = 9, .memory_dropout = {{"*", 1.0}}});
  double u = 0;
  for (double g : always[2]) u = std::max(u, std::abs(g));
  BOOST_TEST(u == 0.0);
  // p = 0 drops nothing; a glob matching no memory is an error that names the memories.
  BOOST_TEST(dropped_memories(m.initial_memory(2), {.memory_dropout = {{"h", 0.0}}}, 0).empty());
  BOOST_CHECK_EXCEPTION(train_batch(m, b, m.initial_memory(2), {.memory_dropout = {{"xl.*", 0.1}}}), Error,
                        [](const Error& e) { return std::string(e.what()).find("matches no memory of the model (it has: h)") != std::string::npos; });
}

// A second memory c' = stop_gradient(h'), read by the logits: its gradient would reach the
// previous segment's c only to be dropped, so a model may declare it gradient-free.
struct WithCache : TinyRecurrent {
  bool declare;  // whether memory_takes_gradient("c") says false
  bool detach;   // whether c really leaves without a graph
  WithCache(nn::Init& init, bool declare_, bool detach_) : TinyRecurrent(init, 11, 6, 0.0), declare(declare_), detach(detach_) {}
  arch::Memory initial_memory(int64_t B) const override {
    arch::Memory m = TinyRecurrent::initial_memory(B);
    m["c"] = Tensor::zeros({B, D}, E.value.dtype());
    return m;
  }
  arch::SegmentOut forward(Tape& t, const Tensor& tokens, const arch::MemoryVars& mem) const override {
    arch::SegmentOut o = TinyRecurrent::forward(t, tokens, {{"h", mem.at("h") + mem.at("c")}});
    o.memory["c"] = detach ? stop_gradient(o.memory.at("h")) : o.memory.at("h");
    return o;
  }
  bool memory_takes_gradient(const std::string& name) const override { return !declare || name != "c"; }
};

BOOST_AUTO_TEST_CASE(replay_feeds_gradient_free_memories_as_constants) {
  const data::Batch b = make(2, 4, 3, 11, 5);
  for (const bool recompute : {false, true}) {
    BpttOptions rep{.mode = BpttMode::replay, .seed = 4};
    rep.replay_recompute = recompute;
    rep.replay_snapshots = 2;
    nn::Init i1(3, DType::f64), i2(3, DType::f64);
    WithCache declared(i1, true, true), undeclared(i2, false, true);
    BOOST_TEST(max_rel_diff(grads_of(declared, b, rep), grads_of(undeclared, b, {.mode = BpttMode::full, .seed = 4})) < 1e-9);
    // a wrong claim is refused, naming the memory
    nn::Init i3(3, DType::f64);
    WithCache lying(i3, true, false);
    BOOST_CHECK_EXCEPTION(grads_of(lying, b, rep), Error, [](const Error& e) {
      return std::string(e.what()).find("memory 'c' takes no gradient, but it left segment 3 with a graph") != std::string::npos;
    });
  }
}

BOOST_AUTO_TEST_SUITE_END()
