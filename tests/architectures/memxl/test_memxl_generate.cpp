// Memory Transformer-XL's cached decoder (architectures/memxl_generate.cpp) against the generic
// re-run of forward() (tests/support/cached_generation.h): tokens, memories and logits over
// segments that write the long memory and evict from the short one, with persistent slots
// (which the cache puts after its keys: the relative rows must follow each key), one key/value
// head, a layer without memory, no gates, and under reference_parity (P1 raw slots, P4 rows).
#include <boost/test/unit_test.hpp>

#include "architectures/memxl.h"
#include "tests/support/cached_generation.h"
#include "tests/support/relative_term_paths.h"

using namespace mnemo;
using namespace mnemo::arch;

namespace {

MemXLConfig generate_cfg() {
  return {.vocab = 11, .dim = 8, .depth = 2, .heads = 2, .seq_len = 4, .mem_len = 3, .lmem_len = 2, .num_mem_kv = 2};
}

// R starts at zero; random rows make every key's row matter.
MemoryTransformerXL model(const MemXLConfig& c, uint64_t seed) {
  nn::Init init(seed);
  MemoryTransformerXL m(init, c);
  Rng rng(seed + 1);
  m.pos_emb.value = Tensor::randn(m.pos_emb.value.shape(), rng, DType::f32, 0.5);
  nn::eval(m);
  return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memxl_generate)

BOOST_AUTO_TEST_CASE(cached_generation_equals_uncached) {
  const MemoryTransformerXL m = model(generate_cfg(), 31);
  const Memory after = test::check_cached_generation(m, m.cfg.seq_len, m.cfg.vocab);
  // the long memory was written and the short one holds its last mem_len slots
  BOOST_TEST(after.at("long").dim(1) == m.cfg.lmem_len);
  BOOST_TEST(after.at("short").dim(2) == m.cfg.mem_len);
}

BOOST_AUTO_TEST_CASE(one_kv_head_memoryless_layer_no_gates) {
  MemXLConfig c = generate_cfg();
  c.memory_layers = {2}, c.one_kv_head = true, c.gated_residual = false, c.emb_dim = 6;
  test::check_cached_generation(model(c, 32), c.seq_len, c.vocab);
  c.num_mem_kv = 0;
  test::check_cached_generation(model(c, 33), c.seq_len, c.vocab);
}

BOOST_AUTO_TEST_CASE(reference_parity_rows) {
  MemXLConfig c = generate_cfg();
  c.reference_parity = true;
  test::check_cached_generation(model(c, 34), c.seq_len, c.vocab);
}

BOOST_AUTO_TEST_CASE(relative_band_equals_dense_term) {
  // The cache's relative term as a band against the dense gathered logits of before, one token
  // and three at a time: without persistent slots (a band) and with them (their zero rows sit
  // between cache and tokens: the gathered wide band), and under reference_parity.
  for (const int64_t persistent : {int64_t(0), int64_t(2)})
    for (const bool parity : {false, true}) {
      MemXLConfig c = generate_cfg();
      c.num_mem_kv = persistent, c.reference_parity = parity;
      MemoryTransformerXL m = model(c, 35);
      for (const int64_t chunk : {int64_t(1), int64_t(3)})
        BOOST_TEST_CONTEXT(persistent << " persistent slots, " << (parity ? "reference_parity" : "default") << ", "
                                      << chunk << " a call") {
          test::check_generator_band_equals_dense(m, [&](bool dense) { m.dense_relative_term = dense; }, c.seq_len, 2,
                                                  4 * c.seq_len + 2, c.vocab, chunk);
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
