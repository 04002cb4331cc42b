// Synthetic tasks: answers sit exactly where the answer-only mask says and are correct,
// accuracy is 1 on the truth and lower on a corrupted prediction, generation is a pure
// function of (seed, batch index), and bad parameters are refused.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <functional>

#include "data/synthetic.h"

using namespace mnemo;
using namespace mnemo::data;

namespace {

// Sequence b of a batch: L+1 tokens (inputs then the last target) and L mask flags.
struct Flat {
  std::vector<int32_t> tok;
  std::vector<uint8_t> mask;
};

Flat flatten(const Batch& batch, int64_t b) {
  Flat f;
  const int64_t T = batch.seg_len();
  for (int64_t s = 0; s < batch.segments(); ++s) {
    const int32_t* x = batch.inputs[size_t(s)].data<int32_t>() + b * T;
    const uint8_t* m = batch.loss_mask[size_t(s)].data<uint8_t>() + b * T;
    f.tok.insert(f.tok.end(), x, x + T);
    f.mask.insert(f.mask.end(), m, m + T);
  }
  f.tok.push_back(batch.targets.back().data<int32_t>()[b * T + T - 1]);
  return f;
}

// The tokens at answer positions (target i is token i+1).
std::vector<int32_t> answers(const Flat& f) {
  std::vector<int32_t> a;
  for (size_t i = 0; i < f.mask.size(); ++i)
    if (f.mask[i]) a.push_back(f.tok[i + 1]);
  return a;
}

int64_t first_answer(const Flat& f) {
  return int64_t(std::find(f.mask.begin(), f.mask.end(), 1) - f.mask.begin()) + 1;  // token position
}

bool is_lower(int32_t c) { return c >= 'a' && c <= 'z'; }
bool is_upper(int32_t c) { return c >= 'A' && c <= 'Z'; }

SyntheticConfig config(Task task, int64_t L = 48, int64_t S = 4) {
  SyntheticConfig c;
  c.task = task;
  c.length = L;
  c.segments = S;
  c.batch = 6;
  c.seed = 11;
  return c;
}

std::vector<Tensor> truth(const Batch& b) {
  std::vector<Tensor> p;
  for (const Tensor& y : b.targets) p.push_back(y.clone());
  return p;
}

// Checks answer-only masks (the answers end the sequence, contiguously) and the metric.
void check_common(const SyntheticTask& task, int64_t n_answers) {
  const Batch b = task.batch(0);
  const SyntheticConfig& c = task.config();
  BOOST_TEST(b.segments() == c.segments);
  BOOST_TEST(b.inputs[0].shape() == Shape({c.batch, c.length / c.segments}));
  BOOST_TEST(b.loss_mask.size() == size_t(c.segments));
  BOOST_TEST(b.loss_mask[0].dtype() == DType::u8);
  BOOST_TEST(b.reset_memory);
  for (int64_t r = 0; r < c.batch; ++r) {
    const Flat f = flatten(b, r);
    BOOST_TEST(int64_t(answers(f).size()) == n_answers);
    for (int64_t i = 0; i < c.length; ++i) BOOST_TEST(f.mask[size_t(i)] == (i >= c.length - n_answers));
  }
  // Targets are inputs shifted by one.
  for (int64_t s = 0; s < c.segments; ++s) {
    const auto x = b.inputs[size_t(s)].to_vector(), y = b.targets[size_t(s)].to_vector();
    const int64_t T = c.length / c.segments;
    for (int64_t i = 0; i < c.batch * T; ++i)
      if ((i + 1) % T) BOOST_TEST(y[size_t(i)] == x[size_t(i + 1)]);
  }
  // Accuracy: 1 on the truth; one wrong answer in one sequence lowers both metrics.
  auto pred = truth(b);
  const Score full = score(b, pred);
  BOOST_TEST(accuracy(b, pred) == 1.0);
  BOOST_TEST(full.exact_match() == 1.0);
  BOOST_TEST(full.answers == c.batch * n_answers);
  Tensor& last = pred.back();
  last.data<int32_t>()[last.dim(1) - 1] += 1;  // sequence 0's last token is an answer
  const Score bad = score(b, pred);
  BOOST_TEST(bad.accuracy() < 1.0);
  BOOST_TEST(bad.correct == full.correct - 1);
  BOOST_TEST(bad.exact == c.batch - 1);
  // A wrong prediction off the mask does not count.
  pred = truth(b);
  pred[0].data<int32_t>()[0] += 1;
  BOOST_TEST(accuracy(b, pred) == 1.0);
}

bool same(const Batch& a, const Batch& b) {
  for (size_t s = 0; s < a.inputs.size(); ++s)
    if (a.inputs[s].to_vector() != b.inputs[s].to_vector() || a.targets[s].to_vector() != b.targets[s].to_vector() ||
        a.loss_mask[s].to_vector() != b.loss_mask[s].to_vector())
      return false;
  return true;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(synthetic)

BOOST_AUTO_TEST_CASE(copy_answers_the_string) {
  const SyntheticTask task(config(Task::copy));
  const int64_t n = task.content_len();
  BOOST_TEST(n == 24);
  check_common(task, n);
  const Flat f = flatten(task.batch(3), 2);
  const std::vector<int32_t> s(f.tok.begin(), f.tok.begin() + n);
  BOOST_TEST(std::all_of(s.begin(), s.end(), is_lower));
  BOOST_TEST(answers(f) == s);
  BOOST_TEST(f.tok[size_t(first_answer(f) - 1)] == vocab::kSep);
}

BOOST_AUTO_TEST_CASE(curriculum_stages_shorten_the_reach) {
  auto c = config(Task::copy, 48, 6);  // segments of 8
  c.content_len = 3;
  c.curriculum_segments = {2, 4};
  c.curriculum_steps = 5;
  const SyntheticTask task(c);
  for (const auto& [index, segments] : std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {4, 2}, {5, 4}, {9, 4}, {10, 6}, {99, 6}}) {
    const Batch b = task.batch(index);
    BOOST_TEST(b.segments() == segments, "batch " << index);
    BOOST_TEST(b.seg_len() == 8);
    const Flat f = flatten(b, 1);  // the copy still answers its content at the end of the shorter sequence
    BOOST_TEST(answers(f) == std::vector<int32_t>(f.tok.begin(), f.tok.begin() + 3));
    BOOST_TEST(first_answer(f) == segments * 8 - 3 + 1);
  }
  auto bad = c;
  bad.curriculum_steps = 0;
  BOOST_CHECK_THROW(SyntheticTask{bad}, mnemo::Error);
  bad = c;
  bad.content_len = 5;
  bad.curriculum_segments = {1};  // 8 tokens cannot hold 5 letters and their copy
  BOOST_CHECK_THROW(SyntheticTask{bad}, mnemo::Error);
}

BOOST_AUTO_TEST_CASE(copy_with_a_gap) {
  auto c = config(Task::copy, 64, 8);
  c.content_len = 5;
  const SyntheticTask task(c);
  check_common(task, 5);
  const Flat f = flatten(task.batch(0), 0);
  BOOST_TEST(answers(f) == std::vector<int32_t>(f.tok.begin(), f.tok.begin() + 5));
  BOOST_TEST(f.tok[10] == vocab::kBlank);
}

BOOST_AUTO_TEST_CASE(reverse_answers_the_reversed_string) {
  const SyntheticTask task(config(Task::reverse));
  const int64_t n = task.content_len();
  check_common(task, n);
  const Flat f = flatten(task.batch(1), 0);
  std::vector<int32_t> s(f.tok.begin(), f.tok.begin() + n);
  std::reverse(s.begin(), s.end());
  BOOST_TEST(answers(f) == s);
}

BOOST_AUTO_TEST_CASE(assoc_recall_answers_the_queried_value) {
  auto c = config(Task::assoc_recall);
  c.pairs = 6;
  const SyntheticTask task(c);
  check_common(task, 1);
  for (int64_t r = 0; r < c.batch; ++r) {
    const Flat f = flatten(task.batch(2), r);
    const int64_t L = c.length;
    BOOST_TEST(f.tok[size_t(L - 2)] == vocab::kQuery);
    const int32_t key = f.tok[size_t(L - 1)];
    int found = 0;
    for (int64_t k = 0; k < c.pairs; ++k) {
      BOOST_TEST(is_lower(f.tok[size_t(2 * k)]));
      BOOST_TEST(is_upper(f.tok[size_t(2 * k + 1)]));
      if (f.tok[size_t(2 * k)] == key) {
        ++found;
        BOOST_TEST(answers(f) == std::vector<int32_t>{f.tok[size_t(2 * k + 1)]});
      }
    }
    BOOST_TEST(found == 1);  // keys are distinct
  }
}

BOOST_AUTO_TEST_CASE(selective_copy_answers_the_letters_in_order) {
  auto c = config(Task::selective_copy, 64, 4);
  c.content_len = 7;
  const SyntheticTask task(c);
  check_common(task, 7);
  const Flat f = flatten(task.batch(5), 4);
  std::vector<int32_t> letters;
  for (int64_t i = 0; i < c.length - 7; ++i) {
    const int32_t t = f.tok[size_t(i)];
    BOOST_TEST((is_lower(t) || t == vocab::kNoise));
    if (is_lower(t)) letters.push_back(t);
  }
  BOOST_TEST(f.tok[size_t(c.length - 7)] == vocab::kSep);
  BOOST_TEST(answers(f) == letters);
}

BOOST_AUTO_TEST_CASE(needle_answers_the_value_at_its_depth) {
  for (double depth : {0.0, 0.25, 1.0}) {
    auto c = config(Task::needle, 96, 4);
    c.depth = depth;
    const SyntheticTask task(c);
    const int64_t n = task.content_len();
    check_common(task, n);
    const Flat f = flatten(task.batch(0), 1);
    const int64_t q = first_answer(f) - c.key_len - 2;  // the '?'
    BOOST_TEST(f.tok[size_t(q)] == vocab::kQuery);
    const std::vector<int32_t> key(f.tok.begin() + q + 1, f.tok.begin() + q + 1 + c.key_len);
    const int64_t at = std::find(f.tok.begin(), f.tok.end(), vocab::kMark) - f.tok.begin();
    const int64_t needle_len = c.key_len + n + 3;
    BOOST_TEST(at == int64_t(depth * double(q - needle_len) + 0.5));
    BOOST_TEST(std::vector<int32_t>(f.tok.begin() + at + 1, f.tok.begin() + at + 1 + c.key_len) == key);
    const auto value_at = f.tok.begin() + at + 2 + c.key_len;
    BOOST_TEST(answers(f) == std::vector<int32_t>(value_at, value_at + n));
    for (int64_t i = 0; i < q; ++i)  // the filler never looks like a needle
      if (i < at || i >= at + needle_len) BOOST_TEST((is_lower(f.tok[size_t(i)]) || f.tok[size_t(i)] == ' '));
  }
}

BOOST_AUTO_TEST_CASE(deterministic_per_seed_and_index) {
  for (Task t : {Task::copy, Task::reverse, Task::assoc_recall, Task::selective_copy, Task::needle}) {
    BOOST_TEST_CONTEXT(task_name(t)) {
      auto c = config(t, 64, 4);
      SyntheticTask a(c), b(c);
      BOOST_TEST(same(a.batch(7), b.batch(7)));
      BOOST_TEST(same(a.batch(7), a.batch(7)));
      BOOST_TEST(!same(a.batch(7), a.batch(8)));
      c.seed = 12;
      BOOST_TEST(!same(a.batch(7), SyntheticTask(c).batch(7)));
      // next() walks the indices, and the cursor resumes it.
      BOOST_TEST(same(a.next(), b.batch(0)));
      a.next();
      const auto cur = a.cursor();
      BOOST_TEST(cur == std::vector<int64_t>{2});
      b.set_cursor(cur);
      BOOST_TEST(same(a.next(), b.next()));
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_parameters_are_refused) {
  auto c = config(Task::copy, 50, 4);
  BOOST_CHECK_THROW(SyntheticTask{c}, Error);  // 50 % 4
  c = config(Task::copy);
  c.content_len = 30;
  BOOST_CHECK_THROW(SyntheticTask{c}, Error);
  c = config(Task::assoc_recall);
  c.pairs = 27;
  BOOST_CHECK_THROW(SyntheticTask{c}, Error);
  c = config(Task::needle);
  c.depth = 1.5;
  BOOST_CHECK_THROW(SyntheticTask{c}, Error);
  BOOST_CHECK_THROW(parse_task("kopy"), Error);
  BOOST_TEST((parse_task("needle") == Task::needle));
}

BOOST_AUTO_TEST_SUITE_END()
