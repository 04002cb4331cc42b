// The relative-position term reaches attention as a band (the default) or, under a model's
// `dense_relative_term` test switch, as the dense (B, H, Tq, Tk) logits gathered as before the
// band. These helpers run a model both ways for the architecture tests: the logits of a few
// segments on one tape and every parameter's gradient of a loss over them, or a cached
// generator's logits, must agree to f32 rounding (the two paths sum the same products in a
// different order).
#pragma once

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "architectures/segment_model.h"
#include "autograd/ops/ops.h"
#include "tests/support/tensor_compare.h"

namespace mnemo::test {

// f32 logits and gradients are O(1) here; both paths round differently, by a few ulps per sum.
inline constexpr double kRelativePathTolerance = 2e-5;

struct LogitsAndGrads {
  std::vector<Tensor> logits;  // per segment
  std::vector<std::pair<std::string, Tensor>> grads;  // per parameter, zeros where none reached it
};

// Segments of `lengths` tokens (B rows) in order on one tape, the memory carried as Vars so
// that gradient flows through it, the loss their cross-entropy (plus any aux loss).
inline LogitsAndGrads run_segments(arch::SegmentModel& m, int64_t B, const std::vector<int64_t>& lengths,
                                   int64_t vocab) {
  for (auto& [name, p] : nn::named_params(m)) p->grad = Tensor();
  Tape tape;
  arch::MemoryVars mem = arch::constants(tape, m.initial_memory(B));
  LogitsAndGrads r;
  Var loss;
  int64_t salt = 0;
  for (const int64_t n : lengths) {
    std::vector<int32_t> x(size_t(B * n)), y(size_t(B * n));
    for (int64_t i = 0; i < B * n; ++i, ++salt)
      x[size_t(i)] = int32_t((salt * 5 + 3) % vocab), y[size_t(i)] = int32_t((salt * 3 + 1) % vocab);
    arch::SegmentOut o = m.forward(tape, Tensor::from_ints({B, n}, x), mem);
    Var l = cross_entropy(o.logits, Tensor::from_ints({B, n}, y));
    if (o.aux_loss.defined()) l = l + o.aux_loss;
    loss = loss.defined() ? loss + l : l;
    r.logits.push_back(o.logits.value());
    mem = o.memory;
  }
  tape.backward(loss);
  for (auto& [name, p] : nn::named_params(m))
    r.grads.emplace_back(name, p->grad.defined() ? p->grad.clone() : Tensor::zeros(p->value.shape()));
  return r;
}

// Runs `m` with the band and with the dense term (set_dense flips the model's switch) and
// checks logits and gradients; `positions` names the relative table's gradient, which must be
// nonzero (a zero one would make the comparison blind to the term).
inline void check_band_equals_dense(arch::SegmentModel& m, const std::function<void(bool)>& set_dense, int64_t B,
                                    const std::vector<int64_t>& lengths, int64_t vocab,
                                    const std::vector<std::string>& positions) {
  set_dense(true);
  const LogitsAndGrads dense = run_segments(m, B, lengths, vocab);
  set_dense(false);
  const LogitsAndGrads band = run_segments(m, B, lengths, vocab);
  BOOST_TEST_REQUIRE(band.logits.size() == dense.logits.size());
  for (size_t s = 0; s < band.logits.size(); ++s) {
    BOOST_TEST(max_abs(dense.logits[s]) > 0.1);
    const double scale = std::max(1.0, max_abs(dense.logits[s]));
    BOOST_TEST(max_abs_diff(band.logits[s], dense.logits[s]) <= kRelativePathTolerance * scale, "segment " << s);
  }
  BOOST_TEST_REQUIRE(band.grads.size() == dense.grads.size());
  for (size_t i = 0; i < band.grads.size(); ++i) {
    const auto& [name, g] = dense.grads[i];
    const double scale = std::max(1.0, max_abs(g));
    BOOST_TEST(max_abs_diff(band.grads[i].second, g) <= kRelativePathTolerance * scale, name);
    if (std::find(positions.begin(), positions.end(), name) != positions.end())
      BOOST_TEST(max_abs(g) > 0.0, name << " takes no gradient: the comparison would not see the term");
  }
}

// A cached generator's next-token logits over N tokens fed `chunk` at a time across segments of
// seg_len, with the band and with the dense term: equal to f32 rounding, and not all zero.
inline void check_generator_band_equals_dense(const arch::SegmentModel& m, const std::function<void(bool)>& set_dense,
                                              int64_t seg_len, int64_t B, int64_t N, int64_t vocab, int64_t chunk) {
  std::vector<int32_t> stream(size_t(B * N));
  for (int64_t i = 0; i < B * N; ++i) stream[size_t(i)] = int32_t((i * 7 + 2 + i / 5) % vocab);
  const Tensor tokens = Tensor::from_ints({B, N}, stream);
  const auto run = [&](bool dense) {
    set_dense(dense);
    std::unique_ptr<arch::Generator> g = m.cached_generator({}, B, seg_len);
    BOOST_TEST_REQUIRE(g != nullptr);
    std::vector<Tensor> logits;
    for (int64_t start = 0; start < N; start += chunk) {
      g->feed(arch::token_columns(tokens, start, std::min(chunk, N - start)));
      logits.push_back(g->next_logits());
    }
    return logits;
  };
  const std::vector<Tensor> dense = run(true), band = run(false);
  BOOST_TEST_REQUIRE(band.size() == dense.size());
  for (size_t i = 0; i < band.size(); ++i) {
    BOOST_TEST(max_abs(dense[i]) > 0.1);
    BOOST_TEST(max_abs_diff(band[i], dense[i]) <= kRelativePathTolerance * std::max(1.0, max_abs(dense[i])),
               "call " << i << " (" << chunk << " tokens a call)");
  }
}

}  // namespace mnemo::test
