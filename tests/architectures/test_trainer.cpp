// The trainer's step and evaluation on the baselines: a stateful Transformer-XL learns a
// repetitive stream while carrying its memory; evaluation's loss and bits per byte agree
// with the BPTT loss of the same batch.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "architectures/transformer.h"
#include "data/streams.h"
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
                  {.grad_accum = 2, .clip = 1.0, .schedule = {.kind = Schedule::Kind::constant, .base_lr = 3e-3}});
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

BOOST_AUTO_TEST_SUITE_END()
