#include "experiments/generate.h"

#include <cmath>
#include <cstdio>

#include "autograd/ops/ops.h"
#include "layers/sampling.h"

namespace mnemo::experiments {
namespace {

// The generic decoder: forward() over the partial segment so far, computed only when logits
// are asked for; a complete segment commits its memory.
class RerunGenerator : public arch::Generator {
 public:
  RerunGenerator(const arch::SegmentModel& model, arch::Memory memory, int64_t B, int64_t seg_len)
      : model_(model), memory_(std::move(memory)), B_(B), seg_len_(seg_len), rows_(size_t(B)) {}

  void feed(const Tensor& tokens) override {
    MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(0) == B_ && tokens.dim(1) >= 1 && tokens.dtype() == DType::i32,
                "[generate] expected tokens (" << B_ << ", n >= 1) i32, got " << tokens.shape());
    const int64_t n = tokens.dim(1);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t b = 0; b < B_; ++b) rows_[size_t(b)].push_back(tokens.data<int32_t>()[b * n + i]);
      logits_ = Tensor();  // computed lazily, only when a token is sampled next
      if (int64_t(rows_[0].size()) == seg_len_) {  // complete: commit its memory
        memory_ = run();
        for (auto& r : rows_) r.clear();
      }
    }
  }
  Tensor next_logits() override {
    if (!logits_.defined()) {
      MNEMO_CHECK(!rows_[0].empty(), "[generate] feed at least one token before asking for logits");
      run();
    }
    return logits_;
  }
  arch::Memory memory() const override { return memory_; }

 private:
  // forward() over the current segment from the memory entering it: keeps its last logits,
  // returns the memory after it.
  arch::Memory run() {
    const int64_t n = int64_t(rows_[0].size());
    std::vector<int32_t> flat;
    for (const auto& r : rows_) flat.insert(flat.end(), r.begin(), r.end());
    Tape tape;
    Tape::NoRecord no_record(tape);
    arch::SegmentOut out = model_.forward(tape, Tensor::from_ints({B_, n}, flat), arch::constants(tape, memory_));
    const Var& logits = out.logits;  // (B, n, V)
    logits_ = reshape(slice(logits, 1, n - 1, 1), {B_, logits.dim(2)}).value();
    return arch::values(out.memory);
  }

  const arch::SegmentModel& model_;
  arch::Memory memory_;                    // entering the current segment
  int64_t B_, seg_len_;
  std::vector<std::vector<int32_t>> rows_;  // the current, partial segment of each stream
  Tensor logits_;                           // (B, V), or undefined until asked for
};

// The sampler: logits (B, V) -> tokens (B) i32, one draw per row from `rng`.
Tensor sample(const Tensor& logits, const GenerateOptions& o, Rng& rng) {
  if (o.temperature <= 0) return nn::argmax_sample(logits);
  Tensor l = logits;
  const int64_t V = logits.dim(1);
  if (o.top_k > 0 && o.top_k < V)  // ceil((1 - thres) V) = k exactly
    l = nn::top_k_filter(l, 1.0 - (double(o.top_k) - 0.5) / double(V), nn::TopKRounding::ceil);
  return nn::multinomial_sample(l, o.temperature, rng);
}

}  // namespace

Generated generate(const arch::SegmentModel& model, int64_t seg_len, const Tensor& prime, arch::Memory memory,
                   const GenerateOptions& o, const OnTokens& on_tokens) {
  MNEMO_CHECK(seg_len > 0, "[generate] seg_len must be > 0, got " << seg_len);
  MNEMO_CHECK(o.length >= 0, "[generate] length must be >= 0, got " << o.length);
  MNEMO_CHECK(std::isfinite(o.temperature) && o.temperature >= 0,
              "[generate] temperature must be finite and >= 0, got " << o.temperature);
  MNEMO_CHECK(o.top_k >= 0, "[generate] top_k must be >= 0 (0 = all), got " << o.top_k);
  MNEMO_CHECK(prime.rank() == 2 && prime.dim(1) >= 1 && prime.dtype() == DType::i32,
              "[generate] expected a prime (B, P >= 1) i32, got " << prime.shape());
  const int64_t B = prime.dim(0);
  if (memory.empty()) memory = model.initial_memory(B);
  std::unique_ptr<arch::Generator> g = o.use_cache ? model.cached_generator(memory, B, seg_len) : nullptr;
  if (!g) g = std::make_unique<RerunGenerator>(model, memory, B, seg_len);
  Rng rng(o.seed);
  g->feed(prime);
  std::vector<int32_t> out(size_t(B * o.length));  // (B, length)
  for (int64_t i = 0; i < o.length; ++i) {
    const Tensor t = sample(g->next_logits(), o, rng);  // (B)
    for (int64_t b = 0; b < B; ++b) out[size_t(b * o.length + i)] = t.data<int32_t>()[b];
    if (on_tokens) on_tokens(t);
    g->feed(t.reshape({B, 1}));
  }
  return {Tensor::from_ints({B, o.length}, out), g->memory()};
}

std::vector<int32_t> generate(const arch::SegmentModel& model, int64_t seg_len, const std::vector<int32_t>& prompt,
                              const GenerateOptions& o, const OnTokens& on_tokens) {
  const std::vector<int32_t> prime = prompt.empty() ? std::vector<int32_t>{'\n'} : prompt;
  const Generated g = generate(model, seg_len, Tensor::from_ints({1, int64_t(prime.size())}, prime), {}, o, on_tokens);
  return {g.tokens.data<int32_t>(), g.tokens.data<int32_t>() + g.tokens.numel()};
}

std::string printable(const std::vector<int32_t>& tokens) {
  std::string s;
  for (int32_t t : tokens) {
    if ((t >= 32 && t < 127) || t == '\n' || t == '\t') {
      s += char(t);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(t) & 0xffu);
      s += buf;
    }
  }
  return s;
}

}  // namespace mnemo::experiments
