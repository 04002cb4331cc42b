// Synthetic long-range tasks generated from a seed: copy, reverse, associative recall,
// selective copy and a character needle-in-a-haystack. Each sequence has L+1 tokens
// (L inputs, L targets) cut into S segments of T = L / S; the question comes at the end,
// so answering needs what earlier segments saw. Losses count only answer tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/streams.h"

namespace mnemo::data {

enum class Task { copy, reverse, assoc_recall, selective_copy, needle };
const char* task_name(Task t);
Task parse_task(const std::string& name);  // an error lists the known names

// Vocabulary (bytes): content is letters, markers are distinct punctuation.
namespace vocab {
constexpr int32_t kBlank = '_';  // padding between the content and the question
constexpr int32_t kSep = '|';    // "now copy"
constexpr int32_t kNoise = '.';  // selective copy's distractors
constexpr int32_t kQuery = '?';  // associative recall / needle question
constexpr int32_t kMark = '#';   // needle brackets: #KEY=VALUE#
constexpr int32_t kEq = '=';
}  // namespace vocab

struct SyntheticConfig {
  Task task = Task::copy;
  int64_t length = 64;       // L input tokens per sequence
  int64_t segments = 4;      // S; T = L / S
  int64_t batch = 8;         // B sequences per batch
  int64_t content_len = 0;   // copied / needle value length; 0 = the task's default
  int64_t pairs = 4;         // K key/value pairs (assoc_recall), at most 26
  int64_t key_len = 3;       // needle key length
  double depth = 0.5;        // needle position as a fraction of the haystack
  uint64_t seed = 0;
  // A curriculum over the sequence's reach (the RMT paper's): batch i < K * curriculum_steps
  // has curriculum_segments[i / curriculum_steps] segments of the same length, so the
  // content and the question come closer together; later batches have `segments`.
  std::vector<int64_t> curriculum_segments = {};
  int64_t curriculum_steps = 0;
  int64_t seg_len() const { return length / segments; }
  SyntheticConfig at_batch(int64_t index) const;  // the config batch `index` is drawn from
};

// Batch i is a pure function of (config, i); next() walks i = 0, 1, ...
class SyntheticTask : public BatchSource {
 public:
  explicit SyntheticTask(SyntheticConfig cfg);
  Batch batch(int64_t index) const;
  Batch next() override { return batch(index_++); }
  std::vector<int64_t> cursor() const override { return {index_}; }
  void set_cursor(const std::vector<int64_t>& c) override;
  const SyntheticConfig& config() const { return cfg_; }
  int64_t content_len() const { return content_len_; }  // resolved default

 private:
  SyntheticConfig cfg_;
  int64_t content_len_;
  int64_t index_ = 0;
};

// One sequence: L+1 tokens and the L target flags (1 = answer).
struct Sequence {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> answer;
};
Sequence generate_sequence(const SyntheticConfig& cfg, int64_t content_len, Rng& rng);

struct Score {
  int64_t answers = 0, correct = 0;    // answer tokens
  int64_t sequences = 0, exact = 0;    // sequences with every answer token right
  double accuracy() const { return answers ? double(correct) / double(answers) : 0.0; }
  double exact_match() const { return sequences ? double(exact) / double(sequences) : 0.0; }
};
// predictions: per segment, i32 (B, T). Masked positions only (every position if no mask).
Score score(const Batch& batch, const std::vector<Tensor>& predictions);
double accuracy(const Batch& batch, const std::vector<Tensor>& predictions);  // answer-token accuracy

}  // namespace mnemo::data
