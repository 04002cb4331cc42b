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

BOOST_AUTO_TEST_SUITE_END()
