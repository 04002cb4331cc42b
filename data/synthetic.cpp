// Synthetic task generators and their answer-only scoring. Every sequence ends with its
// answer, so the distance between content and answer grows with L and spans segments.
#include "data/synthetic.h"

#include <algorithm>
#include <numeric>

#include "autograd/error.h"
#include "common/random_hash.h"

namespace mnemo::data {

const char* task_name(Task t) {
  switch (t) {
    case Task::copy: return "copy";
    case Task::reverse: return "reverse";
    case Task::assoc_recall: return "assoc_recall";
    case Task::selective_copy: return "selective_copy";
    case Task::needle: return "needle";
  }
  return "?";
}

Task parse_task(const std::string& name) {
  for (Task t : {Task::copy, Task::reverse, Task::assoc_recall, Task::selective_copy, Task::needle})
    if (name == task_name(t)) return t;
  MNEMO_FAIL("[data] unknown synthetic task '" << name
                                               << "' (known: copy, reverse, assoc_recall, selective_copy, needle)");
}

namespace {

int32_t lower(Rng& r) { return int32_t('a' + r.randint(26)); }
int32_t upper(Rng& r) { return int32_t('A' + r.randint(26)); }

struct Builder {
  std::vector<int32_t> tok;
  std::vector<uint8_t> ans;  // per target, i.e. tok[i+1] is an answer when ans[i]
  explicit Builder(int64_t L) : tok(size_t(L + 1), vocab::kBlank), ans(size_t(L), 0) {}
  void answer(int64_t pos, int32_t v) {  // token position pos (>= 1) is an answer
    tok[size_t(pos)] = v;
    ans[size_t(pos - 1)] = 1;
  }
};

// content at the start, blanks, then SEP and the content (reversed) ending at position L.
Sequence copy_like(int64_t L, int64_t n, bool reverse, Rng& r) {
  Builder b(L);
  std::vector<int32_t> s(static_cast<size_t>(n));
  for (auto& c : s) c = lower(r);
  std::copy(s.begin(), s.end(), b.tok.begin());
  if (reverse) std::reverse(s.begin(), s.end());
  b.tok[size_t(L - n)] = vocab::kSep;
  for (int64_t i = 0; i < n; ++i) b.answer(L - n + 1 + i, s[size_t(i)]);
  return {b.tok, b.ans};
}

// K pairs (distinct lowercase key, uppercase value) at the start; "? key value" at the end.
Sequence assoc_recall(int64_t L, int64_t K, Rng& r) {
  Builder b(L);
  std::vector<int32_t> keys(26);
  std::iota(keys.begin(), keys.end(), int32_t('a'));
  for (int64_t i = 0; i < K; ++i) std::swap(keys[size_t(i)], keys[size_t(i + r.randint(26 - i))]);
  std::vector<int32_t> values(static_cast<size_t>(K));
  for (int64_t i = 0; i < K; ++i) {
    values[size_t(i)] = upper(r);
    b.tok[size_t(2 * i)] = keys[size_t(i)];
    b.tok[size_t(2 * i + 1)] = values[size_t(i)];
  }
  const int64_t q = r.randint(K);
  b.tok[size_t(L - 2)] = vocab::kQuery;
  b.tok[size_t(L - 1)] = keys[size_t(q)];
  b.answer(L, values[size_t(q)]);
  return {b.tok, b.ans};
}

// n letters at random (ordered) places among noise in [0, L-n); SEP; the letters in order.
Sequence selective_copy(int64_t L, int64_t n, Rng& r) {
  Builder b(L);
  const int64_t region = L - n;
  std::vector<int64_t> places(static_cast<size_t>(region));
  std::iota(places.begin(), places.end(), 0);
  for (int64_t i = 0; i < n; ++i) std::swap(places[size_t(i)], places[size_t(i + r.randint(region - i))]);
  std::sort(places.begin(), places.begin() + n);
  std::fill_n(b.tok.begin(), region, vocab::kNoise);
  b.tok[size_t(region)] = vocab::kSep;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t c = lower(r);
    b.tok[size_t(places[size_t(i)])] = c;
    b.answer(region + 1 + i, c);
  }
  return {b.tok, b.ans};
}

// Filler of lowercase words and spaces; "#KEY=VALUE#" at `depth`; "?KEY=" then VALUE.
Sequence needle(int64_t L, int64_t n, int64_t kl, double depth, Rng& r) {
  Builder b(L);
  const int64_t needle_len = kl + n + 3, query_len = kl + 2;  // the value closes the sequence
  const int64_t haystack = L + 1 - query_len - n;
  for (int64_t i = 0; i < haystack; ++i) b.tok[size_t(i)] = r.randint(6) == 0 ? ' ' : lower(r);
  std::vector<int32_t> key(static_cast<size_t>(kl)), value(static_cast<size_t>(n));
  for (auto& c : key) c = upper(r);
  for (auto& c : value) c = upper(r);
  int64_t p = int64_t(depth * double(haystack - needle_len) + 0.5);
  b.tok[size_t(p++)] = vocab::kMark;
  for (int32_t c : key) b.tok[size_t(p++)] = c;
  b.tok[size_t(p++)] = vocab::kEq;
  for (int32_t c : value) b.tok[size_t(p++)] = c;
  b.tok[size_t(p)] = vocab::kMark;
  int64_t q = haystack;
  b.tok[size_t(q++)] = vocab::kQuery;
  for (int32_t c : key) b.tok[size_t(q++)] = c;
  b.tok[size_t(q++)] = vocab::kEq;
  for (int64_t i = 0; i < n; ++i) b.answer(q + i, value[size_t(i)]);
  return {b.tok, b.ans};
}

int64_t default_content_len(const SyntheticConfig& c) {
  switch (c.task) {
    case Task::copy:
    case Task::reverse: return c.length / 2;
    case Task::selective_copy: return std::max<int64_t>(1, c.length / 8);
    case Task::needle: return 4;
    case Task::assoc_recall: return 1;
  }
  return 1;
}

void check_config(const SyntheticConfig& c, int64_t n) {
  MNEMO_CHECK(c.length > 0 && c.segments > 0 && c.batch > 0,
              "[data] synthetic length, segments and batch must be positive");
  MNEMO_CHECK(c.length % c.segments == 0, "[data] synthetic length " << c.length << " is not divisible by "
                                                                    << c.segments << " segments");
  MNEMO_CHECK(n >= 1, "[data] synthetic content_len must be positive, got " << n);
  const char* name = task_name(c.task);
  switch (c.task) {
    case Task::copy:
    case Task::reverse:
    case Task::selective_copy:
      MNEMO_CHECK(2 * n <= c.length, "[data] " << name << ": content_len " << n << " needs length >= " << 2 * n);
      break;
    case Task::assoc_recall:
      MNEMO_CHECK(c.pairs >= 1 && c.pairs <= 26, "[data] assoc_recall: pairs must be in [1, 26], got " << c.pairs);
      MNEMO_CHECK(2 * c.pairs + 2 <= c.length,
                  "[data] assoc_recall: " << c.pairs << " pairs need length >= " << 2 * c.pairs + 2);
      break;
    case Task::needle:
      MNEMO_CHECK(c.key_len >= 1, "[data] needle: key_len must be positive");
      MNEMO_CHECK(c.depth >= 0 && c.depth <= 1, "[data] needle: depth must be in [0, 1], got " << c.depth);
      MNEMO_CHECK(2 * (c.key_len + n) + 5 <= c.length + 1,
                  "[data] needle: length " << c.length << " too short for key " << c.key_len << " and value " << n);
      break;
  }
}

}  // namespace

Sequence generate_sequence(const SyntheticConfig& c, int64_t n, Rng& r) {
  switch (c.task) {
    case Task::copy: return copy_like(c.length, n, false, r);
    case Task::reverse: return copy_like(c.length, n, true, r);
    case Task::assoc_recall: return assoc_recall(c.length, c.pairs, r);
    case Task::selective_copy: return selective_copy(c.length, n, r);
    case Task::needle: return needle(c.length, n, c.key_len, c.depth, r);
  }
  MNEMO_FAIL("[data] bad synthetic task");
}

SyntheticConfig SyntheticConfig::at_batch(int64_t index) const {
  const int64_t stage = curriculum_steps > 0 ? index / curriculum_steps : 0;
  if (curriculum_segments.empty() || stage >= int64_t(curriculum_segments.size())) return *this;
  SyntheticConfig c = *this;
  c.segments = curriculum_segments[size_t(stage)];
  c.length = c.segments * seg_len();
  return c;
}

SyntheticTask::SyntheticTask(SyntheticConfig cfg)
    : cfg_(cfg), content_len_(cfg.content_len > 0 ? cfg.content_len : default_content_len(cfg)) {
  check_config(cfg_, content_len_);
  MNEMO_CHECK(cfg_.curriculum_segments.empty() || cfg_.curriculum_steps > 0,
              "[data] a synthetic curriculum needs curriculum_steps > 0");
  for (int64_t s : cfg_.curriculum_segments) {
    MNEMO_CHECK(s >= 1, "[data] curriculum segments must be positive, got " << s);
    SyntheticConfig stage = cfg_;
    stage.segments = s;
    stage.length = s * cfg_.seg_len();
    check_config(stage, content_len_);
  }
}

Batch SyntheticTask::batch(int64_t index) const {
  MNEMO_CHECK(index >= 0, "[data] negative synthetic batch index " << index);
  // Each batch gets its own stream, so batch i never depends on batches before it.
  Rng rng(mix64(mix64(cfg_.seed) ^ (uint64_t(index) * 0xd1b54a32d192ed03ULL)));
  const SyntheticConfig cfg = cfg_.at_batch(index);
  const int64_t B = cfg.batch, W = cfg.length + 1;
  std::vector<int32_t> rows;
  std::vector<uint8_t> mask;
  rows.reserve(size_t(B * W));
  mask.reserve(size_t(B * (W - 1)));
  for (int64_t b = 0; b < B; ++b) {
    const Sequence s = generate_sequence(cfg, content_len_, rng);
    rows.insert(rows.end(), s.tokens.begin(), s.tokens.end());
    mask.insert(mask.end(), s.answer.begin(), s.answer.end());
  }
  Batch out = make_batch(rows, B, cfg.segments, cfg.seg_len(), mask);
  out.reset_memory = true;  // sequences are independent
  return out;
}

void SyntheticTask::set_cursor(const std::vector<int64_t>& c) {
  MNEMO_CHECK(c.size() == 1 && c[0] >= 0, "[data] synthetic cursor must be one batch index");
  index_ = c[0];
}

Score score(const Batch& batch, const std::vector<Tensor>& predictions) {
  MNEMO_CHECK(predictions.size() == batch.targets.size(),
              "[data] accuracy: " << predictions.size() << " prediction segments for " << batch.targets.size());
  const int64_t B = batch.batch_size(), T = batch.seg_len();
  std::vector<uint8_t> all_right(size_t(B), 1), has_answer(size_t(B), 0);
  Score sc;
  for (size_t s = 0; s < predictions.size(); ++s) {
    MNEMO_CHECK(predictions[s].shape() == batch.targets[s].shape(),
                "[data] accuracy: prediction " << predictions[s].shape() << " for targets " << batch.targets[s].shape());
    const int32_t* p = predictions[s].data<int32_t>();  // (B, T)
    const int32_t* y = batch.targets[s].data<int32_t>();
    const uint8_t* m = batch.loss_mask.empty() ? nullptr : batch.loss_mask[s].data<uint8_t>();
    for (int64_t i = 0; i < B * T; ++i) {
      if (m && !m[i]) continue;
      const bool ok = p[i] == y[i];
      ++sc.answers;
      sc.correct += ok;
      has_answer[size_t(i / T)] = 1;
      if (!ok) all_right[size_t(i / T)] = 0;
    }
  }
  for (int64_t b = 0; b < B; ++b)
    if (has_answer[size_t(b)]) {
      ++sc.sequences;
      sc.exact += all_right[size_t(b)];
    }
  return sc;
}

double accuracy(const Batch& batch, const std::vector<Tensor>& predictions) {
  return score(batch, predictions).accuracy();
}

}  // namespace mnemo::data
