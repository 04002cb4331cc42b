// The Compressive Transformer's cached decoder (architectures/compressive_generate.cpp) against
// the generic re-run of forward() (tests/support/cached_generation.h): tokens, memories and
// logits over segments that fill the FIFO and compress what it evicts, with a layer that keeps
// no memory, without GRU gates, without enhanced recurrence, and under reference_parity (P2's
// rows by memory fill level, P5's wrap-around).
#include <boost/test/unit_test.hpp>

#include "architectures/compressive.h"
#include "tests/support/cached_generation.h"
#include "tests/support/relative_term_paths.h"

using namespace mnemo;
using namespace mnemo::arch;

namespace {

CompressiveConfig generate_cfg() {
  CompressiveConfig c{.vocab = 13, .dim = 8, .depth = 2, .heads = 2, .seq_len = 4};
  c.mem_len = 6, c.cmem_ratio = 3, c.cmem_len = 3;  // evictions of 2, then 4: compression at segment 3
  return c;
}

// The relative table starts at zero; random rows make every key's row matter.
CompressiveTransformer model(const CompressiveConfig& c, uint64_t seed) {
  nn::Init init(seed);
  CompressiveTransformer m(init, c);
  Rng rng(seed + 1);
  m.rel.weight.value = Tensor::randn(m.rel.weight.value.shape(), rng, DType::f32, 0.5);
  nn::eval(m);
  return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(compressive_generate)

BOOST_AUTO_TEST_CASE(cached_generation_equals_uncached) {
  const CompressiveTransformer m = model(generate_cfg(), 21);
  const Memory after = test::check_cached_generation(m, m.cfg.seq_len, m.cfg.vocab, 4);
  // 3 + 16 tokens = 4 full segments: the FIFO is full and evictions were compressed
  BOOST_TEST(after.at("mem").dim(2) == m.cfg.mem_len);
  BOOST_TEST(after.at("cmem").dim(2) > 0);
}

BOOST_AUTO_TEST_CASE(memoryless_layer_residual_factorised) {
  CompressiveConfig c = generate_cfg();
  c.memory_layers = {2}, c.gru_gated_residual = false, c.emb_dim = 6, c.enhanced_recurrence = false;
  test::check_cached_generation(model(c, 22), c.seq_len, c.vocab, 4);
}

BOOST_AUTO_TEST_CASE(reference_parity_rows) {
  CompressiveConfig c = generate_cfg();
  c.reference_parity = true;
  test::check_cached_generation(model(c, 23), c.seq_len, c.vocab, 4);
  c.memory_layers = {1};  // parity offsets the memory-less layer's rows by the memory count too
  test::check_cached_generation(model(c, 24), c.seq_len, c.vocab, 4);
}

BOOST_AUTO_TEST_CASE(relative_band_equals_dense_term) {
  // The cache's relative term as a band against the dense gathered logits of before, one token
  // and three at a time, filling and compressing memories; parity's memory-less layer too (P2).
  for (const bool parity : {false, true}) {
    CompressiveConfig c = generate_cfg();
    c.reference_parity = parity;
    if (parity) c.memory_layers = {1};
    CompressiveTransformer m = model(c, 25);
    for (const int64_t chunk : {int64_t(1), int64_t(3)})
      BOOST_TEST_CONTEXT((parity ? "reference_parity" : "default") << ", " << chunk << " a call") {
        test::check_generator_band_equals_dense(m, [&](bool dense) { m.dense_relative_term = dense; }, c.seq_len, 2,
                                                4 * c.seq_len + 2, c.vocab, chunk);
      }
  }
}

BOOST_AUTO_TEST_SUITE_END()
