// The trainer's step and evaluation on the baselines: a stateful Transformer-XL learns a
// repetitive stream while carrying its memory; evaluation's loss and bits per byte agree
// with the BPTT loss of the same batch.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <tuple>

#include "architectures/transformer.h"
#include "data/streams.h"
#include "experiments/evaluate.h"
#include "experiments/trainer.h"
#include "layers/init.h"

using namespace mnemo;
using namespace mnemo::experiments;

namespace {

data::ByteSpan repeating_bytes(int64_t n) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(n));
  const char* pattern = "the cat sat on the mat. ";
  for (int64_t i = 0; i < n; ++i) (*bytes)[size_t(i)] = uint8_t(pattern[i % 24]);
  data::ByteSpan span;
  span.bytes = bytes;
  span.begin = 0;
  span.size = n;
  return span;
}

arch::TransformerConfig tiny(int64_t mem_len) {
  return {.vocab = 256, .dim = 32, .depth = 2, .heads = 2, .seq_len = 8, .ff_mult = 2, .mem_len = mem_len};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(trainer)

BOOST_AUTO_TEST_CASE(stateful_xl_learns_and_carries_memory) {
  nn::Init init(1);
  arch::TransformerXL model(init, tiny(8));
  data::ContiguousStreams streams(repeating_bytes(20000), {.batch = 4, .segments = 2, .seg_len = 8});
  AdamW opt(nn::named_params(model), {.lr = 3e-3, .weight_decay = 0.0});
  Trainer trainer(model, streams, opt,
                  {.grad_accum = 2, .clip = 1.0, .schedule = Schedule{.kind = Schedule::Kind::constant, .base_lr = 3e-3}});
  double first = 0, last = 0;
  for (int i = 0; i < 40; ++i) {
    const StepMetrics m = trainer.step();
    BOOST_TEST(!m.skipped);
    BOOST_TEST(m.tokens == 2 * 4 * 2 * 8);
    (i == 0 ? first : last) = m.loss;
  }
  BOOST_TEST_MESSAGE("loss " << first << " -> " << last);
  BOOST_TEST(last < 0.5 * first);
  BOOST_TEST(trainer.steps() == 40);
  BOOST_TEST(opt.steps() == 40);
  BOOST_TEST(trainer.memory().at("mem.0").shape() == Shape({4, 8, 32}));  // filled to mem_len, carried
}

BOOST_AUTO_TEST_CASE(without_a_schedule_the_optimizers_lr_holds) {
  nn::Init init(1);
  arch::TransformerXL model(init, tiny(8));
  data::ContiguousStreams streams(repeating_bytes(2000), {.batch = 2, .segments = 2, .seg_len = 8});
  AdamW opt(nn::named_params(model), {.lr = 2.5e-4, .weight_decay = 0.0});
  Trainer plain(model, streams, opt, {});
  BOOST_TEST(plain.step().lr == 2.5e-4);
  BOOST_TEST(opt.lr() == 2.5e-4);
  Trainer scheduled(model, streams, opt, {.schedule = Schedule{.base_lr = 1e-3}});
  BOOST_TEST(scheduled.step().lr == 1e-3);
  BOOST_TEST(opt.lr() == 1e-3);
}

BOOST_AUTO_TEST_CASE(evaluation_agrees_with_the_training_loss) {
  nn::Init init(2);
  arch::Transformer model(init, tiny(0));
  data::ContiguousStreams streams(repeating_bytes(5000), {.batch = 2, .segments = 3, .seg_len = 8});
  const data::Batch batch = streams.next();
  const EvalResult e = evaluate(model, {batch});
  const BpttResult r = train_batch(model, batch, model.initial_memory(2), {.mode = BpttMode::full});
  BOOST_TEST(e.tokens == 2 * 3 * 8);
  BOOST_TEST(std::abs(e.loss - r.loss) < 1e-5);
  BOOST_TEST(std::abs(e.bits_per_byte - e.loss / std::log(2.0)) < 1e-12);
  BOOST_TEST((e.accuracy >= 0.0 && e.accuracy <= 1.0));
  for (Param* p : nn::params(model)) p->zero_grad();
}

BOOST_AUTO_TEST_CASE(an_update_per_segment_equals_one_segment_batches) {
  // Streaming (an update after every segment, memory carried and detached) over batches of
  // 4 segments must be exactly the ordinary trainer over the same stream cut into batches
  // of one segment: same tapes, same seeds, same updates.
  auto run = [](int64_t segments, int64_t steps, bool streaming) {
    nn::Init init(3);
    arch::TransformerXL model(init, tiny(8));
    data::ContiguousStreams streams(repeating_bytes(4000), {.batch = 2, .segments = segments, .seg_len = 8});
    AdamW opt(nn::named_params(model), {.lr = 3e-3, .weight_decay = 0.0});
    TrainerOptions o{.schedule = Schedule{.kind = Schedule::Kind::constant, .base_lr = 3e-3}};
    o.step_every_segment = streaming;
    Trainer trainer(model, streams, opt, o);
    double loss = 0;
    for (int64_t i = 0; i < steps; ++i) loss += trainer.step().loss / double(steps);
    std::vector<std::vector<double>> weights;
    for (Param* p : nn::params(model)) weights.push_back(p->value.to_vector());
    return std::make_tuple(weights, opt.steps(), loss);
  };
  const auto [streamed, updates, loss_s] = run(4, 3, true);
  const auto [plain, plain_updates, loss_p] = run(1, 12, false);
  BOOST_TEST(updates == 12);
  BOOST_TEST(plain_updates == 12);
  BOOST_TEST((streamed == plain));
  BOOST_TEST(std::abs(loss_s - loss_p) < 1e-6);
}

namespace {
// Fixed batches in order, each from the initial memory (as random crops and synthetic tasks).
struct FixedBatches : data::BatchSource {
  std::vector<data::Batch> batches;
  size_t n = 0;
  data::Batch next() override {
    data::Batch b = batches.at(n++);
    b.reset_memory = true;
    return b;
  }
  std::vector<int64_t> cursor() const override { return {int64_t(n)}; }
  void set_cursor(const std::vector<int64_t>& c) override { n = size_t(c.at(0)); }
};

std::vector<int32_t> token_rows(int64_t rows, int64_t S, int64_t T, uint64_t seed) {
  std::vector<int32_t> out(size_t(rows * (S * T + 1)));
  for (auto& t : out) t = int32_t((seed = seed * 6364136223846793005ULL + 1442695040888963407ULL) >> 56);
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(per_segment_updates_over_accumulated_batches_step_as_the_references) {
  // The Compressive / Memory Transformer-XL reference scripts: a batch of A*B rows run as A
  // micro-batches of B, each with its own memory; per segment, backward of (loss_i + aux_i) / A
  // for every micro-batch, then one update. Without masks every micro-batch segment counts
  // B*T tokens, so that is the per-segment update over the whole A*B-row batch: the same
  // losses, gradient norms (the 1/A scale shows here, AdamW would hide it) and weights.
  const int64_t A = 2, B = 2, S = 3, T = 8, steps = 2;
  auto run = [&](bool accumulate) {
    nn::Init init(3, DType::f64);
    arch::TransformerXL model(init, tiny(8));
    FixedBatches src;
    for (int64_t k = 0; k < steps; ++k) {
      std::vector<int32_t> all;
      for (int64_t i = 0; i < A; ++i) {
        const std::vector<int32_t> rows = token_rows(B, S, T, uint64_t(100 * k + i + 1));
        if (accumulate) src.batches.push_back(data::make_batch(rows, B, S, T));
        all.insert(all.end(), rows.begin(), rows.end());
      }
      if (!accumulate) src.batches.push_back(data::make_batch(all, A * B, S, T));
    }
    AdamW opt(nn::named_params(model), {.lr = 3e-3, .weight_decay = 0.0});
    TrainerOptions o{.grad_accum = accumulate ? A : 1, .clip = 0.0,
                     .schedule = Schedule{.kind = Schedule::Kind::constant, .base_lr = 3e-3}};
    o.step_every_segment = true;
    Trainer trainer(model, src, opt, o);
    std::vector<StepMetrics> metrics;
    for (int64_t k = 0; k < steps; ++k) metrics.push_back(trainer.step());
    std::vector<double> weights;
    for (Param* p : nn::params(model))
      for (double w : p->value.to_vector()) weights.push_back(w);
    return std::make_tuple(metrics, weights, opt.steps(), src.n);
  };
  const auto [acc, w_acc, updates_acc, drawn_acc] = run(true);
  const auto [one, w_one, updates_one, drawn_one] = run(false);
  BOOST_TEST(updates_acc == steps * S);  // one update per segment, not per micro-batch
  BOOST_TEST(updates_one == steps * S);
  BOOST_TEST(drawn_acc == size_t(steps * A));
  BOOST_TEST(drawn_one == size_t(steps));
  for (int64_t k = 0; k < steps; ++k) {
    BOOST_TEST_CONTEXT("step " << k) {
      BOOST_TEST(acc[size_t(k)].tokens == A * B * S * T);
      BOOST_TEST(std::abs(acc[size_t(k)].loss - one[size_t(k)].loss) < 1e-12 * one[size_t(k)].loss);
      BOOST_TEST(one[size_t(k)].grad_norm > 1e-3);
      BOOST_TEST(std::abs(acc[size_t(k)].grad_norm - one[size_t(k)].grad_norm) < 1e-9 * one[size_t(k)].grad_norm);
    }
  }
  double worst = 0, moved = 0;
  nn::Init init(3, DType::f64);
  arch::TransformerXL fresh(init, tiny(8));
  std::vector<double> w0;
  for (Param* p : nn::params(fresh))
    for (double w : p->value.to_vector()) w0.push_back(w);
  for (size_t j = 0; j < w_one.size(); ++j) {
    worst = std::max(worst, std::abs(w_acc[j] - w_one[j]));
    moved = std::max(moved, std::abs(w_one[j] - w0[j]));
  }
  BOOST_TEST(worst < 1e-9);
  BOOST_TEST(moved > 1e-3);  // the updates did move the weights
}

BOOST_AUTO_TEST_CASE(per_segment_updates_refuse_to_accumulate_continuing_batches) {
  // Stateful streams: batch i + 1 continues batch i, so they cannot run side by side.
  nn::Init init(1);
  arch::TransformerXL model(init, tiny(8));
  data::ContiguousStreams streams(repeating_bytes(4000), {.batch = 2, .segments = 2, .seg_len = 8});
  AdamW opt(nn::named_params(model), {.lr = 3e-3, .weight_decay = 0.0});
  TrainerOptions o{.grad_accum = 2};
  o.step_every_segment = true;
  Trainer trainer(model, streams, opt, o);
  BOOST_CHECK_EXCEPTION(trainer.step(), Error, [](const Error& e) {
    return std::string(e.what()).find("needs batches that start from the initial memory") != std::string::npos;
  });
}

BOOST_AUTO_TEST_SUITE_END()
