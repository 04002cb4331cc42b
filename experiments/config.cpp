// load_config and to_yaml: files -> one merged YAML tree (base: chains, then --set flags)
// -> ExperimentConfig, each section read by a short function that names every field once.
// Cross-field rules live next to the fields they relate, so their errors carry a location.
#include "experiments/config.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>
#include <vector>

#include <yaml-cpp/depthguard.h>  // YAML::DeepRecursion, not in yaml.h

#include "experiments/json.h"
#include "experiments/models.h"
#include "experiments/replay_schedule.h"
#include "experiments/run_data.h"
#include "experiments/yaml_emit.h"
#include "kernels/emulated/device.h"
#include "kernels/precision.h"

namespace mnemo::experiments {
namespace fs = std::filesystem;

namespace {


// A size key: positive and at most `most`, so that products of sizes (tokens per batch,
// parameters, activations) stay far from overflow; allocation checks the rest (autograd/shape.h).
InRange size_in(int64_t most) { return in_range(1, double(most)); }

// ---- enums: one table of YAML names each, in declaration order --------------------------

constexpr std::array kDataKinds = {"text", "enwik8", "synthetic"};
// data::Task and BpttMode are declared elsewhere; these tables follow their order.
constexpr std::array kTaskKinds = {"copy", "reverse", "assoc_recall", "selective_copy", "needle"};
constexpr std::array kOptimizerKinds = {"adamw"};
constexpr std::array kStepEvery = {"batch", "segment"};
constexpr std::array kScheduleKinds = {"constant", "warmup_cosine"};
constexpr std::array kBpttKinds = {"truncated", "full", "replay"};
constexpr std::array kOnNonFinite = {"stop", "skip"};
constexpr std::array kPrecisions = {"f32", "bf16"};
constexpr std::array kDevices = {"cpu", "cuda"};  // mnemo::Device

template <class E, size_t N>
E get_enum(YamlReader& r, const std::string& key, E def, const std::array<const char*, N>& names) {
  const std::vector<std::string> allowed(names.begin(), names.end());
  const std::string v = r.get(key, std::string(names[size_t(def)]), one_of(allowed));
  return E(std::find(allowed.begin(), allowed.end(), v) - allowed.begin());
}

// ---- reading the sections ---------------------------------------------------------------

void read_task(YamlReader& r, DataConfig& d) {
  d.task = get_enum(r, "task", d.task, kTaskKinds);
  d.total_len = r.get("total_len", d.total_len, non_negative);
  d.copy_len = r.get("copy_len", d.copy_len, size_in(1 << 20));
  d.num_pairs = r.get("num_pairs", d.num_pairs, size_in(1 << 20));
  d.depth = r.get("depth", d.depth, in_range(0, 1));
}

DataConfig read_data(YamlReader r) {
  DataConfig d;
  d.kind = get_enum(r, "kind", d.kind, kDataKinds);
  d.path = r.get("path", d.path);
  read_task(r, d);
  d.segments = r.get("segments", d.segments, size_in(1 << 16));
  {
    YamlReader c = r.child("curriculum");
    d.curriculum_segments = c.get("segments", d.curriculum_segments, size_in(1 << 16));
    d.curriculum_steps = c.get("steps", d.curriculum_steps, positive);
    c.reject_unknown_keys();
    if (!d.curriculum_segments.empty() && d.kind != DataKind::synthetic)
      c.fail("segments", "a curriculum needs data.kind: synthetic");
    if (!d.curriculum_segments.empty() && d.curriculum_steps == 0)
      c.fail("steps", "required with curriculum.segments (steps at each stage)");
    for (int64_t s : d.curriculum_segments)
      if (s > d.segments)
        c.fail("segments", "stages must not exceed data.segments = " + std::to_string(d.segments) + ", got " +
                               std::to_string(s));
  }
  d.segment_len = r.get("segment_len", d.segment_len, size_in(1 << 20));
  d.batch_size = r.get("batch_size", d.batch_size, size_in(1 << 16));
  d.at.at["batch_size"] = r.where("batch_size");
  if (d.batch_size * d.segments * d.segment_len > (int64_t(1) << 31))
    r.fail("segment_len", "batch_size * segments * segment_len = " +
                              std::to_string(d.batch_size * d.segments * d.segment_len) +
                              " tokens per batch is more than 2^31");
  d.stateful = r.get("stateful", d.stateful);
  d.random_crops = r.get("random_crops", d.random_crops);
  d.val_fraction = r.get("val_fraction", d.val_fraction, in_range(0, 0.5));
  r.reject_unknown_keys();
  if (d.kind != DataKind::synthetic && d.path.empty())
    r.fail("path", std::string("required when data.kind is ") + name_of(d.kind));
  // stateful streams are contiguous; random crops are not: the two cannot both hold
  if (d.stateful && d.random_crops) r.fail("random_crops", "cannot be true with data.stateful: true");
  return d;
}

ModelConfig read_model(YamlReader r, const DataConfig& data) {
  ModelConfig m;
  const std::vector<std::string> archs = arch_names();  // the registry: every arch_<name>.cpp
  m.arch = r.get("arch", m.arch, one_of(archs));
  m.dim = r.get("dim", m.dim, size_in(1 << 16));
  m.depth = r.get("depth", m.depth, size_in(1 << 12));
  m.heads = r.get("heads", m.heads, size_in(1 << 12));
  m.vocab = r.get("vocab", m.vocab, size_in(1 << 24));
  if (m.dim % m.heads != 0)
    r.fail("heads", "must divide model.dim = " + std::to_string(m.dim) + ", got " + std::to_string(m.heads));
  // Blocks of other architectures are ignored, so a sweep over model.arch can keep them all.
  std::optional<YamlReader> block;
  for (const auto& a : archs) {
    YamlReader b = r.child(a);
    if (a == m.arch) block = b;
  }
  r.reject_unknown_keys();
  m.options = find_arch(m.arch).read_options(*block, m, data);
  return m;
}

OptimizerConfig read_optimizer(YamlReader r) {
  OptimizerConfig o;
  if (r.has("type") && r.get("type", std::string()) == "sgd")
    r.fail("type", "sgd is not a training optimizer here: the trainer steps AdamW (adamw)");
  o.type = get_enum(r, "type", o.type, kOptimizerKinds);
  o.lr = r.get("lr", o.lr, positive);
  o.step_every = get_enum(r, "step_every", o.step_every, kStepEvery);
  o.betas = r.get("betas", o.betas, in_range(0, 0.999999));
  if (o.betas.size() != 2) r.fail("betas", "must have 2 entries, got " + std::to_string(o.betas.size()));
  o.weight_decay = r.get("weight_decay", o.weight_decay, non_negative);
  o.eps = r.get("eps", o.eps, positive);
  o.no_decay = r.get("no_decay", o.no_decay);
  r.reject_unknown_keys();
  return o;
}

ScheduleConfig read_schedule(YamlReader r, const TrainConfig& t) {
  ScheduleConfig s;
  s.kind = get_enum(r, "kind", s.kind, kScheduleKinds);
  s.warmup_steps = r.get("warmup_steps", s.warmup_steps, non_negative);
  s.min_lr = r.get("min_lr", s.min_lr, non_negative);
  r.reject_unknown_keys();
  if (s.kind == ScheduleKind::warmup_cosine && s.warmup_steps >= t.steps)
    r.fail("warmup_steps", "must be < train.steps = " + std::to_string(t.steps) + " for warmup_cosine");
  if (s.min_lr > t.optimizer.lr) r.fail("min_lr", "must be <= train.optimizer.lr");
  return s;
}

std::map<std::string, double> read_memory_dropout(YamlReader r, KeyLocations& where) {
  std::map<std::string, double> out;
  for (const auto& name : r.keys()) {
    out[name] = r.get(name, 0.0, in_range(0, 1));
    where.at[name] = r.where(name);
  }
  return out;
}

TrainConfig read_train(YamlReader r, const DataConfig& d, Device device) {
  TrainConfig t;
  t.steps = r.get("steps", t.steps, positive);
  t.bptt = get_enum(r, "bptt", t.bptt, kBpttKinds);
  // replay cuts its memory gradient every `window` segments; absent, it cuts nothing
  if (t.bptt == BpttMode::replay) t.window = d.segments;
  t.window = r.get("window", t.window, size_in(1 << 16));
  if (t.window > d.segments)
    r.fail("window", "must be <= data.segments = " + std::to_string(d.segments) + ", got " + std::to_string(t.window));
  if (t.bptt == BpttMode::replay && t.window == 1 && d.segments > 1)  // also what an old run folder says
    r.fail("window", "bptt: replay with window: 1 carries no gradient between segments; use bptt: truncated "
                     "(the same gradients without the replay pass), or a window of 2 to data.segments");
  t.replay_recompute = r.get("replay_recompute", t.replay_recompute);
  if (t.replay_recompute && t.bptt != BpttMode::replay)
    r.fail("replay_recompute", std::string("needs bptt: replay, got ") + name_of(t.bptt));
  if (r.has("replay_snapshots") && !t.replay_recompute) r.fail("replay_snapshots", "needs replay_recompute: true");
  t.replay_snapshots = r.get("replay_snapshots", t.replay_snapshots, positive);
  if (t.replay_recompute && t.replay_snapshots < ReplaySchedule::least_slots(d.segments))
    r.fail("replay_snapshots", "replaying " + std::to_string(d.segments) + " segments needs at least " +
                                   std::to_string(ReplaySchedule::least_slots(d.segments)) + ", got " +
                                   std::to_string(t.replay_snapshots));
  t.grad_accum = r.get("grad_accum", t.grad_accum, size_in(1 << 16));
  t.clip = r.get("clip", t.clip, non_negative);
  t.optimizer = read_optimizer(r.child("optimizer"));
  if (t.optimizer.step_every == StepEvery::segment && (t.bptt != BpttMode::truncated || t.window != 1))
    r.fail("optimizer", "optimizer.step_every: segment needs bptt: truncated and window: 1 (each "
                        "segment is its own update)");
  // accumulated batches run side by side, segment by segment: none may continue another
  if (t.optimizer.step_every == StepEvery::segment && t.grad_accum > 1 && d.stateful && !d.random_crops &&
      d.kind != DataKind::synthetic)
    r.fail("grad_accum", "optimizer.step_every: segment with grad_accum > 1 needs batches that start from the "
                         "initial memory (data.random_crops: true, data.stateful: false or a synthetic task): "
                         "the accumulated batches run segment by segment side by side, and a stateful stream's "
                         "next batch needs the memory its previous batch's last segment leaves");
  if (t.optimizer.step_every == StepEvery::segment && !d.curriculum_segments.empty())
    r.fail("optimizer", "optimizer.step_every: segment cannot follow a data.curriculum (its update count assumes "
                        "data.segments per batch)");
  t.schedule = read_schedule(r.child("schedule"), t);
  t.memory_dropout = read_memory_dropout(r.child("memory_dropout"), t.memory_dropout_at);
  t.log_every = r.get("log_every", t.log_every, positive);
  t.eval_every = r.get("eval_every", t.eval_every, non_negative);
  t.checkpoint_every = r.get("checkpoint_every", t.checkpoint_every, non_negative);
  t.threads = r.get("threads", t.threads, non_negative);
  t.on_nonfinite = get_enum(r, "on_nonfinite", t.on_nonfinite, kOnNonFinite);
  if (r.has("max_skips") && t.on_nonfinite != OnNonFinite::skip)
    r.fail("max_skips", std::string("needs on_nonfinite: skip, got ") + name_of(t.on_nonfinite));
  t.max_skips = r.get("max_skips", t.max_skips, non_negative);
  t.precision = get_enum(r, "precision", t.precision, kPrecisions);
  // refused here rather than warned about later: a run that silently trains in f32 would
  // report f32 speed and f32 numerics under a bf16 label
  // (on the run's device: cuBLAS's tensor cores for device: cuda)
  if (t.precision == Precision::bf16)
    if (const std::string why = kernels::bf16_unavailable(device == Device::cuda ? kernels::GemmDevice::cuda
                                                                                   : kernels::GemmDevice::cpu);
        !why.empty())
      r.fail("precision", "bf16 cannot run here: " + why + "; use precision: f32");
  r.reject_unknown_keys();
  return t;
}

EvalConfig read_eval(YamlReader r) {
  EvalConfig e;
  e.batches = r.get("batches", e.batches, non_negative);
  e.generate_every = r.get("generate_every", e.generate_every, non_negative);
  e.generate_len = r.get("generate_len", e.generate_len, size_in(1 << 30));
  e.temperature = r.get("temperature", e.temperature, positive);
  e.top_k = r.get("top_k", e.top_k, non_negative);
  r.reject_unknown_keys();
  return e;
}

// sweep: {dotted.key: [v1, v2, ...], ...}, in file order. A value may be a one-entry map,
// `v2: {dotted.key: value, ...}`: the points that take v2 also set those keys. The keys are
// checked when the grid is expanded (each point is a load_config with --set overrides).
std::vector<SweepAxis> read_sweep(YamlReader r) {
  const auto check_key = [](YamlReader& at, const std::string& key, const char* what) {
    if (key != "seed" && key.find('.') == std::string::npos)
      at.fail(key, std::string(what) + " is `seed` or a dotted key such as train.optimizer.lr or model.arch");
  };
  std::vector<SweepAxis> out;
  for (const std::string& key : r.keys()) {
    check_key(r, key, "a sweep axis");
    const YAML::Node& map = r.node();  // const: operator[] must not insert
    const YAML::Node list = map[key];
    bool with_overrides = false;
    if (list.IsSequence())
      for (const auto& item : list) with_overrides = with_overrides || item.IsMap();
    SweepAxis axis{key, {}};
    if (!with_overrides) {
      axis.values = r.get(key, std::vector<std::string>{});
    } else {
      for (size_t i = 0; i < list.size(); ++i) {
        if (list[i].IsScalar()) {
          axis.values.push_back(list[i].Scalar());
          axis.overrides.emplace_back();
          continue;
        }
        if (!list[i].IsMap())
          r.fail(key, "value " + std::to_string(i + 1) +
                          ": a sweep value is a scalar or a one-entry map `value: {dotted.key: value, ...}`");
        YamlReader item(list[i], r.file(), r.key_path(key) + "[" + std::to_string(i) + "]", r.sources());
        const std::vector<std::string> value = item.keys();
        if (value.size() != 1)
          r.fail(key, "value " + std::to_string(i + 1) +
                          ": a sweep value is a scalar or a one-entry map `value: {dotted.key: value, ...}`");
        YamlReader sets = item.child(value[0]);  // a map: {model.dim: 56, ...}
        axis.values.push_back(value[0]);
        auto& pairs = axis.overrides.emplace_back();
        for (const std::string& k : sets.keys()) {
          check_key(sets, k, "an override");
          pairs.emplace_back(k, sets.get(k, std::string{}));
        }
      }
    }
    bool any_override = false;
    for (const auto& o : axis.overrides) any_override = any_override || !o.empty();
    if (!any_override) axis.overrides.clear();  // `- v: {}` is `- v`, as to_yaml writes it
    if (axis.values.empty()) r.fail(key, "a sweep axis needs a non-empty list of values");
    out.push_back(std::move(axis));
  }
  return out;
}

// An option that trains through gradients crossing a segment boundary (ArchInfo's
// cross_segment_option) changes nothing when every tape holds one segment: bptt: truncated
// with window 1 cuts the memories after each segment, and one segment a batch has no boundary.
void check_cross_segment_option(YamlReader& r, const ExperimentConfig& c) {
  const ArchInfo& info = find_arch(c.model.arch);
  if (!info.cross_segment_option) return;
  const std::string key = info.cross_segment_option(*c.model.options);
  const int64_t tape = c.train.bptt == BpttMode::full ? c.data.segments : c.train.window;  // read_train: window <= segments
  if (key.empty() || tape >= 2) return;
  r.child("model").child(c.model.arch).fail(
      key, "acts only through gradients that cross segments on one tape, and this run's tapes hold one segment (train.bptt: " +
               std::string(name_of(c.train.bptt)) + ", train.window: " + std::to_string(c.train.window) +
               ", data.segments: " + std::to_string(c.data.segments) +
               "), so it would change nothing: use train.window >= 2 or bptt: full with data.segments >= 2");
}

// A synthetic task's sizes must fit its sequence, and its letters the vocabulary: checked at
// load (by building the task, which generates nothing yet) so the error carries a location.
void check_synthetic(YamlReader& r, const ExperimentConfig& c) {
  YamlReader d = r.child("data");
  const int64_t length = c.data.segments * c.data.segment_len;
  if (c.data.total_len != 0 && c.data.total_len != length)
    d.fail("total_len", "must equal data.segments * data.segment_len = " + std::to_string(length) + " (or be 0), got " +
                            std::to_string(c.data.total_len));
  try {
    data::SyntheticTask probe(synthetic_config(c, c.seed));
  } catch (const Error& e) {
    d.fail(c.data.task == data::Task::assoc_recall ? "num_pairs" : "copy_len", e.what());
  }
  // The tasks' letters go up to 'z', but the copy marker '|' is above it (a vocab of 123 or 124
  // once passed this check and failed mid-run with an index out of range).
  constexpr int64_t kLargestToken = std::max<int64_t>({'z', data::vocab::kBlank, data::vocab::kSep, data::vocab::kNoise,
                                                       data::vocab::kQuery, data::vocab::kMark, data::vocab::kEq});
  if (c.model.vocab <= kLargestToken)
    r.child("model").fail("vocab", "synthetic tasks use byte values up to " + std::to_string(kLargestToken) +
                                       ": must be > " + std::to_string(kLargestToken) + ", got " +
                                       std::to_string(c.model.vocab));
}

ExperimentConfig read_experiment(YamlReader r, const std::string& stem) {
  ExperimentConfig c;
  // The name is a folder under runs/: a plain file name, so that it cannot escape runs/ or be runs/ itself.
  c.name = r.get("name", stem, [](const std::string& v) -> std::string {
    if (v.empty() || v == "." || v == "..") return "must be a plain file name (not empty, . or ..)";
    if (v.find_first_of("/\\") != std::string::npos) return "must be a plain file name, without / or \\";
    if (v.find('\0') != std::string::npos || v.size() > 200) return "must be a plain file name of at most 200 bytes";
    return "";
  });
  c.seed = r.get("seed", c.seed);
  c.device = get_enum(r, "device", c.device, kDevices);
  if (c.device == Device::cuda) {
    const std::string why = kernels::device::unavailable();  // "" with a device, or the emulated one
    if (!why.empty()) r.fail("device", "cuda cannot run here: " + why + "; use device: cpu");
  }
  c.data = read_data(r.child("data"));
  c.model = read_model(r.child("model"), c.data);
  if (c.data.kind == DataKind::synthetic) check_synthetic(r, c);
  // text and enwik8 are read as bytes: every value 0..255 can occur, so the embedding needs them all
  // (found here, with the key's location, rather than as an out-of-range token mid-run).
  constexpr int64_t kByteVocab = 256;
  if (c.data.kind != DataKind::synthetic && c.model.vocab < kByteVocab)
    r.child("model").fail("vocab", std::string("data.kind: ") + name_of(c.data.kind) +
                                       " is read as bytes (tokens 0..255): must be >= " + std::to_string(kByteVocab) +
                                       ", got " + std::to_string(c.model.vocab));
  c.train = read_train(r.child("train"), c.data, c.device);
  check_cross_segment_option(r, c);
  c.eval = read_eval(r.child("eval"));
  c.sweep = read_sweep(r.child("sweep"));
  r.reject_unknown_keys();
  return c;
}

// ---- files, base: and --set -------------------------------------------------------------

// An alias may refer to a node that contains it (`x: &a [*a]`): yaml-cpp then builds a
// cyclic graph that every later walk would follow until the stack overflows. Refused here,
// with the location of the node that closes the cycle; so is nesting deeper than any config needs.
void check_acyclic(const YAML::Node& n, std::vector<YAML::Node>& ancestors, const std::string& file) {
  const auto where = [&](const YAML::Node& at) {
    return file + ":" + std::to_string(at.Mark().line + 1) + ":" + std::to_string(at.Mark().column + 1);
  };
  for (const YAML::Node& a : ancestors)
    MNEMO_CHECK(!a.is(n), where(n) << ": an alias refers to a node that contains it (a cycle)");
  MNEMO_CHECK(ancestors.size() < 64, where(n) << ": nested deeper than 64 levels");
  if (!n.IsMap() && !n.IsSequence()) return;
  ancestors.push_back(n);
  for (const auto& item : n) {
    if (n.IsMap()) {
      check_acyclic(item.first, ancestors, file);
      check_acyclic(item.second, ancestors, file);
    } else {
      check_acyclic(item, ancestors, file);
    }
  }
  ancestors.pop_back();
}

// yaml-cpp passes invalid UTF-8 and control characters (a lone carriage return, NUL, ESC)
// through into strings, and its emitter then writes them back differently, so a run
// folder's config.yaml would not read back as the config that made it (both found by
// tests/fuzz/fuzz_config). Refused at the first such line; tabs and CRLF line ends stay fine.
void check_text(const std::string& text, const std::string& where) {
  int64_t line = 1;
  for (size_t start = 0; start <= text.size(); ++line) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view row = std::string_view(text).substr(start, end - start);
    MNEMO_CHECK(json::valid_utf8(row), where << ":" << line << ": not valid UTF-8 text");
    for (size_t i = 0; i < row.size(); ++i) {
      const auto c = static_cast<unsigned char>(row[i]);
      const bool crlf = c == '\r' && i + 1 == row.size() && end < text.size();
      MNEMO_CHECK(c >= 0x20 || c == '\t' || crlf,
                  where << ":" << line << ":" << i + 1 << ": control character 0x" << std::hex << int(c) << std::dec
                        << " in the text (only tabs and line ends are allowed)");
      MNEMO_CHECK(c != 0x7f, where << ":" << line << ":" << i + 1 << ": control character 0x7f in the text");
    }
    start = end + 1;
  }
}

YAML::Node parse_file(const fs::path& file) {
  MNEMO_CHECK(!fs::is_directory(file), "[config] " << file.string() << " is a directory, not a config file");
  std::ifstream in(file, std::ios::binary);
  MNEMO_CHECK(in, "[config] cannot open " << file.string());
  // Bounded: a `base:` naming /dev/zero or a huge file must not read forever (a pipe, as
  // in `mnemo train <(...)`, is still fine).
  constexpr size_t kMaxConfigBytes = 16 << 20;
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, size_t(in.gcount()));
    MNEMO_CHECK(text.size() <= kMaxConfigBytes, "[config] " << file.string() << " is larger than 16 MiB: not a config file");
  }
  check_text(text, file.string());
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {  // its own message is only "bad file"
    MNEMO_FAIL(file.string() << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": malformed YAML: nested deeper than "
                             << e.depth() << " levels");
  } catch (const YAML::ParserException& e) {
    MNEMO_FAIL(file.string() << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": malformed YAML: " << e.msg);
  } catch (const YAML::Exception& e) {  // e.g. nesting too deep for the parser
    MNEMO_FAIL(file.string() << ": unreadable YAML: " << e.what());
  }
  std::vector<YAML::Node> ancestors;
  check_acyclic(root, ancestors, file.string());
  return root.IsNull() ? YAML::Node(YAML::NodeType::Map) : root;
}

// The value of `key` in `map` with its key node (which carries the key's location).
std::pair<YAML::Node, YAML::Node> find_entry(const YAML::Node& map, const std::string& key) {
  for (const auto& kv : map)
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return {kv.first, kv.second};
  return {YAML::Node(YAML::NodeType::Undefined), YAML::Node(YAML::NodeType::Undefined)};
}

// child over base, recursively for maps; lists and scalars are replaced whole.
YAML::Node merge(const YAML::Node& base, const YAML::Node& child) {
  if (!base.IsMap() || !child.IsMap()) return child;
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& kv : base) {
    auto [ckey, cval] = kv.first.IsScalar() ? find_entry(child, kv.first.Scalar()) : find_entry(child, "");
    if (cval.IsDefined()) out.force_insert(ckey, merge(kv.second, cval));
    else out.force_insert(kv.first, kv.second);
  }
  for (const auto& kv : child)
    if (!kv.first.IsScalar() || !find_entry(base, kv.first.Scalar()).second.IsDefined())
      out.force_insert(kv.first, kv.second);
  return out;
}

std::string chain_text(const std::vector<std::string>& chain, const std::string& last) {
  std::string out;
  for (const auto& c : chain) out += c + " -> ";
  return out + last;
}

YAML::Node load_tree(const fs::path& file, YamlSources& sources, std::vector<std::string>& chain) {
  const std::string canon = fs::weakly_canonical(file).string();
  MNEMO_CHECK(std::find(chain.begin(), chain.end(), canon) == chain.end(),
              "[config] base cycle: " << chain_text(chain, canon));
  YAML::Node root = parse_file(file);
  YamlReader top(root, file.string(), "", nullptr);  // rejects a top level that is not a map
  sources.add_file_tree(root, file.string());
  auto [bkey, bval] = find_entry(root, "base");
  if (!bval.IsDefined()) return root;
  MNEMO_CHECK(bval.IsScalar(), sources.where(bval, file.string()) << ": base: expected a file name");
  const fs::path base_file = (file.parent_path() / bval.Scalar()).lexically_normal();
  MNEMO_CHECK(fs::exists(base_file), sources.where(bval, file.string()) << ": base: cannot open " << base_file.string());
  chain.push_back(canon);
  YAML::Node base_root = load_tree(base_file, sources, chain);
  chain.pop_back();
  root.remove("base");
  return merge(base_root, root);
}

// Sets keys[i..] under `map`, creating maps on the way; new nodes are located at the flag.
void set_path(YAML::Node map, const std::vector<std::string>& keys, size_t i, const YAML::Node& value,
              const std::string& flag, YamlSources& sources) {
  auto [key, old] = find_entry(map, keys[i]);
  if (i + 1 == keys.size()) {
    if (old.IsDefined()) {
      map[keys[i]] = value;  // keeps the file's key node: its location still names the key
    } else {
      YAML::Node k(keys[i]);
      sources.add_flag(k, flag);
      map.force_insert(k, value);
    }
    return;
  }
  if (!old.IsDefined()) {
    YAML::Node k(keys[i]), sub(YAML::NodeType::Map);
    sources.add_flag(k, flag), sources.add_flag(sub, flag);
    map.force_insert(k, sub);
    return set_path(sub, keys, i + 1, value, flag, sources);
  }
  MNEMO_CHECK(old.IsMap(), flag << ": " << keys[i] << " is not a map, so it has no key " << keys[i + 1]);
  set_path(old, keys, i + 1, value, flag, sources);
}

void apply_override(YAML::Node root, std::string spec, YamlSources& sources) {
  if (spec.rfind("--set ", 0) == 0) spec = spec.substr(6);
  const std::string flag = "--set " + spec;
  const size_t eq = spec.find('=');
  MNEMO_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), flag << ": expected key.path=value");
  MNEMO_CHECK(json::valid_utf8(spec), flag << ": not valid UTF-8 text");
  for (const char ch : spec) {
    const auto c = static_cast<unsigned char>(ch);
    MNEMO_CHECK((c >= 0x20 || c == '\t') && c != 0x7f,
                flag << ": control character 0x" << std::hex << int(c) << std::dec << " in the flag");
  }
  std::vector<std::string> keys;
  for (size_t start = 0, dot; start <= eq; start = dot + 1) {
    dot = std::min(spec.find('.', start), eq);
    keys.push_back(spec.substr(start, dot - start));
    MNEMO_CHECK(!keys.back().empty(), flag << ": empty key in " << spec.substr(0, eq));
  }
  // train.memory_dropout's keys are memory names and globs, dots included ("xl.0", "xl.*"):
  // the rest of the path is one key there.
  if (keys.size() > 3 && keys[0] == "train" && keys[1] == "memory_dropout") {
    for (size_t i = 3; i < keys.size(); ++i) keys[2] += "." + keys[i];
    keys.resize(3);
  }
  YAML::Node value;
  try {
    value = YAML::Load(spec.substr(eq + 1));
  } catch (const YAML::DeepRecursion& e) {
    MNEMO_FAIL(flag << ": malformed YAML value: nested deeper than " << e.depth() << " levels");
  } catch (const YAML::ParserException& e) {
    MNEMO_FAIL(flag << ": malformed YAML value: " << e.msg);
  }
  std::vector<YAML::Node> ancestors;
  check_acyclic(value, ancestors, flag);
  sources.add_flag(value, flag);
  set_path(root, keys, 0, value, flag, sources);
}

// ---- writing ------------------------------------------------------------------------------

void emit_data(YAML::Emitter& e, const DataConfig& d) {
  e << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  put(e, "kind", name_of(d.kind)), put(e, "path", d.path), put(e, "task", name_of(d.task));
  put(e, "total_len", d.total_len);
  put(e, "segments", d.segments), put(e, "copy_len", d.copy_len), put(e, "num_pairs", d.num_pairs);
  if (!d.curriculum_segments.empty()) {
    e << YAML::Key << "curriculum" << YAML::Value << YAML::BeginMap;
    put(e, "segments", d.curriculum_segments), put(e, "steps", d.curriculum_steps);
    e << YAML::EndMap;
  }
  put(e, "depth", d.depth), put(e, "segment_len", d.segment_len), put(e, "batch_size", d.batch_size);
  put(e, "stateful", d.stateful), put(e, "random_crops", d.random_crops), put(e, "val_fraction", d.val_fraction);
  e << YAML::EndMap;
}

void emit_model(YAML::Emitter& e, const ExperimentConfig& cfg) {
  const ModelConfig& m = cfg.model;
  e << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  put(e, "arch", m.arch), put(e, "dim", m.dim), put(e, "depth", m.depth), put(e, "heads", m.heads);
  put(e, "vocab", m.vocab);
  e << YAML::Key << m.arch << YAML::Value;
  options_or_defaults(cfg)->emit(e);
  e << YAML::EndMap;
}

void emit_train(YAML::Emitter& e, const TrainConfig& t) {
  const OptimizerConfig& o = t.optimizer;
  e << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  put(e, "steps", t.steps), put(e, "bptt", name_of(t.bptt)), put(e, "window", t.window);
  put(e, "replay_recompute", t.replay_recompute);
  if (t.replay_recompute) put(e, "replay_snapshots", t.replay_snapshots);
  put(e, "grad_accum", t.grad_accum), put(e, "clip", t.clip);
  e << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap;
  put(e, "type", name_of(o.type)), put(e, "lr", o.lr), put(e, "betas", o.betas);
  put(e, "weight_decay", o.weight_decay), put(e, "eps", o.eps), put(e, "no_decay", o.no_decay);
  put(e, "step_every", name_of(o.step_every));
  e << YAML::EndMap << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap;
  put(e, "kind", name_of(t.schedule.kind)), put(e, "warmup_steps", t.schedule.warmup_steps);
  put(e, "min_lr", t.schedule.min_lr);
  e << YAML::EndMap << YAML::Key << "memory_dropout" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, p] : t.memory_dropout) put(e, name.c_str(), p);
  e << YAML::EndMap;
  put(e, "log_every", t.log_every), put(e, "eval_every", t.eval_every);
  put(e, "checkpoint_every", t.checkpoint_every), put(e, "threads", t.threads);
  put(e, "on_nonfinite", name_of(t.on_nonfinite));
  if (t.on_nonfinite == OnNonFinite::skip) put(e, "max_skips", t.max_skips);
  put(e, "precision", name_of(t.precision));
  e << YAML::EndMap;
}

void emit_eval(YAML::Emitter& e, const EvalConfig& v) {
  e << YAML::Key << "eval" << YAML::Value << YAML::BeginMap;
  put(e, "batches", v.batches), put(e, "generate_every", v.generate_every);
  put(e, "generate_len", v.generate_len), put(e, "temperature", v.temperature), put(e, "top_k", v.top_k);
  e << YAML::EndMap;
}

}  // namespace

ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  auto sources = std::make_shared<YamlSources>();
  std::vector<std::string> chain;
  YAML::Node root = load_tree(path, *sources, chain);
  for (const auto& o : overrides) apply_override(root, o, *sources);
  return read_experiment(YamlReader(root, path, "", sources), fs::path(path).stem().string());
}

std::string to_yaml(const ExperimentConfig& cfg) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  put(e, "name", cfg.name), put(e, "seed", cfg.seed), put(e, "device", kDevices.at(size_t(cfg.device)));
  emit_data(e, cfg.data), emit_model(e, cfg), emit_train(e, cfg.train), emit_eval(e, cfg.eval);
  if (!cfg.sweep.empty()) {
    e << YAML::Key << "sweep" << YAML::Value << YAML::BeginMap;
    for (const SweepAxis& a : cfg.sweep) {
      e << YAML::Key << a.key << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (size_t i = 0; i < a.values.size(); ++i) {
        if (i >= a.overrides.size() || a.overrides[i].empty()) {
          e << a.values[i];
          continue;
        }
        e << YAML::BeginMap << YAML::Key << a.values[i] << YAML::Value << YAML::BeginMap;
        for (const auto& [k, v] : a.overrides[i]) e << YAML::Key << k << YAML::Value << v;
        e << YAML::EndMap << YAML::EndMap;
      }
      e << YAML::EndSeq;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
  MNEMO_CHECK(e.good(), "[config] to_yaml: " << e.GetLastError());
  return std::string(e.c_str()) + "\n";
}

const char* name_of(DataKind v) { return kDataKinds.at(size_t(v)); }
const char* name_of(data::Task v) { return kTaskKinds.at(size_t(v)); }
const char* name_of(OptimizerKind v) { return kOptimizerKinds.at(size_t(v)); }
const char* name_of(StepEvery v) { return kStepEvery.at(size_t(v)); }
const char* name_of(ScheduleKind v) { return kScheduleKinds.at(size_t(v)); }
const char* name_of(BpttMode v) { return kBpttKinds.at(size_t(v)); }
const char* name_of(OnNonFinite v) { return kOnNonFinite.at(size_t(v)); }
const char* name_of(Precision v) { return kPrecisions.at(size_t(v)); }

bool ModelConfig::operator==(const ModelConfig& o) const {
  const auto text = [](const ArchOptions& a) {
    YAML::Emitter e;
    a.emit(e);
    return std::string(e.c_str());
  };
  return arch == o.arch && dim == o.dim && depth == o.depth && heads == o.heads && vocab == o.vocab &&
         (options == o.options || (options && o.options && text(*options) == text(*o.options)));
}

AdamWConfig adamw_config(const OptimizerConfig& opt) {
  AdamWConfig c;
  c.lr = opt.lr, c.beta1 = opt.betas.at(0), c.beta2 = opt.betas.at(1);
  c.eps = opt.eps, c.weight_decay = opt.weight_decay, c.no_decay = opt.no_decay;
  return c;
}

Schedule schedule_of(const TrainConfig& train, int64_t segments) {
  Schedule s;
  s.kind = train.schedule.kind == ScheduleKind::warmup_cosine ? Schedule::Kind::warmup_cosine : Schedule::Kind::constant;
  s.base_lr = train.optimizer.lr;
  s.warmup_steps = train.schedule.warmup_steps;
  s.total_steps = train.optimizer.step_every == StepEvery::segment ? train.steps * segments : train.steps;
  s.min_lr = train.schedule.min_lr;
  return s;
}

}  // namespace mnemo::experiments
