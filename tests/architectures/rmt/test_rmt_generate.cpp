// RMT's cached decoder (architectures/rmt_generate.cpp) against the generic re-run of forward()
// (tests/support/cached_generation.h): tokens, memories and logits, for the options that change
// what a token row sees: read slots missing on the first segment, recurrent writes, hidden read
// columns, one causal triangle, no null slot or XL caches, one residual stream, ERNIE-Doc caches,
// reference_parity's positions, and segments shorter than the model's.
#include <boost/test/unit_test.hpp>

#include "tests/architectures/rmt/rmt_test_util.h"
#include "tests/support/cached_generation.h"

using namespace mnemo;
using namespace mnemo::test_rmt;

BOOST_AUTO_TEST_SUITE(rmt_generate)

BOOST_AUTO_TEST_CASE(cached_generation_equals_uncached) {
  RecurrentMemoryTransformer m = nudged(tiny_config(), 3);
  nn::eval(m);
  const Memory after = test::check_cached_generation(m, m.cfg.seq_len, m.cfg.vocab);
  // the write memory and the XL caches were carried through full segments
  BOOST_TEST(after.at(RecurrentMemoryTransformer::kWrite).dim(1) == m.cfg.num_memory_tokens);
  BOOST_TEST(max_abs(after.at(RecurrentMemoryTransformer::kWrite)) > 0.0);
  BOOST_TEST(after.at(RecurrentMemoryTransformer::xl_name(0)).dim(3) == m.cfg.xl_mem_len);
}

BOOST_AUTO_TEST_CASE(memory_slot_options) {
  // read slots absent on the first segment, the write slots fed by the last memory, the read
  // columns hidden from every row, ERNIE-Doc's cache of the layer above
  RmtConfig c = tiny_config();
  c.always_have_read_memories = false;
  c.add_write_to_next_write_mem = true;
  c.mask_out_read_memories = true;
  c.enhanced_xl_recurrence = true;
  RecurrentMemoryTransformer m = nudged(c, 4);
  nn::eval(m);
  test::check_cached_generation(m, c.seq_len, c.vocab);
}

BOOST_AUTO_TEST_CASE(plain_causal_mask_no_null_no_xl_one_stream) {
  RmtConfig c = tiny_config();
  c.memory_not_causal = false;  // one causal triangle over [read, tokens, write]
  c.null_kv = false;
  c.num_residual_streams = 1;
  RecurrentMemoryTransformer m = nudged(c, 5);
  nn::eval(m);
  test::check_cached_generation(m, c.seq_len, c.vocab);
  c.use_xl_memories = false;
  c.rotary_pos_emb = false;  // absolute positions alone
  RecurrentMemoryTransformer plain = nudged(c, 6);
  nn::eval(plain);
  test::check_cached_generation(plain, c.seq_len, c.vocab);
}

BOOST_AUTO_TEST_CASE(reference_parity_positions) {
  // P3's null-key position listed first, f32 rotary tables, P8's cache of [null, read, tokens, write]
  RmtConfig c = tiny_config();
  c.reference_parity = true;
  c.rotary_pos_emb = true;
  c.rotary_theta = 10;
  RecurrentMemoryTransformer m = nudged(c, 7);
  nn::eval(m);
  test::check_cached_generation(m, c.seq_len, c.vocab);
}

BOOST_AUTO_TEST_CASE(segments_shorter_than_the_model_and_encoder) {
  RecurrentMemoryTransformer m = nudged(tiny_config(), 8);
  nn::eval(m);
  test::check_cached_generation(m, m.cfg.seq_len - 2, m.cfg.vocab);
  BOOST_TEST(m.cached_generator({}, 2, m.cfg.seq_len + 1) == nullptr);  // forward() refuses those
  RmtConfig c = tiny_config();
  c.causal = false;  // a token sees the tokens after it: nothing to cache
  RecurrentMemoryTransformer encoder = nudged(c, 9);
  BOOST_TEST(encoder.cached_generator({}, 2, c.seq_len) == nullptr);
}

BOOST_AUTO_TEST_SUITE_END()
