// Checkpoints: safetensors round trips of every dtype; the exact header layout; the streaming
// writer's bytes equal the encoder's; bit-exact resume of a tiny model with AdamW; corrupt and
// truncated files refused with messages; failed writes and a process killed mid-write leave
// the previous checkpoint loadable; checksums, non-finite values and inconsistent step counts
// refused naming the tensor or both numbers.
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autograd/ops/ops.h"
#include "experiments/checkpoint.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "tests/support/temp_dir.h"

using namespace mnemo;
using namespace mnemo::experiments;
namespace fs = std::filesystem;

namespace {

using TempDir = test::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A file with this header (padding none) and `data_bytes` zero bytes of data.
std::string make_file(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// Runs f, which must throw mnemo::Error containing every one of `parts`.
template <class F> void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) BOOST_TEST(msg.find(p) != std::string::npos, "'" << p << "' not in: " << msg);
    return;
  }
  BOOST_FAIL("no mnemo::Error thrown");
}

void expect_refused(const std::string& path, const std::string& bytes, std::initializer_list<std::string> parts) {
  write_bytes(path, bytes);
  std::vector<std::string> all = {"checkpoint '" + path + "'"};
  all.insert(all.end(), parts);
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : all) BOOST_TEST(msg.find(p) != std::string::npos, "'" << p << "' not in: " << msg);
    return;
  }
  BOOST_FAIL("file accepted: " << path);
}

bool no_temp_files(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) return false;
  return true;
}

// One training step of y = lin(x), loss = mean(y^2), on fixed inputs.
void train_step(nn::Linear& lin, AdamW& opt) {
  Tape tape;
  Var x = tape.constant(Tensor::from({4, 3}, {0.5, -1.0, 2.0, 1.5, 0.25, -0.75, -2.0, 1.0, 0.1, 0.3, 0.6, -0.9}));
  tape.backward(mean(square(lin(x))));
  opt.step();
  opt.zero_grad();
}

NamedTensors small_tensors(double base) {
  return {{"a", Tensor::from({2, 2}, {base, base + 1, base + 2, base + 3})}, {"b", Tensor::scalar(base, DType::f64)}};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(checkpoint)

BOOST_AUTO_TEST_CASE(round_trip_every_dtype_scalar_empty_and_metadata) {
  TempDir tmp;
  const NamedTensors in = {
      {"layers.0.w", Tensor::from({2, 3}, {1.5, -2.25, 3e-30, 1e30, -0.0, 7.0})},
      {"f64", Tensor::from({3}, {1.0 / 3.0, -1e-300, 2.5}, DType::f64)},
      {"tokens", Tensor::from_ints({2, 2}, {-7, 0, 2147483647, -2147483647})},
      {"mask", Tensor::from({5}, {0, 1, 1, 0, 255}, DType::u8)},
      {"scalar", Tensor::scalar(42.5)},
      {"empty", Tensor::empty({0, 4})},
      {"name with \"quotes\" \\ and \xc3\xa9", Tensor::from({1}, {9})},
  };
  const std::map<std::string, std::string> meta = {{"step", "12"}, {"note", "line\nbreak \"q\" \x01 \xe2\x82\xac"}};
  const std::string path = tmp / "all.safetensors";
  write_safetensors(path, in, meta);
  const Safetensors out = read_safetensors(path);
  BOOST_TEST(out.metadata == meta);
  BOOST_TEST(out.tensors.size() == in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    BOOST_TEST(out.names[i] == in[i].first);  // file order is write order
    BOOST_TEST(same_bits(out.tensors.at(in[i].first), in[i].second), in[i].first);
  }
  BOOST_TEST(out.tensors.at("scalar").rank() == 0);
  BOOST_TEST(no_temp_files(tmp.dir));
}

BOOST_AUTO_TEST_CASE(header_follows_the_safetensors_layout) {
  const std::string bytes = encode_safetensors({{"x", Tensor::from({2}, {1.0, 2.0})}}, {{"k", "v"}});
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const std::string json = R"({"__metadata__":{"k":"v"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  BOOST_TEST(bytes.substr(8, json.size()) == json);
  BOOST_TEST(n % 8 == 0);                           // data starts aligned; padding is spaces
  BOOST_TEST(bytes.substr(8 + json.size(), n - json.size()) == std::string(n - json.size(), ' '));
  BOOST_TEST(bytes.size() == 8 + n + 8);
  float x[2];
  std::memcpy(x, bytes.data() + 8 + n, 8);
  BOOST_TEST(x[0] == 1.0f);
  BOOST_TEST(x[1] == 2.0f);
}

BOOST_AUTO_TEST_CASE(the_streaming_writer_writes_the_same_bytes) {
  // SafetensorsWriter (--dump-logits) against the one-shot encoder: same tensors and
  // metadata, same file; unfinished or refused, it leaves the previous file and no temp file.
  TempDir tmp;
  const NamedTensors in = {
      {"logits.seg0", Tensor::from({1, 2, 3}, {1.5, -2.25, 3e-30, 1e30, -0.0, 7.0})},
      {"f64", Tensor::from({3}, {1.0 / 3.0, -1e-300, 2.5}, DType::f64)},
      {"tokens", Tensor::from_ints({2, 2}, {-7, 0, 2147483647, -2147483647})},
      {"empty", Tensor::empty({0, 4})},
      {"mask", Tensor::from({5}, {0, 1, 1, 0, 255}, DType::u8)},
  };
  const std::map<std::string, std::string> meta = {{"format", "mnemo.logits/1"}, {"arch", "x"}};
  for (const auto& m : {meta, std::map<std::string, std::string>{}}) {
    const std::string path = tmp / "streamed.safetensors";
    {
      SafetensorsWriter w(path, m);
      for (const auto& [name, t] : in) w.add(name, t);
      w.finish();
      BOOST_CHECK_THROW(w.add("late", Tensor::scalar(1)), Error);
    }
    BOOST_TEST(read_bytes(path) == encode_safetensors(in, m));
    BOOST_TEST(no_temp_files(tmp.dir));
  }
  const std::string before = read_bytes(tmp / "streamed.safetensors");
  {
    SafetensorsWriter w(tmp / "streamed.safetensors", meta);
    w.add("a", in[0].second);
    BOOST_CHECK_THROW(w.add("a", in[1].second), Error);  // a name given twice
    BOOST_CHECK_THROW(w.add("", in[1].second), Error);
  }  // never finished
  BOOST_TEST(read_bytes(tmp / "streamed.safetensors") == before);
  BOOST_TEST(no_temp_files(tmp.dir));
}

BOOST_AUTO_TEST_CASE(training_state_round_trips_through_a_file) {
  TempDir tmp;
  TrainingState s;
  s.step = 1234;
  s.weights = {{"emb.weight", Tensor::from({2, 2}, {1, 2, 3, 4})}, {"a.bias", Tensor::from({1}, {5})}};
  s.optimizer = {{"adamw.m.emb.weight", Tensor::from({2, 2}, {0.1, 0.2, 0.3, 0.4})}};
  s.optimizer_counters = {{"adamw.steps", 1234}, {"adamw.step.emb.weight", 1000}};
  s.rng_state = 0xfedcba9876543210ULL;
  s.data_cursor = {0, -3, 9007199254740993LL};
  s.memory = {{"layer0.mem", Tensor::from({1, 2}, {7, 8})}, {"h", Tensor::from_ints({1}, {3})}};
  s.extra = {{"config_hash", "abc"}};
  const std::string path = tmp / "state.safetensors";
  save_checkpoint(path, s);
  const TrainingState r = load_checkpoint(path);
  BOOST_TEST(r.step == s.step);
  BOOST_TEST(r.rng_state == s.rng_state);
  BOOST_TEST(r.data_cursor == s.data_cursor);
  BOOST_TEST(r.extra == s.extra);
  BOOST_TEST(r.optimizer_counters == s.optimizer_counters);
  BOOST_REQUIRE(r.weights.size() == 2);
  BOOST_TEST(r.weights[0].first == "emb.weight");  // saved order kept
  BOOST_TEST(same_bits(r.weights[1].second, s.weights[1].second));
  BOOST_REQUIRE(r.optimizer.size() == 1);
  BOOST_TEST(r.optimizer[0].first == "adamw.m.emb.weight");
  BOOST_TEST(same_bits(r.memory.at("layer0.mem"), s.memory.at("layer0.mem")));
  BOOST_TEST(same_bits(r.memory.at("h"), s.memory.at("h")));
  // The names inside the file are the documented ones.
  const Safetensors f = read_safetensors(path);
  BOOST_TEST(f.tensors.count("emb.weight"));
  BOOST_TEST(f.tensors.count("optim/adamw.m.emb.weight"));
  BOOST_TEST(f.tensors.count("memory/layer0.mem"));
  BOOST_TEST(f.metadata.at("step") == "1234");
}

BOOST_AUTO_TEST_CASE(resume_of_a_tiny_model_with_adamw_is_bit_exact) {
  TempDir tmp;
  const AdamWConfig cfg{.lr = 0.05, .weight_decay = 0.1, .no_decay = {"bias"}};
  nn::Init init_a(7);
  nn::Linear a(init_a, 3, 2);
  AdamW opt_a(nn::named_params(a), cfg);
  train_step(a, opt_a);
  train_step(a, opt_a);
  Rng rng(99);
  rng.next_u64();
  const std::string path = tmp / "tiny.safetensors";
  save_checkpoint(path, capture(a, opt_a, {}, rng.state(), {4, 5}));

  nn::Init init_b(12345);  // different initial weights: restore must overwrite them all
  nn::Linear b(init_b, 3, 2);
  AdamW opt_b(nn::named_params(b), cfg);
  const TrainingState loaded = load_checkpoint(path);
  restore(b, opt_b, loaded);
  Rng rng_b;
  rng_b.set_state(loaded.rng_state);
  BOOST_TEST(rng_b.next_u64() == rng.next_u64());
  BOOST_TEST(loaded.data_cursor == std::vector<int64_t>({4, 5}));
  BOOST_TEST(opt_b.steps() == 2);

  train_step(a, opt_a);
  train_step(b, opt_b);
  BOOST_TEST(same_bits(a.weight.value, b.weight.value));
  BOOST_TEST(same_bits(a.bias.value, b.bias.value));
  BOOST_TEST(same_bits(opt_a.state(&a.weight).m, opt_b.state(&b.weight).m));
  BOOST_TEST(same_bits(opt_a.state(&a.weight).v, opt_b.state(&b.weight).v));
  BOOST_TEST(opt_b.state(&b.bias).step == 3);
}

BOOST_AUTO_TEST_CASE(restore_into_a_mismatched_model_names_the_parameter) {
  nn::Init init(1);
  nn::Linear small(init, 3, 2), wide(init, 3, 4), no_bias(init, 3, 2, false);
  AdamW opt_small(nn::named_params(small), {}), opt_wide(nn::named_params(wide), {}),
      opt_nb(nn::named_params(no_bias), {});
  train_step(small, opt_small);
  const TrainingState s = capture(small, opt_small);

  const std::vector<double> before = wide.weight.value.to_vector();
  expect_error([&] { restore(wide, opt_wide, s); },
               {"parameter 'weight'", "model has f32 (4, 3)", "checkpoint has f32 (2, 3)", "parameter 'bias'"});
  BOOST_TEST(wide.weight.value.to_vector() == before);  // nothing changed

  expect_error([&] { restore(no_bias, opt_nb, s); }, {"unknown to the model: 'bias'"});
  const TrainingState nb = capture(no_bias, opt_nb);
  expect_error([&] { restore(small, opt_small, nb); }, {"missing from the checkpoint: 'bias'"});
}

BOOST_AUTO_TEST_CASE(corrupt_and_truncated_files_are_refused) {
  TempDir tmp;
  const std::string p = tmp / "bad.safetensors";
  const std::string good = encode_safetensors({{"w", Tensor::from({30}, std::vector<double>(30, 1.0))}}, {});
  expect_refused(p, good.substr(0, good.size() - 40), {"truncated: header says 120 bytes of data, file has 80"});
  expect_refused(p, good.substr(0, 5), {"truncated", "8-byte header length"});
  expect_refused(p, good.substr(0, 30), {"truncated: header length says"});
  expect_refused(p, "", {"truncated"});

  auto hdr = [](const std::string& body) { return "{\"w\":{" + body + "}}"; };
  expect_refused(p, make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},})", 8), {"header: bad JSON"});
  expect_refused(p, make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8), {"header: bad JSON"});
  expect_refused(p, make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x)", 8),
                 {"header: bad JSON at byte 55:", "expected end of input"});
  expect_refused(p, make_file(R"({"w":1,"w":2})", 0), {"duplicate key"});
  expect_refused(p, make_file("[1]", 0), {"is not a safetensors file"});
  expect_refused(p, make_file(hdr(R"("dtype":"F32","shape":[4],"data_offsets":[0,16])"), 8),
                 {"truncated: header says 16 bytes of data, file has 8"});
  expect_refused(p, make_file(hdr(R"("dtype":"F32","shape":[0],"data_offsets":[8,0])"), 8), {"begin <= end"});
  expect_refused(p, make_file(hdr(R"("dtype":"F16","shape":[2],"data_offsets":[0,4])"), 4), {"unsupported dtype \"F16\""});
  expect_refused(p, make_file(hdr(R"("dtype":"F32","shape":[3],"data_offsets":[0,8])"), 8),
                 {"tensor 'w'", "needs 12 bytes", "hold 8"});
  expect_refused(p, make_file(hdr(R"("dtype":"F32","shape":[-2],"data_offsets":[0,8])"), 8), {"non-negative integers"});
  expect_refused(p, make_file(hdr(R"("dtype":"F32","shape":[2.5],"data_offsets":[0,8])"), 8), {"non-negative integers"});
  expect_refused(p, make_file(hdr(R"("dtype":"F32","shape":[2])"), 8), {"needs dtype, shape and data_offsets"});
  expect_refused(p, make_file(hdr(R"("dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1)"), 8), {"unknown field"});
  expect_refused(p,
                 make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
                 {"'a' [0, 8] and 'b' [4, 12] overlap"});
  expect_refused(p,
                 make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
                 {"bytes [4, 8) of data belong to no tensor"});
  expect_refused(p, make_file(hdr(R"("dtype":"F32","shape":[1],"data_offsets":[0,4])"), 12), {"8 bytes after the last tensor"});
  expect_refused(p, make_file(R"({"__metadata__":{"k":1}})", 0), {"__metadata__ \"k\" must be a string"});
  expect_refused(p, make_file("{\"w\xff\":1}", 0), {"not valid UTF-8"});
  expect_error([&] { read_safetensors(tmp / "missing.safetensors"); }, {"missing.safetensors", "cannot open"});

  // A valid safetensors file that is not a training checkpoint.
  write_safetensors(p, small_tensors(1), {});
  expect_error([&] { load_checkpoint(p); }, {"not a mnemo training checkpoint"});
}

BOOST_AUTO_TEST_CASE(a_failed_write_leaves_the_previous_file_and_no_temp_file) {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  write_safetensors(path, small_tensors(1), {{"v", "1"}});
  const std::string before = read_bytes(path);

  // The directory does not exist: nothing is created anywhere.
  expect_error([&] { write_safetensors(tmp / "no/such/dir/ckpt.safetensors", small_tensors(2), {}); },
               {"cannot create the temporary file"});
  // Encoding fails before any file is opened.
  expect_error([&] { write_safetensors(path, {{"x", Tensor()}}, {}); }, {"'x' is undefined"});
  BOOST_TEST(read_bytes(path) == before);

  // The disk "fills up" mid-write (a file-size limit makes write() fail with EFBIG): the
  // temp file is removed and the previous checkpoint is untouched.
  const NamedTensors big = {{"big", Tensor::zeros({1 << 16})}};
  rlimit old{};
  ::getrlimit(RLIMIT_FSIZE, &old);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small_limit = old;
  small_limit.rlim_cur = 4096;
  ::setrlimit(RLIMIT_FSIZE, &small_limit);
  std::string err;
  try {
    write_safetensors(path, big, {});
  } catch (const Error& e) {
    err = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  BOOST_TEST(err.find("write failed") != std::string::npos, err);
  BOOST_TEST(read_bytes(path) == before);
  BOOST_TEST(read_safetensors(path).metadata.at("v") == "1");
  BOOST_TEST(no_temp_files(tmp.dir));

  // The rename fails (the target is a non-empty directory): temp removed too.
  fs::create_directories(tmp.dir / "occupied" / "x");
  expect_error([&] { write_safetensors(tmp / "occupied", small_tensors(3), {}); }, {"cannot rename"});
  BOOST_TEST(no_temp_files(tmp.dir));
}

BOOST_AUTO_TEST_CASE(a_partial_temp_file_from_a_crash_is_harmless) {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  write_safetensors(path, small_tensors(1), {{"v", "1"}});
  // A crash after writing half of the next checkpoint and before the rename: our pid's temp
  // name and another process's.
  const std::string next = encode_safetensors(small_tensors(2), {{"v", "2"}});
  write_bytes(temp_path_for(path), next.substr(0, next.size() / 2));
  write_bytes(path + ".tmp.999999", next.substr(0, 10));
  BOOST_TEST(read_safetensors(path).metadata.at("v") == "1");
  // The next save replaces its own stale temp file and succeeds.
  write_safetensors(path, small_tensors(3), {{"v", "3"}});
  BOOST_TEST(read_safetensors(path).metadata.at("v") == "3");
  BOOST_TEST(!fs::exists(temp_path_for(path)));
}

BOOST_AUTO_TEST_CASE(a_process_killed_while_writing_leaves_a_loadable_checkpoint) {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  // Two distinguishable states, big enough (8 MB) that the kill lands mid-write.
  TrainingState a, b;
  a.step = 1;
  a.weights = {{"w", Tensor::full({1 << 21}, 1.0)}};
  b.step = 2;
  b.weights = {{"w", Tensor::full({1 << 21}, 2.0)}};
  save_checkpoint(path, a);

  for (int delay_ms : {5, 15, 30, 60, 100}) {
    const pid_t child = ::fork();
    BOOST_REQUIRE(child >= 0);
    if (child == 0) {  // keep overwriting the checkpoint until killed
      for (;;) {
        save_checkpoint(path, b);
        save_checkpoint(path, a);
      }
    }
    ::usleep(useconds_t(delay_ms * 1000));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    BOOST_TEST(WIFSIGNALED(status));

    const TrainingState r = load_checkpoint(path);  // must not throw
    BOOST_TEST((r.step == 1 || r.step == 2));
    BOOST_TEST(same_bits(r.weights.at(0).second, (r.step == 1 ? a : b).weights[0].second));
    const std::string leftover = path + ".tmp." + std::to_string(child);
    BOOST_TEST_MESSAGE("killed after " << delay_ms << " ms; partial temp file left: " << fs::exists(leftover));
    fs::remove(leftover);
  }
}

// A small state whose step and AdamW counts agree: 3 steps of 2 updates, 1 of them skipped.
TrainingState consistent_state() {
  TrainingState s;
  s.step = 3;
  s.updates_per_step = 2;
  s.skipped_updates = 1;
  s.weights = {{"a", Tensor::from({2, 2}, {1, 2, 3, 4})}, {"b", Tensor::from({2, 2}, {5, 6, 7, 8})}};
  s.optimizer = {{"adamw.m.a", Tensor::from({2, 2}, {0.1, 0.2, 0.3, 0.4})},
                 {"adamw.v.a", Tensor::from({2, 2}, {0.01, 0.02, 0.03, 0.04})}};
  s.optimizer_counters = {{"adamw.steps", 5}, {"adamw.step.a", 5}, {"adamw.step.b", 0}};
  return s;
}

BOOST_AUTO_TEST_CASE(a_flipped_byte_in_a_tensor_is_refused_naming_it) {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  save_checkpoint(path, consistent_state());
  const Safetensors f = read_safetensors(path);
  BOOST_TEST(f.metadata.count("crc32/b"));
  BOOST_TEST(f.metadata.count("crc32/optim/adamw.m.a"));
  std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  bytes[8 + n + 16 + 5] ^= 0x01;  // a low mantissa bit of b[1]: the value stays finite and plausible
  write_bytes(path, bytes);
  expect_error([&] { load_checkpoint(path); }, {"checkpoint '" + path + "'", "tensor 'b' is corrupt", "CRC32"});
}

BOOST_AUTO_TEST_CASE(checkpoints_without_checksums_load_unverified) {
  TempDir tmp;
  const std::string path = tmp / "old.safetensors";
  save_checkpoint(path, consistent_state());
  Safetensors f = read_safetensors(path);
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : f.metadata)
    if (!k.starts_with("crc32/")) meta[k] = v;
  NamedTensors tensors;
  for (const auto& name : f.names) tensors.emplace_back(name, f.tensors.at(name));
  write_safetensors(path, tensors, meta);  // as written before checksums existed
  BOOST_TEST(load_checkpoint(path).weights.size() == 2u);
  // Losing some checksums is damage, not age.
  meta["crc32/a"] = f.metadata.at("crc32/a");
  write_safetensors(path, tensors, meta);
  expect_error([&] { load_checkpoint(path); }, {"tensor 'b' has no checksum"});
}

BOOST_AUTO_TEST_CASE(non_finite_weights_and_moments_are_refused_on_save_and_on_load) {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  save_checkpoint(path, consistent_state());
  const std::string good = read_bytes(path);
  for (const bool in_weights : {true, false}) {
    BOOST_TEST_CONTEXT((in_weights ? "weight" : "moment")) {
      TrainingState bad = consistent_state();
      Tensor& t = in_weights ? bad.weights[1].second : bad.optimizer[1].second;
      t.data<float>()[2] = std::nanf("");
      const std::string name = in_weights ? "b" : "adamw.v.a";
      expect_error([&] { save_checkpoint(path, bad); }, {"refusing to write", "'" + name + "' holds 1 NaN/Inf"});
      BOOST_TEST(read_bytes(path) == good);  // the last good checkpoint stays
      // A file holding one anyway (written by something else, checksums matching) is refused on load.
      Safetensors f = read_safetensors(path);
      const std::string key = in_weights ? "b" : "optim/adamw.v.a";
      f.tensors.at(key).data<float>()[2] = INFINITY;
      NamedTensors tensors;
      for (const auto& n : f.names) tensors.emplace_back(n, f.tensors.at(n));
      std::map<std::string, std::string> no_crc;  // an old checkpoint: nothing else to catch it
      for (const auto& [k, v] : f.metadata)
        if (!k.starts_with("crc32/")) no_crc[k] = v;
      const std::string poisoned = tmp / "poisoned.safetensors";
      write_safetensors(poisoned, tensors, no_crc);
      expect_error([&] { load_checkpoint(poisoned); }, {"tensor '" + key + "' holds 1 NaN/Inf of 4 values"});
    }
  }
}

BOOST_AUTO_TEST_CASE(a_step_that_disagrees_with_adamw_counts_is_refused) {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  save_checkpoint(path, consistent_state());
  BOOST_TEST(load_checkpoint(path).skipped_updates == 1);  // 3 * 2 - 1 == 5: accepted
  TrainingState s = consistent_state();
  s.step = 7;
  save_checkpoint(path, s);
  expect_error([&] { load_checkpoint(path); }, {"inconsistent: step 7", "means 13 AdamW updates",
                                                "the optimizer's step count is 5"});
  s = consistent_state();
  s.optimizer_counters["adamw.step.b"] = 6;  // a parameter updated more often than the optimizer stepped
  save_checkpoint(path, s);
  expect_error([&] { load_checkpoint(path); }, {"AdamW step count of 'b' is 6, outside [0, 5]"});
}

BOOST_AUTO_TEST_SUITE_END()
