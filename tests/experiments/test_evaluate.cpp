// Evaluation (experiments/evaluate.h): a raw byte file read a segment at a time gives what
// running its segments by hand over the whole file in memory gives (loss, accuracy, tokens,
// every segment's logits and memory), and so does the same stream as a .safetensors token
// file; held-out batches count only the targets their masks allow, streamed or listed; the
// --dump-logits observer writes the layout the CLI always wrote, byte for byte; and a byte
// stream ten times longer does not raise peak memory (suite evaluate_memory); the loss by
// position in the stream lands in the right buckets, summed exactly (suite evaluation); and
// the live tensor bytes of evaluating 4N segments peak no higher than of N, for each memory
// architecture (suite evaluate_memory).
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "architectures/transformer.h"
#include "autograd/ops/ops.h"
#include "data/synthetic.h"
#include "experiments/bptt.h"
#include "experiments/checkpoint.h"
#include "experiments/evaluate.h"
#include "experiments/models.h"
#include "kernels/memory.h"
#include "layers/init.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tensor_compare.h"

using namespace mnemo;
using namespace mnemo::experiments;
using test::max_abs_diff;

namespace {

std::unique_ptr<arch::TransformerXL> tiny_xl(uint64_t seed, int64_t seq_len) {
  arch::TransformerConfig c;
  c.vocab = 256, c.dim = 16, c.depth = 1, c.heads = 2, c.seq_len = seq_len, c.ff_mult = 2, c.mem_len = seq_len;
  nn::Init init(seed);
  auto m = std::make_unique<arch::TransformerXL>(init, c);
  nn::eval(*m);
  return m;
}

std::vector<uint8_t> text_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> out(n);
  uint64_t x = seed;
  for (uint8_t& b : out) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    b = uint8_t("the quick brown fox jumps over a lazy dog\n"[(x >> 33) % 42]);
  }
  return out;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The whole stream in memory, segment by segment from the initial memory, scored with a
// log-softmax in double: what `mnemo eval --tokens` did before evaluation streamed.
struct ByHand {
  double loss = 0, accuracy = 0;
  int64_t tokens = 0;
  std::vector<double> token_nats;          // per token, in stream order
  std::vector<int> token_hits;
  std::vector<Tensor> logits;              // per segment (1, n, V)
  std::vector<arch::Memory> memories;      // leaving each segment
};

ByHand run_by_hand(const arch::SegmentModel& m, const std::vector<uint8_t>& bytes, int64_t T) {
  ByHand h;
  const std::vector<int32_t> in(bytes.begin(), bytes.end() - 1), next(bytes.begin() + 1, bytes.end());
  const int64_t N = int64_t(in.size());
  arch::Memory memory = m.initial_memory(1);
  double nats = 0;
  int64_t correct = 0;
  for (int64_t start = 0; start < N; start += T) {
    const int64_t n = std::min(T, N - start);
    Tape tape;
    Tape::NoRecord nr(tape);
    const std::vector<int32_t> seg(in.begin() + start, in.begin() + start + n);
    const arch::SegmentOut out = m.forward(tape, Tensor::from_ints({1, n}, seg), arch::constants(tape, memory));
    memory = arch::values(out.memory);
    const Tensor logits = out.logits.value();
    const std::vector<double> l = logits.to_vector();
    const int64_t V = logits.dim(2);
    for (int64_t i = 0; i < n; ++i) {
      const double* row = l.data() + i * V;
      double mx = row[0];
      int64_t best = 0;
      for (int64_t v = 1; v < V; ++v)
        if (row[v] > mx) mx = row[v], best = v;
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      const int32_t target = next[size_t(start + i)];
      nats += mx + std::log(z) - row[target];
      correct += best == target;
      h.token_nats.push_back(mx + std::log(z) - row[target]);
      h.token_hits.push_back(best == target);
    }
    h.tokens += n;
    h.logits.push_back(logits);
    h.memories.push_back(memory);
  }
  h.loss = nats / double(h.tokens);
  h.accuracy = double(correct) / double(h.tokens);
  return h;
}

// Evaluates `source`, keeping every segment's logits and memory.
EvalResult run_keeping(const arch::SegmentModel& m, SegmentSource& source, std::vector<Tensor>& logits,
                       std::vector<arch::Memory>& memories) {
  return evaluate(m, source, [&](const SegmentReport& r) {
    BOOST_TEST(r.index == int64_t(logits.size()));
    logits.push_back(r.logits);
    memories.push_back(r.memory);
  });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(evaluation)

BOOST_AUTO_TEST_CASE(a_raw_byte_file_equals_its_segments_run_by_hand) {
  test::TempDir tmp("mnemo-eval");
  const int64_t T = 8;
  const auto pm = tiny_xl(3, T);
  const arch::TransformerXL& m = *pm;
  for (const size_t size : {size_t(2), size_t(9), size_t(29), size_t(33)}) {  // one token; one segment; partial; whole
    BOOST_TEST_CONTEXT(size << " bytes") {
      const std::vector<uint8_t> bytes = text_bytes(size, size);
      write_bytes(tmp / "raw.txt", bytes);
      const ByHand want = run_by_hand(m, bytes, T);
      std::vector<Tensor> logits;
      std::vector<arch::Memory> memories;
      ByteFileSegments source(tmp / "raw.txt", T);
      const EvalResult got = run_keeping(m, source, logits, memories);
      BOOST_TEST(got.tokens == int64_t(size) - 1);
      BOOST_TEST(got.loss == want.loss, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(got.bits_per_byte == want.loss / std::log(2.0), boost::test_tools::tolerance(1e-6));
      BOOST_TEST(got.accuracy == want.accuracy);
      BOOST_TEST_REQUIRE(logits.size() == want.logits.size());
      for (size_t s = 0; s < logits.size(); ++s) {
        BOOST_TEST(logits[s].shape() == want.logits[s].shape());
        BOOST_TEST(max_abs_diff(logits[s], want.logits[s]) == 0.0);
        for (const auto& [name, t] : want.memories[s]) BOOST_TEST(max_abs_diff(memories[s].at(name), t) == 0.0);
      }
      // The same stream as a token file with labels: the same result.
      write_safetensors(tmp / "tokens.safetensors",
                        {{"input.tokens", Tensor::from_ints({1, int64_t(size) - 1},
                                                            std::vector<int32_t>(bytes.begin(), bytes.end() - 1))},
                         {"input.labels", Tensor::from_ints({1, int64_t(size) - 1},
                                                            std::vector<int32_t>(bytes.begin() + 1, bytes.end()))}});
      const EvalResult file = evaluate(m, *open_token_file(tmp / "tokens.safetensors", T));
      BOOST_TEST(file.tokens == got.tokens);
      BOOST_TEST(file.loss == got.loss);
      BOOST_TEST(file.accuracy == got.accuracy);
    }
  }
  write_bytes(tmp / "one.txt", {'a'});
  BOOST_CHECK_THROW(ByteFileSegments(tmp / "one.txt", T), Error);
  BOOST_CHECK_THROW(ByteFileSegments(tmp / "missing.txt", T), Error);
}

BOOST_AUTO_TEST_CASE(a_token_file_without_labels_gives_logits_and_no_loss) {
  test::TempDir tmp("mnemo-eval");
  const auto pm = tiny_xl(4, 8);
  const arch::TransformerXL& m = *pm;
  std::vector<int32_t> rows;
  for (int32_t i = 0; i < 2 * 11; ++i) rows.push_back((i * 5) % 256);
  write_safetensors(tmp / "t.safetensors", {{"input.tokens", Tensor::from_ints({2, 11}, rows)}});
  std::vector<Tensor> logits;
  std::vector<arch::Memory> memories;
  TokenFileSegments source(tmp / "t.safetensors", 8);
  const EvalResult e = run_keeping(m, source, logits, memories);
  BOOST_TEST(e.tokens == 0);
  BOOST_TEST_REQUIRE(logits.size() == 2u);
  BOOST_TEST(logits[0].shape() == (Shape{2, 8, 256}));
  BOOST_TEST(logits[1].shape() == (Shape{2, 3, 256}));
  write_safetensors(tmp / "bad.safetensors", {{"tokens", Tensor::from_ints({1, 2}, {1, 2})}});
  BOOST_CHECK_THROW(TokenFileSegments(tmp / "bad.safetensors", 8), Error);
}

BOOST_AUTO_TEST_CASE(held_out_batches_count_only_what_their_masks_allow) {
  // A copy task's loss mask: only the answers count, in the list of batches and in batches
  // streamed through a callback alike, and the loss is the training loss of the same batches.
  const int64_t T = 8;
  const auto pm = tiny_xl(5, T);
  const arch::TransformerXL& m = *pm;
  data::SyntheticConfig sc;
  sc.task = data::Task::copy, sc.length = 3 * T, sc.segments = 3, sc.batch = 2, sc.content_len = 4, sc.seed = 9;
  const data::SyntheticTask task(sc);
  std::vector<data::Batch> batches = {task.batch(0), task.batch(1)};
  int64_t answers = 0;
  double train_nats = 0;
  for (const data::Batch& b : batches) {
    BOOST_TEST_REQUIRE(!b.loss_mask.empty());
    int64_t in_batch = 0;
    for (const Tensor& mask : b.loss_mask)
      for (double v : mask.to_vector()) in_batch += v != 0;
    const BpttResult r = train_batch(m, b, m.initial_memory(2), {.mode = BpttMode::full});
    BOOST_TEST(r.tokens == in_batch);
    train_nats += r.loss * double(r.tokens);
    answers += in_batch;
  }
  const EvalResult listed = evaluate(m, batches);
  BOOST_TEST(listed.tokens == answers);
  BOOST_TEST(listed.loss == train_nats / double(answers), boost::test_tools::tolerance(1e-6));
  size_t i = 0;
  BatchSegments streamed([&]() -> std::optional<data::Batch> {
    if (i == batches.size()) return std::nullopt;
    return task.batch(int64_t(i++));
  });
  const EvalResult e = evaluate(m, streamed);
  BOOST_TEST(e.tokens == listed.tokens);
  BOOST_TEST(e.loss == listed.loss);
  BOOST_TEST(e.accuracy == listed.accuracy);
}

BOOST_AUTO_TEST_CASE(dump_logits_writes_the_layout_the_cli_always_wrote) {
  // Before evaluation streamed, the CLI collected every segment's tensors in this order and
  // wrote them in one go; the streamed file must be the same bytes.
  test::TempDir tmp("mnemo-eval");
  const int64_t T = 8;
  const auto pm = tiny_xl(6, T);
  const arch::TransformerXL& m = *pm;
  const std::vector<uint8_t> bytes = text_bytes(21, 1);  // 20 tokens: segments of 8, 8, 4
  write_bytes(tmp / "raw.txt", bytes);
  const ByHand want = run_by_hand(m, bytes, T);
  NamedTensors collected;
  for (size_t s = 0; s < want.logits.size(); ++s) {
    collected.emplace_back("logits.seg" + std::to_string(s), want.logits[s]);
    for (const auto& [name, t] : want.memories[s]) collected.emplace_back("mem.seg" + std::to_string(s) + "." + name, t);
  }
  const std::map<std::string, std::string> meta = {{"format", "mnemo.logits/1"}, {"arch", "transformer_xl"}};
  {
    SafetensorsWriter out(tmp / "dump.safetensors", meta);
    ByteFileSegments source(tmp / "raw.txt", T);
    evaluate(m, source, dump_segments(out));
    out.finish();
  }
  BOOST_TEST(read_bytes(tmp / "dump.safetensors") == encode_safetensors(collected, meta));
  const Safetensors f = read_safetensors(tmp / "dump.safetensors");
  BOOST_TEST(f.tensors.at("logits.seg2").shape() == (Shape{1, 4, 256}));
  BOOST_TEST(f.tensors.at("mem.seg0.mem.0").shape() == (Shape{1, 8, 16}));
  BOOST_TEST(f.names.size() == 6u);  // 3 segments x (logits + 1 layer's memory)
}

BOOST_AUTO_TEST_CASE(position_buckets_are_one_segment_each_then_log_spaced) {
  BOOST_TEST(position_bucket(0, 256) == 0);
  BOOST_TEST(position_bucket(255, 256) == 0);
  BOOST_TEST(position_bucket(256, 256) == 1);
  BOOST_TEST(position_bucket(511, 256) == 1);
  BOOST_TEST(position_bucket(512, 256) == 2);
  BOOST_TEST(position_bucket(1023, 256) == 2);
  BOOST_TEST(position_bucket(1024, 256) == 3);
  BOOST_TEST(position_bucket(9'999'999, 256) == 16);  // [256 2^15, 256 2^16) = [8388608, 16777216)
  BOOST_TEST(bucket_range(0, 256).begin == 0);
  BOOST_TEST(bucket_range(0, 256).end == 256);
  BOOST_TEST(bucket_range(3, 256).begin == 1024);
  BOOST_TEST(bucket_range(3, 256).end == 2048);
  BOOST_CHECK_THROW(position_bucket(-1, 256), Error);
  BOOST_CHECK_THROW(position_bucket(3, 0), Error);
}

BOOST_AUTO_TEST_CASE(a_byte_stream_s_loss_is_summed_by_position_bucket) {
  // 20 tokens in segments of 4: positions [0, 4), [4, 8), [8, 16), [16, 20); each bucket's
  // sum is the by-hand log-softmax losses of exactly those tokens.
  test::TempDir tmp("mnemo-eval");
  const int64_t T = 4;
  const auto pm = tiny_xl(8, T);
  const std::vector<uint8_t> bytes = text_bytes(21, 5);
  write_bytes(tmp / "raw.txt", bytes);
  const ByHand want = run_by_hand(*pm, bytes, T);
  ByteFileSegments source(tmp / "raw.txt", T);
  BOOST_TEST(source.total_tokens() == 20);
  const EvalResult got = evaluate(*pm, source);
  const std::vector<std::pair<int64_t, int64_t>> ranges = {{0, 4}, {4, 8}, {8, 16}, {16, 20}};
  BOOST_TEST_REQUIRE(got.by_position.size() == ranges.size());
  double total = 0;
  for (size_t k = 0; k < ranges.size(); ++k) {
    BOOST_TEST_CONTEXT("bucket " << k) {
      const PositionBucket& b = got.by_position[k];
      BOOST_TEST(b.begin == ranges[k].first);
      BOOST_TEST(b.end == ranges[k].second);
      double nats = 0;
      int64_t hits = 0;
      for (int64_t p = ranges[k].first; p < ranges[k].second; ++p) nats += want.token_nats[size_t(p)], hits += want.token_hits[size_t(p)];
      BOOST_TEST(b.tokens == ranges[k].second - ranges[k].first);
      BOOST_TEST(b.nats == nats, boost::test_tools::tolerance(1e-6));
      BOOST_TEST(b.correct == hits);
      BOOST_TEST(b.bits_per_byte() == nats / double(b.tokens) / std::log(2.0), boost::test_tools::tolerance(1e-6));
      total += b.nats;
    }
  }
  BOOST_TEST(total / 20.0 == got.loss, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(position_buckets_skip_masked_targets_and_restart_with_the_stream) {
  // Two streams of 10 columns with three targets masked: positions count columns, and only
  // the counted targets enter their bucket.
  test::TempDir tmp("mnemo-eval");
  const auto pm = tiny_xl(9, 4);
  std::vector<int32_t> tokens, labels;
  for (int32_t i = 0; i < 20; ++i) tokens.push_back((i * 7 + 3) % 256), labels.push_back((i * 11 + 1) % 256);
  labels[5] = labels[10 + 0] = labels[10 + 9] = kIgnoreIndex;  // (row 0, col 5), (row 1, col 0), (row 1, col 9)
  write_safetensors(tmp / "t.safetensors",
                    {{"input.tokens", Tensor::from_ints({2, 10}, tokens)}, {"input.labels", Tensor::from_ints({2, 10}, labels)}});
  std::vector<double> column_nats(10, 0.0);  // the counted losses of each column, from the logits
  TokenFileSegments source(tmp / "t.safetensors", 4);
  BOOST_TEST(source.total_tokens() == 20);
  int64_t col0 = 0;
  const EvalResult e = evaluate(*pm, source, [&](const SegmentReport& r) {
    const std::vector<double> l = r.logits.to_vector();
    const int64_t n = r.logits.dim(1), V = r.logits.dim(2);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t j = 0; j < n; ++j) {
        const int32_t t = labels[size_t(b * 10 + col0 + j)];
        if (t == kIgnoreIndex) continue;
        const double* row = l.data() + (b * n + j) * V;
        double mx = row[0], z = 0;
        for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
        for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
        column_nats[size_t(col0 + j)] += mx + std::log(z) - row[t];
      }
    col0 += n;
  });
  BOOST_TEST_REQUIRE(e.by_position.size() == 3u);  // [0, 4), [4, 8), [8, 10)
  const int64_t want_tokens[] = {7, 7, 3};
  for (size_t k = 0; k < 3; ++k) {
    const PositionBucket& b = e.by_position[k];
    double nats = 0;
    for (int64_t c = b.begin; c < b.end; ++c) nats += column_nats[size_t(c)];
    BOOST_TEST(b.tokens == want_tokens[k]);
    BOOST_TEST(b.nats == nats, boost::test_tools::tolerance(1e-6));
  }
  BOOST_TEST(e.by_position[2].begin == 8);
  BOOST_TEST(e.by_position[2].end == 10);

  // Batches of 3 segments of 8 that each start a new stream: positions restart at every
  // batch, so there are three buckets, each holding its segment's answers from both batches.
  data::SyntheticConfig sc;
  sc.task = data::Task::copy, sc.length = 24, sc.segments = 3, sc.batch = 2, sc.content_len = 4, sc.seed = 9;
  const data::SyntheticTask task(sc);
  const std::vector<data::Batch> batches = {task.batch(0), task.batch(1)};
  std::vector<int64_t> answers(3, 0);
  for (const data::Batch& b : batches) {
    BOOST_TEST_REQUIRE(b.reset_memory);
    for (size_t s = 0; s < 3; ++s)
      for (double v : b.loss_mask[s].to_vector()) answers[s] += v != 0;
  }
  const EvalResult r = evaluate(*tiny_xl(5, 8), batches);
  BOOST_TEST_REQUIRE(r.by_position.size() == 3u);
  for (size_t s = 0; s < 3; ++s) BOOST_TEST(r.by_position[s].tokens == answers[s]);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- peak memory: its own meson test, since it resets this process's peak RSS ----

namespace {

int64_t status_kib(const char* field) {  // "VmHWM", "VmRSS" from /proc/self/status, in KiB
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(line.find(':') + 1));
  return -1;
}

// Resets VmHWM to the current RSS (Linux: write 5 to clear_refs); false where that is unsupported.
bool reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return bool(f);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(evaluate_memory)

BOOST_AUTO_TEST_CASE(a_ten_times_longer_byte_stream_needs_no_more_memory) {
  if (!reset_peak() || status_kib("VmHWM") < 0) {
    std::cout << "SKIP: this system cannot reset the peak resident size (/proc/self/clear_refs)\n";
    std::exit(77);  // meson's skip
  }
  test::TempDir tmp("mnemo-eval-mem");
  const int64_t T = 256;
  const auto pm = tiny_xl(7, T);
  const arch::TransformerXL& m = *pm;
  // (growth of the peak over the resident size before, KiB; tokens/s)
  auto peak_growth = [&](size_t bytes) {
    write_bytes(tmp / "stream.bin", text_bytes(bytes, 11));
    BOOST_REQUIRE(reset_peak());
    const int64_t before = status_kib("VmRSS");
    ByteFileSegments source(tmp / "stream.bin", T);
    const auto t0 = std::chrono::steady_clock::now();
    const EvalResult e = evaluate(m, source);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    BOOST_TEST(e.tokens == int64_t(bytes) - 1);
    return std::pair{status_kib("VmHWM") - before, double(e.tokens) / s};
  };
  peak_growth(32 * 1024);  // warm the allocator's caches
  const auto [short_kib, short_rate] = peak_growth(150 * 1024);
  const auto [long_kib, long_rate] = peak_growth(1500 * 1024);
  BOOST_TEST_MESSAGE("peak RSS growth: 150 KiB stream " << short_kib << " KiB, 1.5 MiB stream " << long_kib
                                                         << " KiB; " << short_rate << " and " << long_rate << " tokens/s");
  // Keeping the logits alone would take 1 KiB per token: 1.5 GiB for the long stream.
  BOOST_TEST(long_kib <= short_kib + 4096);
}

BOOST_AUTO_TEST_CASE(four_times_the_segments_need_no_more_live_tensor_bytes) {
  // The allocator's count of live tensor bytes (not RSS, not time): evaluating 4N segments
  // of a stream peaks no higher than N segments, and leaves nothing behind, for every
  // memory architecture and Transformer-XL. A tape kept across segments, memories that
  // grow, or logits kept would all raise the 4N peak.
  test::TempDir tmp("mnemo-eval-live");
  // N segments fill every memory: Compressive's FIFO (128) and compressed memory (32 x rate 4)
  // take 8 segments of 32; Memory-XL's 128 + 64 take 6.
  const int64_t T = 32, N = 10;
  write_bytes(tmp / "short.txt", text_bytes(size_t(N * T + 1), 21));
  write_bytes(tmp / "long.txt", text_bytes(size_t(4 * N * T + 1), 21));
  for (const std::string arch : {"rmt", "brt", "compressive", "memxl", "transformer_xl"}) {
    BOOST_TEST_CONTEXT(arch) {
      // Each file's model at dim 16 in segments of 32; Transformer-XL from the quickstart.
      const std::string file = arch == "transformer_xl" ? "quickstart" : arch + "_shakespeare";
      std::vector<std::string> sets = {"model.dim=16", "model.heads=2", "data.segment_len=32"};
      if (arch == "brt") sets.push_back("model.brt.block_width=32");
      const ExperimentConfig cfg = load_config(std::string(MNEMO_SOURCE_DIR) + "/experiments/configs/" + file + ".yaml", sets);
      BOOST_TEST_REQUIRE(cfg.model.arch == arch);
      const auto model = build_model(cfg);
      nn::eval(*model);
      auto peak = [&](const char* name) {
        ByteFileSegments source(tmp / name, T);
        kernels::reset_peak_memory();
        const size_t before = kernels::memory_stats().live_bytes;
        const EvalResult e = evaluate(*model, source);
        BOOST_TEST(kernels::memory_stats().live_bytes == before);  // nothing kept after the stream
        BOOST_TEST(e.tokens > 0);
        return kernels::memory_stats().peak_live_bytes - before;
      };
      peak("short.txt");  // the first segment's one-off allocations (oneDNN primitives) go first
      const size_t short_peak = peak("short.txt"), long_peak = peak("long.txt");
      BOOST_TEST_MESSAGE(arch << ": peak live tensor bytes " << short_peak << " over " << N << " segments, "
                              << long_peak << " over " << 4 * N);
      BOOST_TEST(short_peak > 0u);
      BOOST_TEST(long_peak <= short_peak);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
