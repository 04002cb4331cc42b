#include "architectures/segment_cache.h"

#include <algorithm>

#include "autograd/ops/ops.h"
#include "common/serial_scope.h"

namespace mnemo::arch {

Var append_keys(const Var& cache, const Var& x) {
  return !cache.defined() ? x : !x.defined() ? cache : concat({cache, x}, 2);
}

std::pair<Var, Var> project_slots(const nn::MultiheadAttention& a, const Var& slots) {
  const int64_t Hk = a.kv_heads(), half = Hk * a.cfg.dim_head;
  const int64_t halves[] = {half, half};
  std::vector<Var> kv = split(a.to_kv(slots), -1, halves);
  return {nn::split_heads(kv[0], Hk), nn::split_heads(kv[1], Hk)};
}

Tensor last_logits(const Var& logits) {
  const int64_t B = logits.dim(0), n = logits.dim(1), V = logits.dim(2);
  return reshape(n == 1 ? logits : slice(logits, 1, n - 1, 1), {B, V}).value();
}

SegmentCache::SegmentCache(const SegmentModel& model, const Memory& memory, int64_t batch, int64_t seg_len,
                           const char* name)
    : model_(model), B_(batch), seg_len_(seg_len), name_(name), memory_(memory), rows_(size_t(batch)) {}

void SegmentCache::feed(const Tensor& tokens) {
  MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(0) == B_ && tokens.dim(1) >= 1 && tokens.dtype() == DType::i32,
              "[" << name_ << " generator] expected tokens (" << B_ << ", n >= 1) i32, got " << tokens.shape());
  for (int64_t t = 0; t < tokens.dim(1);) {  // up to the end of the current segment at a time
    const int64_t n = std::min(seg_len_ - int64_t(rows_[0].size()), tokens.dim(1) - t);
    feed_part(n == tokens.dim(1) ? tokens : token_columns(tokens, t, n));
    t += n;
  }
}

Tensor SegmentCache::next_logits() {
  MNEMO_CHECK(last_.defined(), "[" << name_ << " generator] feed at least one token before asking for logits");
  return last_;
}

void SegmentCache::feed_part(const Tensor& tokens) {
  const int64_t pos = int64_t(rows_[0].size()), n = tokens.dim(1);
  for (int64_t b = 0; b < B_; ++b)
    rows_[size_t(b)].insert(rows_[size_t(b)].end(), tokens.data<int32_t>() + b * n, tokens.data<int32_t>() + (b + 1) * n);
  if (pos + n < seg_len_) {
    if (!begun_) begin_segment(tape_, constants(tape_, memory_));
    begun_ = true;
    const SerialScope serial(B_ * n <= kSerialDecodeRows);
    last_ = extend(tape_, tokens, pos);
    return;
  }
  // The segment is complete: forward() over it from the memory that entered it, as in
  // training and evaluation; the next segment's cache starts from the memory it leaves.
  std::vector<int32_t> flat;
  for (auto& r : rows_) {
    flat.insert(flat.end(), r.begin(), r.end());
    r.clear();
  }
  Tape tape;
  Tape::NoRecord no_record(tape);
  const SegmentOut out = model_.forward(tape, Tensor::from_ints({B_, seg_len_}, flat), constants(tape, memory_));
  last_ = last_logits(out.logits);
  memory_ = values(out.memory);
  begun_ = false;
}

}  // namespace mnemo::arch
