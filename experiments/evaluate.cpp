#include "experiments/evaluate.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "autograd/ops/ops.h"
#include "experiments/bptt.h"
#include "experiments/checkpoint.h"
#include "experiments/on_device.h"

namespace mnemo::experiments {
namespace {

struct Score {
  double nats = 0;
  int64_t correct = 0, tokens = 0;
};

// Where a segment's tokens go by position: column j of the segment is at position first + j
// of its stream; `buckets` grows to the furthest bucket reached.
struct Positions {
  int64_t first = 0, width = 0, furthest = -1;
  std::vector<PositionBucket>& buckets;
  void add(int64_t column, double loss, bool hit) {
    furthest = std::max(furthest, first + column);
    const size_t k = size_t(position_bucket(first + column, width));
    while (buckets.size() <= k) buckets.push_back(bucket_range(int64_t(buckets.size()), width));
    buckets[k].nats += loss, buckets[k].correct += hit, ++buckets[k].tokens;
  }
};

// Summed loss and argmax hits over the counted targets, read straight from the logits.
template <class T>
Score score_rows(const T* logits, int64_t V, int64_t n, const int32_t* targets, const std::vector<double>& losses,
                 Positions& at) {
  Score s;
  for (size_t i = 0; i < losses.size(); ++i) {
    if (targets[i] == kIgnoreIndex) continue;
    const T* row = logits + int64_t(i) * V;
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (row[v] > row[best]) best = v;  // the first maximum, as argmax_sample
    s.nats += losses[i];
    s.correct += best == targets[i];
    ++s.tokens;
    at.add(int64_t(i) % n, losses[i], best == targets[i]);
  }
  return s;
}

Score score(Var logits, const Tensor& targets, Positions& at) {  // logits (B, n, V), targets (B, n)
  const std::vector<double> losses = cross_entropy(logits, targets, kIgnoreIndex, Reduction::none).value().to_vector();
  // Accuracy needs each row's argmax, which no kernel computes: the logits come to the host
  // (a copy of (B, n, V) per segment on a GPU; evaluation only).
  const Tensor l = logits.value().to(Device::cpu);
  const int64_t n = l.dim(1), V = l.dim(-1);
  if (l.dtype() == DType::f64) return score_rows(l.data<double>(), V, n, targets.data<int32_t>(), losses, at);
  return score_rows(l.data<float>(), V, n, targets.data<int32_t>(), losses, at);
}

}  // namespace

// ---- positions ----

double PositionBucket::bits_per_byte() const { return loss() / std::log(2.0); }

int64_t position_bucket(int64_t position, int64_t width) {
  MNEMO_CHECK(width > 0 && position >= 0, "[eval] position bucket of " << position << " for width " << width);
  int64_t k = 0;
  for (int64_t end = width; position >= end; end *= 2) ++k;
  return k;
}

PositionBucket bucket_range(int64_t bucket, int64_t width) {
  PositionBucket b;
  b.begin = bucket == 0 ? 0 : width << (bucket - 1);
  b.end = width << bucket;
  return b;
}

// ---- sources ----

BatchSegments::BatchSegments(std::function<std::optional<data::Batch>()> next_batch)
    : next_batch_(std::move(next_batch)) {}

BatchSegments::BatchSegments(const std::vector<data::Batch>& batches)
    : BatchSegments([&batches, i = size_t(0)]() mutable -> std::optional<data::Batch> {
        if (i == batches.size()) return std::nullopt;
        return batches[i++];  // a shallow copy: tensors share their storage
      }) {}

std::optional<EvalSegment> BatchSegments::next() {
  while (s_ >= batch_.segments()) {
    std::optional<data::Batch> b = next_batch_();
    if (!b) return std::nullopt;
    batch_ = std::move(*b);
    s_ = 0;
  }
  EvalSegment seg{.tokens = batch_.inputs[size_t(s_)], .targets = masked_targets(batch_, s_),
                  .reset_memory = s_ == 0 && batch_.reset_memory};
  ++s_;
  return seg;
}

ByteFileSegments::ByteFileSegments(const std::string& path, int64_t seg_len) : path_(path), seg_len_(seg_len) {
  MNEMO_CHECK(seg_len > 0, "[eval] segment length must be > 0, got " << seg_len);
  file_ = std::fopen(path.c_str(), "rb");
  MNEMO_CHECK(file_, "[eval] cannot open the token file '" << path << "': " << std::strerror(errno));
  next_byte_ = std::fgetc(file_);
  const int second = std::fgetc(file_);
  if (second != EOF) std::ungetc(second, file_);
  std::error_code ec;  // a pipe or a device has no size: the total stays unknown
  if (std::filesystem::is_regular_file(path, ec)) {
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (!ec) total_ = int64_t(size) - 1;
  }
  if (next_byte_ == EOF || second == EOF) {
    std::fclose(file_);
    file_ = nullptr;
    MNEMO_CHECK(false, "[eval] the token file '" << path << "' has " << (next_byte_ == EOF ? 0 : 1)
                                                  << " bytes; it needs at least 2 (an input and its target)");
  }
}

ByteFileSegments::~ByteFileSegments() {
  if (file_) std::fclose(file_);
}

std::optional<EvalSegment> ByteFileSegments::next() {
  if (!file_) return std::nullopt;
  std::vector<uint8_t> bytes(size_t(seg_len_) + 1);  // the lookahead, then up to seg_len more
  bytes[0] = uint8_t(next_byte_);
  const size_t got = std::fread(bytes.data() + 1, 1, size_t(seg_len_), file_);
  MNEMO_CHECK(!std::ferror(file_), "cannot read '" << path_ << "': " << std::strerror(errno));
  if (got < size_t(seg_len_)) {  // the end: nothing follows this segment
    std::fclose(file_);
    file_ = nullptr;
    if (got == 0) return std::nullopt;
  }
  next_byte_ = bytes[got];
  const int64_t n = int64_t(got);
  EvalSegment seg;
  seg.tokens = Tensor::from_ints({1, n}, std::vector<int32_t>(bytes.begin(), bytes.begin() + n));
  seg.targets = Tensor::from_ints({1, n}, std::vector<int32_t>(bytes.begin() + 1, bytes.begin() + n + 1));
  return seg;
}

TokenFileSegments::TokenFileSegments(const std::string& path, int64_t seg_len) : seg_len_(seg_len) {
  MNEMO_CHECK(seg_len > 0, "[eval] segment length must be > 0, got " << seg_len);
  const Safetensors st = read_safetensors(path);
  auto it = st.tensors.find("input.tokens");
  MNEMO_CHECK(it != st.tensors.end(), "'" << path << "' has no tensor 'input.tokens'");
  tokens_ = it->second;
  MNEMO_CHECK(tokens_.rank() == 2 && tokens_.dim(1) >= 1 && tokens_.dtype() == DType::i32,
              "'" << path << "': input.tokens must be (B, N >= 1) integers, got " << tokens_.dtype() << " "
                  << tokens_.shape());
  if (auto l = st.tensors.find("input.labels"); l != st.tensors.end()) {
    labels_ = l->second;
    MNEMO_CHECK(labels_.shape() == tokens_.shape() && labels_.dtype() == DType::i32,
                "'" << path << "': input.labels " << labels_.dtype() << " " << labels_.shape()
                    << " must be integers shaped like input.tokens " << tokens_.shape());
  }
}

std::optional<EvalSegment> TokenFileSegments::next() {
  const int64_t N = tokens_.dim(1);
  if (start_ >= N) return std::nullopt;
  const int64_t n = std::min(seg_len_, N - start_);
  EvalSegment seg;
  seg.tokens = arch::token_columns(tokens_, start_, n);
  if (labels_.defined()) seg.targets = arch::token_columns(labels_, start_, n);
  start_ += n;
  return seg;
}

std::unique_ptr<SegmentSource> open_token_file(const std::string& path, int64_t seg_len) {
  // fopen succeeds on a directory and the first read fails: say what is wrong instead.
  MNEMO_CHECK(!std::filesystem::is_directory(path), "[eval] the token file '" << path << "' is a directory");
  if (path.ends_with(".safetensors")) return std::make_unique<TokenFileSegments>(path, seg_len);
  return std::make_unique<ByteFileSegments>(path, seg_len);
}

// ---- evaluation ----

SegmentObserver dump_segments(SafetensorsWriter& out) {
  return [&out](const SegmentReport& r) {
    const std::string seg = "seg" + std::to_string(r.index);
    out.add("logits." + seg, r.logits);
    for (const auto& [name, t] : r.memory) out.add("mem." + seg + "." + name, t);
  };
}

EvalResult evaluate(const arch::SegmentModel& model, SegmentSource& source, const SegmentObserver& observe) {
  EvalResult res;
  arch::Memory memory;
  double nats = 0;
  int64_t correct = 0;
  Positions at{.buckets = res.by_position};
  // On the device a segment's tokens and targets go there from pinned memory, as training's.
  const bool pin = device_of(model) == Device::cuda;
  for (int64_t index = 0;; ++index) {
    const std::optional<EvalSegment> seg = source.next();
    if (!seg) break;
    const Tensor tokens = pin ? seg->tokens.pinned() : seg->tokens;     // (B, n)
    const Tensor targets = pin ? seg->targets.pinned() : seg->targets;  // (B, n) or undefined
    if (starts_fresh(seg->reset_memory, /*stateful=*/true, memory)) memory = model.initial_memory(tokens.dim(0));
    if (seg->reset_memory) at.first = 0;  // a new stream (a model without memory restarts every segment regardless)
    if (at.width == 0) at.width = tokens.dim(1);
    Tape tape;
    Tape::NoRecord no_record(tape);
    const arch::SegmentOut out = model.forward(tape, tokens, arch::constants(tape, memory));
    memory = arch::values(out.memory);
    const Score s = targets.defined() ? score(out.logits, targets, at) : Score{};
    at.first += tokens.dim(1);
    nats += s.nats, correct += s.correct, res.tokens += s.tokens;
    if (observe)
      observe({.index = index, .logits = out.logits.value(), .memory = memory,
               .loss = s.tokens > 0 ? s.nats / double(s.tokens) : 0.0, .tokens = s.tokens});
  }
  if (!res.by_position.empty())  // the last bucket ends where the stream does
    res.by_position.back().end = std::min(res.by_position.back().end, at.furthest + 1);
  if (res.tokens > 0) {
    res.loss = nats / double(res.tokens);
    res.bits_per_byte = res.loss / std::log(2.0);
    res.accuracy = double(correct) / double(res.tokens);
  }
  return res;
}

EvalResult evaluate(const arch::SegmentModel& model, const std::vector<data::Batch>& batches) {
  BatchSegments source(batches);
  return evaluate(model, source);
}

}  // namespace mnemo::experiments
