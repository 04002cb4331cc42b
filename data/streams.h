// Batches for recurrent-memory training: B streams x S segments x T tokens.
// ContiguousStreams (stateful: batch n+1 continues batch n of the same streams),
// RandomCrops (independent random windows, the reference repositories' way) and
// EvalStreams (a held-out split walked once as B streams, for bits per byte).
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "data/byte_corpus.h"

namespace mnemo::data {

struct Batch {
  std::vector<Tensor> inputs, targets;  // per segment, i32 (B, T); targets = inputs shifted by one
  std::vector<Tensor> loss_mask;        // optional u8 (B, T) per segment; empty = every position
  bool reset_memory = false;            // the streams restart: start from the initial memory
  int64_t batch_size() const { return inputs.empty() ? 0 : inputs[0].dim(0); }
  int64_t segments() const { return int64_t(inputs.size()); }
  int64_t seg_len() const { return inputs.empty() ? 0 : inputs[0].dim(1); }
};

// Builds a Batch from B rows of S*T+1 tokens (row-major). `mask`, when not empty, holds
// B rows of S*T target flags (0/1).
Batch make_batch(const std::vector<int32_t>& rows, int64_t B, int64_t S, int64_t T,
                 const std::vector<uint8_t>& mask = {});

// What a trainer needs from any data source; the cursor is what a checkpoint stores.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch next() = 0;
  virtual std::vector<int64_t> cursor() const = 0;
  virtual void set_cursor(const std::vector<int64_t>& c) = 0;
};

struct StreamShape {
  int64_t batch = 1;     // B streams
  int64_t segments = 1;  // S segments per batch
  int64_t seg_len = 1;   // T tokens per segment
  int64_t tokens() const { return segments * seg_len; }  // per stream per batch
};

// The split cut into B equal contiguous streams; each batch takes the next S*T tokens of
// every stream (plus one for the targets). At the end it wraps to the stream starts and
// sets reset_memory, as it does for the very first batch.
class ContiguousStreams : public BatchSource {
 public:
  ContiguousStreams(ByteSpan tokens, StreamShape shape);
  Batch next() override;
  // Cursor: B offsets into the split, where each stream's next batch starts.
  std::vector<int64_t> cursor() const override;
  void set_cursor(const std::vector<int64_t>& offsets) override;
  int64_t stream_length() const { return stream_len_; }
  int64_t batches_per_epoch() const { return (stream_len_ - 1) / shape_.tokens(); }

 private:
  ByteSpan tokens_;
  StreamShape shape_;
  int64_t stream_len_;
  int64_t pos_ = 0;  // same offset within every stream
};

// Each sample a window of S*T+1 tokens at a uniform random start; always reset_memory.
class RandomCrops : public BatchSource {
 public:
  RandomCrops(ByteSpan tokens, StreamShape shape, uint64_t seed);
  Batch next() override;
  std::vector<int64_t> cursor() const override { return {int64_t(rng_.state())}; }  // the Rng state
  void set_cursor(const std::vector<int64_t>& c) override;
  uint64_t rng_state() const { return rng_.state(); }
  void set_rng_state(uint64_t s) { rng_.set_state(s); }

 private:
  ByteSpan tokens_;
  StreamShape shape_;
  Rng rng_;
};

// The whole split as B streams, walked once: every byte but the first is a target exactly
// once. Stream b predicts positions [b*L+1, (b+1)*L] with L = ceil((N-1)/B); the tail of
// the last batch is padded and masked out (loss_mask is set only on padded batches).
class EvalStreams {
 public:
  EvalStreams(ByteSpan tokens, StreamShape shape);
  bool done() const { return next_ >= num_batches(); }
  Batch next();  // an error after done()
  void restart() { next_ = 0; }
  int64_t num_batches() const { return (stream_len_ + shape_.tokens() - 1) / shape_.tokens(); }
  int64_t num_targets() const { return tokens_.size - 1; }

 private:
  ByteSpan tokens_;
  StreamShape shape_;
  int64_t stream_len_;  // targets per stream
  int64_t next_ = 0;
};

}  // namespace mnemo::data
