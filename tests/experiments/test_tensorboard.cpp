// TensorBoard event files (experiments/tensorboard.h): the TFRecord framing against the
// published CRC32C check value, and the hand-encoded Event messages decoded by protobuf's own
// `protoc --decode` with the message definitions in tests/fixtures/tensorboard_event.proto; a
// run's tb/ event file holds the logged values at their steps. Suite `tensorboard` needs
// protoc (Debian protobuf-compiler) and reports SKIP without it.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "experiments/config.h"
#include "experiments/run.h"
#include "experiments/tensorboard.h"
#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"

using namespace mnemo;
using namespace mnemo::experiments;
namespace fs = std::filesystem;
namespace tbe = mnemo::experiments::tensorboard;

namespace {

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// protoc's text form of one Event message.
std::string decode(const test::TempDir& tmp, const std::string& event) {
  const std::string in = tmp / "event.bin", out = tmp / "event.txt";
  std::ofstream(in, std::ios::binary) << event;
  const std::string proto_dir = std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures";
  const std::string cmd = "protoc --proto_path=" + proto_dir + " --decode=tensorboard.Event " + proto_dir +
                          "/tensorboard_event.proto < " + in + " > " + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string text = read_bytes(out);
  BOOST_TEST_REQUIRE(rc == 0, "protoc could not decode the event: " << text);
  return text;
}

uint64_t le(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | uint8_t(s[at + size_t(i)]);
  return v;
}

// The records of a TFRecord file, each checked: length, its CRC, the data's CRC.
std::vector<std::string> records(const std::string& file) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < file.size()) {
    BOOST_TEST_REQUIRE(file.size() - at >= 16u);
    const uint64_t n = le(file, at, 8);
    BOOST_TEST_REQUIRE(le(file, at + 8, 4) == tbe::masked_crc32c(file.substr(at, 8)));
    BOOST_TEST_REQUIRE(file.size() - at >= 16 + n);
    const std::string data = file.substr(at + 12, n);
    BOOST_TEST_REQUIRE(le(file, at + 12 + n, 4) == tbe::masked_crc32c(data));
    out.push_back(data);
    at += 16 + n;
  }
  return out;
}

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

}  // namespace

BOOST_AUTO_TEST_SUITE(tensorboard)

BOOST_AUTO_TEST_CASE(crc32c_and_record_framing) {
  if (!test::have_program("protoc")) test::skip_test("protoc (Debian protobuf-compiler) is not installed");
  BOOST_TEST(tbe::crc32c("123456789") == 0xe3069283u);  // the CRC-32C check value (RFC 3720 B.4)
  BOOST_TEST(tbe::crc32c("") == 0u);
  const std::string r = tbe::record("abc");
  BOOST_TEST(r.size() == 8u + 4u + 3u + 4u);
  BOOST_TEST(le(r, 0, 8) == 3u);
  BOOST_TEST(r.substr(12, 3) == "abc");
  const uint32_t c = tbe::crc32c("abc");
  BOOST_TEST(le(r, 15, 4) == uint32_t(((c >> 15) | (c << 17)) + 0xa282ead8u));
  BOOST_TEST(records(r + tbe::record("")).size() == 2u);
}

BOOST_AUTO_TEST_CASE(events_decode_with_protoc) {
  const test::TempDir tmp;
  const std::string v = decode(tmp, tbe::file_version_event(1700000000.5));
  BOOST_TEST(has(v, "wall_time: 1700000000.5"), v);
  BOOST_TEST(has(v, "file_version: \"brain.Event:2\""), v);

  const std::string s = decode(tmp, tbe::scalar_event(2.25, 1234567890123, "train/loss", 0.375f));
  BOOST_TEST(has(s, "wall_time: 2.25"), s);
  BOOST_TEST(has(s, "step: 1234567890123"), s);
  BOOST_TEST(has(s, "tag: \"train/loss\""), s);
  BOOST_TEST(has(s, "simple_value: 0.375"), s);

  const std::string t = decode(tmp, tbe::text_event(3, 5, "samples", "hello \"world\"\n"));
  BOOST_TEST(has(t, "step: 5"), t);
  BOOST_TEST(has(t, "tag: \"samples\""), t);
  BOOST_TEST(has(t, "plugin_name: \"text\""), t);
  BOOST_TEST(has(t, "dtype: DT_STRING"), t);
  BOOST_TEST(has(t, "tensor_shape {\n"), t);
  BOOST_TEST(has(t, "string_val: \"hello \\\"world\\\"\\n\""), t);
}

// A short run: every train.jsonl and metrics.jsonl number is in tb/ at its step (as f32).
BOOST_AUTO_TEST_CASE(a_runs_event_file_holds_the_logged_values_at_their_steps) {
  const test::TempDir tmp;
  const std::string config = tmp / "tiny.yaml";
  std::ofstream(config) << "name: tiny\nseed: 7\n"
                           "data: {kind: synthetic, task: copy, copy_len: 3, segments: 2, segment_len: 8, batch_size: 2}\n"
                           "model: {arch: transformer_xl, dim: 16, depth: 1, heads: 2}\n"
                           "train: {steps: 6, log_every: 2, eval_every: 3, checkpoint_every: 6, threads: 1}\n"
                           "eval: {batches: 1, generate_every: 6, generate_len: 4}\n";
  const std::string run = tmp / "run";
  train_run(load_config(config), {.dir = run, .progress = false});

  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(run) / "tb")) files.push_back(e.path());
  BOOST_TEST_REQUIRE(files.size() == 1u);
  BOOST_TEST(files[0].filename().string().starts_with("events.out.tfevents."));

  // (tag, step) -> value, from protoc's decoding of every record
  std::map<std::pair<std::string, int64_t>, double> logged;
  std::string sample;
  const std::regex scalar(R"re(step: (\d+)\nsummary \{\n  value \{\n    tag: "([^"]+)"\n    simple_value: (\S+)\n)re");
  const std::vector<std::string> events = records(read_bytes(files[0]));
  BOOST_TEST_REQUIRE(events.size() > 1u);
  BOOST_TEST(has(decode(tmp, events[0]), "file_version: \"brain.Event:2\""));
  for (size_t i = 1; i < events.size(); ++i) {
    const std::string text = decode(tmp, events[i]);
    std::smatch m;
    if (std::regex_search(text, m, scalar)) logged[{m[2], std::stoll(m[1])}] = std::stod(m[3]);
    else if (has(text, "tag: \"samples\"")) sample = text;
    else BOOST_ERROR("an event neither scalar nor sample: " << text);
  }
  BOOST_TEST(has(sample, "step: 6"), sample);
  BOOST_TEST(has(sample, "plugin_name: \"text\""), sample);

  // Every number of the .jsonl logs, found at its step.
  const auto expect = [&](const std::string& file, const std::string& column, const std::string& tag) {
    std::ifstream in(fs::path(run) / file);
    int found = 0;
    const std::regex step_re(R"("step":(\d+))"), value_re("\"" + column + R"(":([-0-9.eE+]+))");
    for (std::string line; std::getline(in, line);) {
      std::smatch s, v;
      BOOST_TEST_REQUIRE(std::regex_search(line, s, step_re));
      BOOST_TEST_REQUIRE(std::regex_search(line, v, value_re), line);
      const auto it = logged.find({tag, std::stoll(s[1])});
      BOOST_REQUIRE_MESSAGE(it != logged.end(), tag << " at step " << s[1] << " is not in the event file");
      const double want = double(float(std::stod(v[1])));
      BOOST_TEST(std::abs(it->second - want) <= 1e-6 * std::abs(want), tag << " at step " << s[1]);
      ++found;
    }
    return found;
  };
  BOOST_TEST(expect("train.jsonl", "loss", "train/loss") == 3);  // steps 2, 4, 6
  BOOST_TEST(expect("train.jsonl", "grad_norm", "train/grad_norm") == 3);
  BOOST_TEST(expect("train.jsonl", "lr", "train/lr") == 3);
  BOOST_TEST(expect("metrics.jsonl", "val_loss", "val/loss") == 2);  // steps 3, 6
  BOOST_TEST(expect("metrics.jsonl", "val_accuracy", "val/accuracy") == 2);
  BOOST_TEST(logged.count({"train/tokens_per_s", 6}) == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
