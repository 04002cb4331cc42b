// Evaluation: the model run over segments in stream order with memory carried, nothing
// recorded, for every caller (the run loop's held-out batches, `mnemo eval` on held-out data,
// on a token file or on a raw byte stream of any length). Segments come from a SegmentSource
// one at a time and nothing is collected but sums, so memory stays one segment's whatever the
// length; an optional observer sees each segment's logits and memory as it goes (--dump-logits
// writes them out that way).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "architectures/segment_model.h"
#include "data/streams.h"

namespace mnemo::experiments {

// The counted tokens whose position in their stream (from its start, or from the last segment
// that resets memory) is
// in [begin, end): how the loss falls as memory accumulates. Bucket 0 is [0, w), bucket
// k >= 1 is [w 2^(k-1), w 2^k), with w the first segment's length: the first two segments
// one bucket each, then log-spaced (a 10M-token stream in segments of 256 has 17).
struct PositionBucket {
  int64_t begin = 0, end = 0;
  double nats = 0;            // summed token cross-entropy
  int64_t correct = 0, tokens = 0;
  double loss() const { return tokens > 0 ? nats / double(tokens) : 0.0; }
  double bits_per_byte() const;
  double accuracy() const { return tokens > 0 ? double(correct) / double(tokens) : 0.0; }
};

// The bucket of a position for first-bucket width w, and the positions it covers.
int64_t position_bucket(int64_t position, int64_t width);
PositionBucket bucket_range(int64_t bucket, int64_t width);

struct EvalResult {
  double loss = 0;            // mean token cross-entropy (nats)
  double bits_per_byte = 0;   // loss / ln 2: a token is a byte
  double accuracy = 0;        // argmax == target over the counted tokens
  int64_t tokens = 0;
  // Every bucket up to the furthest position counted (some may count no token: a mask); the
  // last one ends at that position + 1.
  std::vector<PositionBucket> by_position;
};

// One segment of B streams.
struct EvalSegment {
  Tensor tokens;              // (B, n) i32
  Tensor targets;             // (B, n) i32, kIgnoreIndex where not counted; undefined: no labels
  bool reset_memory = false;  // start from the initial memory (the first segment always does)
};

// Segments in stream order: next() until it returns nothing.
class SegmentSource {
 public:
  virtual ~SegmentSource() = default;
  virtual std::optional<EvalSegment> next() = 0;
  // Token positions (streams x columns) in all, for a progress bar; 0 when not known.
  virtual int64_t total_tokens() const { return 0; }
};

// Batches (B streams x S segments) segment by segment, with their loss masks; a batch's
// reset_memory applies to its first segment. next_batch returns nothing at the end.
class BatchSegments : public SegmentSource {
 public:
  explicit BatchSegments(std::function<std::optional<data::Batch>()> next_batch);
  explicit BatchSegments(const std::vector<data::Batch>& batches);  // walks the list; it must outlive this
  std::optional<EvalSegment> next() override;

 private:
  std::function<std::optional<data::Batch>()> next_batch_;
  data::Batch batch_;
  int64_t s_ = 0;  // next segment of batch_
};

// A raw byte file as one stream (B = 1), each byte's target the next byte: N bytes give
// N - 1 tokens in segments of seg_len (the last may be shorter). Reads one segment and
// one byte of lookahead at a time, never the whole file.
class ByteFileSegments : public SegmentSource {
 public:
  ByteFileSegments(const std::string& path, int64_t seg_len);
  ~ByteFileSegments() override;
  std::optional<EvalSegment> next() override;
  int64_t total_tokens() const override { return total_; }

 private:
  std::string path_;
  int64_t seg_len_;
  std::FILE* file_ = nullptr;
  int next_byte_ = -1;  // the lookahead: the next segment's first token
  int64_t total_ = 0;   // the file's size less one (0 for a pipe)
};

// A .safetensors token file: input.tokens (B, N) i32 and optional input.labels (B, N) (the
// targets; without them the segments carry no targets), in segments of seg_len columns.
class TokenFileSegments : public SegmentSource {
 public:
  TokenFileSegments(const std::string& path, int64_t seg_len);
  std::optional<EvalSegment> next() override;
  int64_t total_tokens() const override { return tokens_.numel(); }

 private:
  Tensor tokens_, labels_;  // (B, N)
  int64_t seg_len_, start_ = 0;
};

// A token file by its name: *.safetensors as TokenFileSegments, anything else as raw bytes.
std::unique_ptr<SegmentSource> open_token_file(const std::string& path, int64_t seg_len);

// What the observer sees after each segment; the references live until it returns.
struct SegmentReport {
  int64_t index = 0;                   // 0, 1, ... from the first segment
  const Tensor& logits;                // (B, n, V)
  const arch::Memory& memory;          // leaving the segment
  double loss = 0;                     // mean over its counted tokens (0 when none)
  int64_t tokens = 0;                  // counted tokens (0 without targets)
};
using SegmentObserver = std::function<void(const SegmentReport&)>;

class SafetensorsWriter;  // experiments/checkpoint.h
// Writes each segment's logits and memory to `out` as it comes: "logits.seg<s>" (B, n, V),
// then "mem.seg<s>.<name>" in name order (the layout of `mnemo eval --dump-logits`).
SegmentObserver dump_segments(SafetensorsWriter& out);

// Runs the model over every segment of `source` with memory carried (reset where a segment
// says so), nothing recorded. Counts the targets that are not kIgnoreIndex, overall and by
// position (EvalResult::by_position).
EvalResult evaluate(const arch::SegmentModel& model, SegmentSource& source, const SegmentObserver& observe = {});
// The same over a list of batches (held-out data built in advance).
EvalResult evaluate(const arch::SegmentModel& model, const std::vector<data::Batch>& batches);

}  // namespace mnemo::experiments
