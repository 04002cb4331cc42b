// Stream batching: contiguous stateful streams, random crops and evaluation streams.
#include "data/streams.h"

#include <algorithm>

#include "autograd/error.h"

namespace mnemo::data {

namespace {

void check_shape(const StreamShape& s) {
  MNEMO_CHECK(s.batch > 0 && s.segments > 0 && s.seg_len > 0,
              "[data] batch, segments and seg_len must be positive, got " << s.batch << ", " << s.segments
                                                                          << ", " << s.seg_len);
}

// Copies row b's S*T+1 tokens starting at `start` of the span.
void copy_window(const ByteSpan& t, int64_t start, int64_t n, int32_t* row) {
  const uint8_t* p = t.data() + start;
  for (int64_t i = 0; i < n; ++i) row[i] = p[i];
}

}  // namespace

Batch make_batch(const std::vector<int32_t>& rows, int64_t B, int64_t S, int64_t T,
                 const std::vector<uint8_t>& mask) {
  const int64_t W = S * T + 1;
  MNEMO_CHECK(int64_t(rows.size()) == B * W, "[data] make_batch: " << rows.size() << " tokens for B=" << B
                                                                   << " rows of " << W);
  MNEMO_CHECK(mask.empty() || int64_t(mask.size()) == B * (W - 1), "[data] make_batch: mask of " << mask.size());
  Batch out;
  for (int64_t s = 0; s < S; ++s) {
    Tensor x = Tensor::empty({B, T}, DType::i32), y = Tensor::empty({B, T}, DType::i32);  // (B, T)
    int32_t *xp = x.data<int32_t>(), *yp = y.data<int32_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t i = b * W + s * T + t;
        xp[b * T + t] = rows[size_t(i)];
        yp[b * T + t] = rows[size_t(i + 1)];
      }
    out.inputs.push_back(x);
    out.targets.push_back(y);
    if (mask.empty()) continue;
    Tensor m = Tensor::empty({B, T}, DType::u8);  // (B, T)
    uint8_t* mp = m.data<uint8_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) mp[b * T + t] = mask[size_t(b * (W - 1) + s * T + t)];
    out.loss_mask.push_back(m);
  }
  return out;
}

// ---- ContiguousStreams ----

ContiguousStreams::ContiguousStreams(ByteSpan tokens, StreamShape shape)
    : tokens_(std::move(tokens)), shape_(shape), stream_len_(0) {
  check_shape(shape);
  stream_len_ = tokens_.size / shape.batch;
  MNEMO_CHECK(stream_len_ >= shape.tokens() + 1,
              "[data] " << tokens_.name << " has " << tokens_.size << " bytes: too few for " << shape.batch
                        << " streams of " << shape.segments << " x " << shape.seg_len << " + 1 tokens");
}

Batch ContiguousStreams::next() {
  const int64_t B = shape_.batch, W = shape_.tokens() + 1;
  if (pos_ + W > stream_len_) pos_ = 0;  // wrap: the streams restart, so must the memory
  const bool reset = pos_ == 0;
  std::vector<int32_t> rows(size_t(B * W));
  for (int64_t b = 0; b < B; ++b) copy_window(tokens_, b * stream_len_ + pos_, W, rows.data() + b * W);
  Batch out = make_batch(rows, B, shape_.segments, shape_.seg_len);
  out.reset_memory = reset;
  pos_ += shape_.tokens();  // the last target becomes the next batch's first input
  return out;
}

std::vector<int64_t> ContiguousStreams::cursor() const {
  std::vector<int64_t> c(size_t(shape_.batch));
  for (int64_t b = 0; b < shape_.batch; ++b) c[size_t(b)] = b * stream_len_ + pos_;
  return c;
}

void ContiguousStreams::set_cursor(const std::vector<int64_t>& offsets) {
  MNEMO_CHECK(int64_t(offsets.size()) == shape_.batch,
              "[data] stream cursor has " << offsets.size() << " offsets for " << shape_.batch << " streams");
  const int64_t pos = offsets[0];
  for (int64_t b = 0; b < shape_.batch; ++b)
    MNEMO_CHECK(offsets[size_t(b)] == b * stream_len_ + pos && pos >= 0 && pos < stream_len_,
                "[data] stream cursor does not match " << shape_.batch << " streams of " << stream_len_
                                                       << " bytes of " << tokens_.name);
  pos_ = pos;
}

// ---- RandomCrops ----

RandomCrops::RandomCrops(ByteSpan tokens, StreamShape shape, uint64_t seed)
    : tokens_(std::move(tokens)), shape_(shape), rng_(seed) {
  check_shape(shape);
  MNEMO_CHECK(tokens_.size >= shape.tokens() + 1, "[data] " << tokens_.name << " has " << tokens_.size
                                                            << " bytes: too few for crops of "
                                                            << shape.tokens() + 1);
}

Batch RandomCrops::next() {
  const int64_t B = shape_.batch, W = shape_.tokens() + 1;
  std::vector<int32_t> rows(size_t(B * W));
  for (int64_t b = 0; b < B; ++b)
    copy_window(tokens_, rng_.randint(tokens_.size - W + 1), W, rows.data() + b * W);
  Batch out = make_batch(rows, B, shape_.segments, shape_.seg_len);
  out.reset_memory = true;  // samples are unrelated to the previous batch's
  return out;
}

void RandomCrops::set_cursor(const std::vector<int64_t>& c) {
  MNEMO_CHECK(c.size() == 1, "[data] random-crop cursor must be one Rng state, got " << c.size() << " values");
  rng_.set_state(uint64_t(c[0]));
}

// ---- EvalStreams ----

EvalStreams::EvalStreams(ByteSpan tokens, StreamShape shape) : tokens_(std::move(tokens)), shape_(shape) {
  check_shape(shape);
  MNEMO_CHECK(tokens_.size - 1 >= shape.batch,
              "[data] " << tokens_.name << " has " << tokens_.size << " bytes: too few for " << shape.batch
                        << " evaluation streams");
  stream_len_ = (tokens_.size - 1 + shape.batch - 1) / shape.batch;
}

Batch EvalStreams::next() {
  MNEMO_CHECK(!done(), "[data] evaluation streams of " << tokens_.name << " are exhausted");
  const int64_t B = shape_.batch, n = shape_.tokens(), W = n + 1, N = tokens_.size;
  std::vector<int32_t> rows(size_t(B * W), 0);
  std::vector<uint8_t> mask(size_t(B * n), 0);
  bool padded = false;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t begin = b * stream_len_ + next_ * n;                        // first input position
    const int64_t end = std::min((b + 1) * stream_len_, N - 1);               // inputs end (exclusive)
    const int64_t count = std::clamp<int64_t>(end - begin, 0, n);             // real targets in this row
    if (count > 0) copy_window(tokens_, begin, count + 1, rows.data() + b * W);
    std::fill_n(mask.begin() + b * n, count, uint8_t(1));
    padded |= count < n;
  }
  Batch out = make_batch(rows, B, shape_.segments, shape_.seg_len, padded ? mask : std::vector<uint8_t>{});
  out.reset_memory = next_ == 0;
  ++next_;
  return out;
}

}  // namespace mnemo::data
