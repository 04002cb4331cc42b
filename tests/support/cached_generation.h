// The checks every cached decoder (SegmentModel::cached_generator) passes, shared by the
// architecture test files: against the generic path of experiments/generate.cpp (re-running
// forward() over the partial segment for each token) the same tokens and memories, greedy and
// seeded top-k sampling, across several segment boundaries, from the initial memory and from a
// carried one, with a prime shorter and longer than a segment; and every position's logits
// against forward() over each segment, fed one token at a time and in chunks.
// Tolerances: the memories come from the same forward() over the same tokens on both paths, so
// they must agree exactly; the cached logits differ from forward()'s only by float rounding of
// a different summation order (f32), checked to 1e-4 (logits are O(1)).
#pragma once

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <memory>
#include <vector>

#include "architectures/segment_model.h"
#include "autograd/ops/ops.h"
#include "experiments/generate.h"
#include "tests/support/tensor_compare.h"

namespace mnemo::test {

inline constexpr double kCachedLogitTolerance = 1e-4;

// Tokens (B, n) i32, deterministic, in [0, vocab).
inline Tensor stream_tokens(int64_t B, int64_t n, int64_t vocab, int64_t salt = 0) {
  std::vector<int32_t> v(size_t(B * n));
  for (int64_t i = 0; i < B * n; ++i) v[size_t(i)] = int32_t((i * 7 + 3 + salt * 5 + i / 3) % vocab);
  return Tensor::from_ints({B, n}, v);
}

inline void check_same_memory(const arch::Memory& cached, const arch::Memory& uncached) {
  BOOST_TEST_REQUIRE(cached.size() == uncached.size());
  for (const auto& [name, t] : uncached) {
    BOOST_TEST_REQUIRE(cached.count(name) == 1u, name);
    BOOST_TEST(cached.at(name).shape() == t.shape(), name);
    if (cached.at(name).shape() == t.shape()) BOOST_TEST(max_abs_diff(cached.at(name), t) == 0.0, name);
  }
}

// generate() with and without the cache: the same tokens and memories. `length` should cross
// several segments of seg_len after the prime. Returns the cached run's memory.
inline arch::Memory check_generate_equal(const arch::SegmentModel& m, int64_t seg_len, const Tensor& prime,
                                         const arch::Memory& memory, int64_t length) {
  arch::Memory last;
  for (const double temperature : {0.0, 1.0}) {
    BOOST_TEST_CONTEXT("temperature " << temperature << ", prime " << prime.dim(1) << ", memory given "
                                      << !memory.empty()) {
      experiments::GenerateOptions o{.length = length, .temperature = temperature, .top_k = 4, .seed = 5};
      o.use_cache = true;
      const experiments::Generated cached = experiments::generate(m, seg_len, prime, memory, o);
      o.use_cache = false;
      const experiments::Generated uncached = experiments::generate(m, seg_len, prime, memory, o);
      BOOST_TEST(cached.tokens.shape() == (Shape{prime.dim(0), length}));
      BOOST_TEST(cached.tokens.to_vector() == uncached.tokens.to_vector());
      check_same_memory(cached.memory, uncached.memory);
      last = cached.memory;
    }
  }
  return last;
}

// The cache's logits at every position of a stream of N tokens fed `chunk` tokens at a time
// (the last of each chunk is compared), against forward() over each segment from the memory
// the previous one left; memories after every complete segment. Returns max |diff| of logits.
inline double check_logits_equal_forward(const arch::SegmentModel& m, int64_t seg_len, int64_t B, int64_t N,
                                         int64_t vocab, int64_t chunk = 1) {
  const Tensor stream = stream_tokens(B, N, vocab, chunk);
  std::unique_ptr<arch::Generator> g = m.cached_generator({}, B, seg_len);
  BOOST_TEST_REQUIRE(g != nullptr);
  arch::Memory memory = m.initial_memory(B);
  double worst = 0;
  for (int64_t start = 0; start < N; start += seg_len) {
    const int64_t n = std::min(seg_len, N - start);
    Tape tape;
    Tape::NoRecord nr(tape);
    const arch::SegmentOut out = m.forward(tape, arch::token_columns(stream, start, n), arch::constants(tape, memory));
    for (int64_t j = 0; j < n; j += chunk) {
      const int64_t c = std::min(chunk, n - j);
      g->feed(arch::token_columns(stream, start + j, c));
      const Tensor want = reshape(slice(out.logits, 1, j + c - 1, 1), {B, out.logits.dim(2)}).value();
      worst = std::max(worst, max_abs_diff(g->next_logits(), want));
    }
    memory = arch::values(out.memory);
    if (n == seg_len) check_same_memory(g->memory(), memory);
  }
  BOOST_TEST(worst < kCachedLogitTolerance, "max |logit diff| " << worst << " fed " << chunk << " at a time");
  return worst;
}

// All of the above for one model: 2 streams, `segments` segments of seg_len generated after a
// 3-token prime, again from the memory that left, a prime of 2.5 segments, logits fed 1 and 3
// tokens at a time over 2 segments and a bit. Returns the memory after the first generation.
inline arch::Memory check_cached_generation(const arch::SegmentModel& m, int64_t seg_len, int64_t vocab,
                                            int64_t segments = 3) {
  BOOST_TEST_REQUIRE(m.cached_generator({}, 2, seg_len) != nullptr);
  const Tensor prime = stream_tokens(2, 3, vocab);
  const arch::Memory after = check_generate_equal(m, seg_len, prime, {}, segments * seg_len);
  check_generate_equal(m, seg_len, prime, after, seg_len + 2);  // memory carried in
  check_generate_equal(m, seg_len, stream_tokens(2, 2 * seg_len + seg_len / 2, vocab, 1), {}, seg_len);
  const double one = check_logits_equal_forward(m, seg_len, 2, 2 * seg_len + 3, vocab, 1);
  const double three = check_logits_equal_forward(m, seg_len, 2, 2 * seg_len + 3, vocab, 3);
  BOOST_TEST_MESSAGE("cached logits vs forward(): max |diff| " << one << " (one token at a time), " << three
                                                               << " (three at a time)");
  return after;
}

}  // namespace mnemo::test
