// Tests of experiments/config: defaults, every kind of config error with its message and
// location, base: inheritance and --set precedence, typed architecture options, and the
// to_yaml -> load round trip (every shipped config file, every option written).
// Each test writes its YAML files into its own fresh temporary folder.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "architectures/brt.h"
#include "architectures/compressive.h"
#include "architectures/memxl.h"
#include "architectures/rmt.h"
#include "architectures/transformer.h"
#include "experiments/config.h"
#include "experiments/models.h"
#include "experiments/sweep.h"
#include "layers/module.h"
#include "tests/support/contains.h"
#include "tests/support/error_of.h"

namespace fs = std::filesystem;
using namespace mnemo::experiments;
using mnemo::test::contains;

namespace {

// A fresh folder per test, removed afterwards; files are written into it by name.
struct TempDir {
  fs::path dir;
  TempDir() {
    static std::atomic<int> counter{0};
    auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    dir = fs::temp_directory_path() /
          ("mnemo_config_" + std::to_string(stamp) + "_" + std::to_string(counter++));
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

using mnemo::test::error_of;

// The option names an architecture's config struct lists (its visit_options).
template <class Config, class... Extra>
std::vector<std::string> option_names(Extra... extra) {
  std::vector<std::string> out;
  Config c;
  Config::visit_options(c, [&](const char* key, auto&) { out.push_back(key); }, extra...);
  return out;
}

std::vector<std::string> option_names_of(const std::string& arch) {
  using namespace mnemo::arch;
  if (arch == "rmt") return option_names<RmtConfig>();
  if (arch == "brt") return option_names<BrtConfig>();
  if (arch == "compressive") return option_names<CompressiveConfig>();
  if (arch == "memxl") return option_names<MemXLConfig>();
  return option_names<TransformerConfig>(arch == "transformer_xl");
}

std::vector<std::string> shipped_configs() {
  std::vector<std::string> out;
  for (const char* folder : {"/experiments/configs", "/experiments/ablations", "/bench/configs"})
    for (const auto& e : fs::directory_iterator(std::string(MNEMO_SOURCE_DIR) + folder))
      if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(defaults_from_an_empty_file) {
  TempDir t;
  ExperimentConfig c = load_config(t.write("tiny_run.yaml", ""));
  BOOST_TEST(c.name == "tiny_run");  // the file's stem
  BOOST_TEST(c.seed == 1234u);
  BOOST_TEST((c.data == DataConfig{}));
  BOOST_TEST(c.model.arch == "transformer");
  BOOST_TEST(c.model.vocab == 256);
  BOOST_TEST((c.train == TrainConfig{}));
  BOOST_TEST((c.eval == EvalConfig{}));
  BOOST_TEST(c.model.options != nullptr);  // the transformer's defaults, resolved
}

BOOST_AUTO_TEST_CASE(reads_every_section) {
  TempDir t;
  ExperimentConfig c = load_config(t.write("x.yaml", R"(name: xl
seed: 7
data: {kind: text, path: corpus.txt, segment_len: 32, batch_size: 4, segments: 8}
model:
  arch: transformer_xl
  dim: 64
  transformer_xl: {mem_len: 64}
  rmt: {num_mem: 4}   # another architecture's block: kept for sweeps, ignored
train:
  steps: 50
  bptt: replay
  window: 2
  optimizer: {lr: 3.0e-4, betas: [0.9, 0.98], no_decay: ["*.b", "*.ln_*"]}
  schedule: {kind: warmup_cosine, warmup_steps: 5, min_lr: 1.0e-5}
  memory_dropout: {xl: 0.25}
eval: {top_k: 5, temperature: 0.8}
)"));
  BOOST_TEST(c.name == "xl");
  BOOST_TEST(c.seed == 7u);
  BOOST_TEST((c.data.kind == DataKind::text));
  BOOST_TEST(c.data.segments == 8);
  BOOST_TEST(c.model.dim == 64);
  BOOST_TEST((c.train.bptt == BpttMode::replay));
  BOOST_TEST(c.train.window == 2);  // replay truncated every 2 segments
  BOOST_TEST(c.train.optimizer.betas[1] == 0.98);
  BOOST_TEST(c.train.optimizer.no_decay.size() == 2u);
  BOOST_TEST(c.train.memory_dropout.at("xl") == 0.25);
  BOOST_TEST(c.eval.top_k == 5);
  BOOST_TEST(options_as<mnemo::arch::TransformerConfig>(c).mem_len == 64);
  BOOST_TEST(options_as<mnemo::arch::TransformerConfig>(c).ff_mult == 4);
  auto adamw = adamw_config(c.train.optimizer);
  BOOST_TEST(adamw.beta2 == 0.98);
  BOOST_TEST(schedule_of(c.train).total_steps == 50);
}

BOOST_AUTO_TEST_CASE(unknown_key_names_location_and_suggestion) {
  TempDir t;
  std::string f = t.write("a.yaml", "train:\n  steps: 10\n  grad_acum: 2\n");
  std::string msg = error_of([&] { load_config(f); });
  BOOST_TEST(contains(msg, f + ":3:3: train.grad_acum: unknown key (did you mean grad_accum?)"));
  // far from every known key: no suggestion
  f = t.write("b.yaml", "model: {arch: rmt, zzzzzz: 1}\n");
  msg = error_of([&] { load_config(f); });
  BOOST_TEST(contains(msg, f + ":1:20: model.zzzzzz: unknown key"));
  BOOST_TEST(msg.find("did you mean") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(wrong_type) {
  TempDir t;
  std::string f = t.write("a.yaml", "train:\n  steps: many\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), f + ":2:10: train.steps: expected an integer, got many"));
  f = t.write("b.yaml", "data: {stateful: maybe}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "data.stateful: expected a boolean"));
  f = t.write("c.yaml", "train: {optimizer: {betas: [0.9, x]}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), ":1:34: train.optimizer.betas[1]: expected a number, got x"));
  f = t.write("d.yaml", "model: 3\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), f + ":1:8: model: expected a map, got 3"));
}

BOOST_AUTO_TEST_CASE(out_of_range_values) {
  TempDir t;
  std::string f = t.write("a.yaml", "model:\n  dim: -3\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), f + ":2:8: model.dim: must be in [1, 65536], got -3"));
  f = t.write("b.yaml", "train: {bptt: ful}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }),
                      "train.bptt: must be one of truncated, full, replay (did you mean full?), got ful"));
  f = t.write("c.yaml", "train: {memory_dropout: {xl: 1.5}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "train.memory_dropout.xl: must be in [0, 1], got 1.5"));
  f = t.write("d.yaml", "model: {dim: 10, heads: 4}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "model.heads: must divide model.dim = 10, got 4"));
  f = t.write("e.yaml", "data: {kind: text}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "data.path: required when data.kind is text"));
}

BOOST_AUTO_TEST_CASE(curriculum_rules) {
  TempDir t;
  ExperimentConfig c =
      load_config(t.write("ok.yaml", "data: {segments: 6, curriculum: {segments: [2, 4], steps: 300}}\n"));
  BOOST_TEST((c.data.curriculum_segments == std::vector<int64_t>{2, 4}));
  BOOST_TEST(c.data.curriculum_steps == 300);
  BOOST_TEST((load_config(t.write("back.yaml", to_yaml(c))) == c));
  std::string f = t.write("a.yaml", "data: {segments: 4, curriculum: {segments: [2, 6], steps: 10}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }),
                      "data.curriculum.segments: stages must not exceed data.segments = 4, got 6"));
  f = t.write("b.yaml", "data: {curriculum: {segments: [2]}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "data.curriculum.steps: required with curriculum.segments"));
  f = t.write("c.yaml", "data: {kind: text, path: x.txt, curriculum: {segments: [2], steps: 5}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "a curriculum needs data.kind: synthetic"));
  f = t.write("d.yaml", "data: {curriculum: {segments: [2], steps: 5, stpes: 3}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "data.curriculum.stpes: unknown key (did you mean steps?)"));
  f = t.write("e.yaml", "data: {curriculum: {segments: [2], steps: 5}}\ntrain: {optimizer: {step_every: segment}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "cannot follow a data.curriculum"));
  f = t.write("g.yaml", "train: {bptt: full, replay_recompute: true}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "train.replay_recompute: needs bptt: replay, got full"));
  f = t.write("h.yaml", "train: {bptt: replay, replay_snapshots: 3}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "train.replay_snapshots: needs replay_recompute: true"));
  f = t.write("i.yaml", "data: {segments: 4}\ntrain: {bptt: replay, replay_recompute: true, replay_snapshots: 1}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }),
                      "train.replay_snapshots: replaying 4 segments needs at least 2, got 1"));
  // replay without a window cuts nothing: the window spans data.segments
  BOOST_TEST(load_config(t.write("j.yaml", "data: {segments: 6}\ntrain: {bptt: replay}\n")).train.window == 6);
  BOOST_TEST(load_config(t.write("k.yaml", "data: {segments: 6}\ntrain: {bptt: replay, window: 3}\n")).train.window == 3);
  f = t.write("l.yaml", "data: {segments: 6}\ntrain: {bptt: replay, window: 1}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "l.yaml:2:"));
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "train.window: bptt: replay with window: 1 carries no gradient"));
  BOOST_TEST(load_config(t.write("m.yaml", "data: {segments: 1}\ntrain: {bptt: replay, window: 1}\n")).train.window == 1);
  // per-segment updates accumulate batches that start fresh; stateful streams are refused at the key
  f = t.write("n.yaml", "data: {kind: text, path: x.txt}\ntrain: {grad_accum: 2, optimizer: {step_every: segment}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }),
                      "n.yaml:2:21: train.grad_accum: optimizer.step_every: segment with grad_accum > 1 needs batches"));
  BOOST_TEST(load_config(t.write("o.yaml", "data: {kind: text, path: x.txt, stateful: false, random_crops: true}\n"
                                           "train: {grad_accum: 2, optimizer: {step_every: segment}}\n"))
                 .train.grad_accum == 2);
  BOOST_TEST(load_config(t.write("p.yaml", "data: {kind: synthetic}\ntrain: {grad_accum: 3, optimizer: {step_every: segment}}\n"))
                 .train.grad_accum == 3);
  f = t.write("q.yaml", "data: {kind: synthetic}\ntrain: {bptt: full, grad_accum: 3, optimizer: {step_every: segment}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), "optimizer.step_every: segment needs bptt: truncated and window: 1"));
}

BOOST_AUTO_TEST_CASE(malformed_yaml_and_missing_file) {
  TempDir t;
  std::string f = t.write("a.yaml", "train:\n  steps: [1, 2\nmodel: {}\n");
  std::string msg = error_of([&] { load_config(f); });
  BOOST_TEST(contains(msg, f + ":"));
  BOOST_TEST(contains(msg, "malformed YAML"));
  f = t.write("dup.yaml", "seed: 1\nseed: 2\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), f + ":2:1: seed: duplicate key"));
  std::string missing = (t.dir / "nope.yaml").string();
  BOOST_TEST(contains(error_of([&] { load_config(missing); }), "cannot open " + missing));
}

BOOST_AUTO_TEST_CASE(set_flags) {
  TempDir t;
  std::string f = t.write("a.yaml", "train: {steps: 10}\n");
  ExperimentConfig c = load_config(f, {"train.steps=20", "--set train.optimizer.betas=[0.8, 0.9]", "model.arch=transformer_xl"});
  BOOST_TEST(c.train.steps == 20);
  BOOST_TEST(c.train.optimizer.betas[0] == 0.8);
  BOOST_TEST(c.model.arch == "transformer_xl");
  std::string msg = error_of([&] { load_config(f, {"train.stepz=5"}); });
  BOOST_TEST(contains(msg, "--set train.stepz=5: train.stepz: unknown key (did you mean steps?)"));
  msg = error_of([&] { load_config(f, {"trian.steps=5"}); });
  BOOST_TEST(contains(msg, "--set trian.steps=5: trian: unknown key (did you mean train?)"));
  msg = error_of([&] { load_config(f, {"train.steps=-1"}); });
  BOOST_TEST(contains(msg, "--set train.steps=-1: train.steps: must be > 0, got -1"));
  BOOST_TEST(contains(error_of([&] { load_config(f, {"train.steps.x=1"}); }), "--set train.steps.x=1: steps is not a map"));
  BOOST_TEST(contains(error_of([&] { load_config(f, {"train.steps"}); }), "expected key.path=value"));
  // memory names hold dots and globs: the rest of the path is the name
  c = load_config(f, {"train.memory_dropout.xl.*=0.1", "--set train.memory_dropout.state.0=0.2",
                      "train.memory_dropout.mem=0.3"});
  BOOST_TEST(c.train.memory_dropout.size() == 3u);
  BOOST_TEST(c.train.memory_dropout.at("xl.*") == 0.1);
  BOOST_TEST(c.train.memory_dropout.at("state.0") == 0.2);
  BOOST_TEST(c.train.memory_dropout.at("mem") == 0.3);
  BOOST_TEST(contains(error_of([&] { load_config(f, {"train.memory_dropout.xl.*=2"}); }),
                      "train.memory_dropout.xl.*: must be in [0, 1], got 2"));
}

BOOST_AUTO_TEST_CASE(base_inheritance_and_precedence) {
  TempDir t;
  fs::create_directories(t.dir / "sub");
  t.write("base.yaml", "seed: 1\ntrain: {steps: 100, clip: 0.5, optimizer: {lr: 0.01, weight_decay: 0.1}}\n");
  std::string f = t.write("sub/child.yaml", "base: ../base.yaml\ntrain: {steps: 200, optimizer: {lr: 0.02}}\n");
  ExperimentConfig c = load_config(f);
  BOOST_TEST(c.name == "child");
  BOOST_TEST(c.seed == 1u);                            // base only
  BOOST_TEST(c.train.clip == 0.5);                     // base only, nested
  BOOST_TEST(c.train.steps == 200);                    // child over base
  BOOST_TEST(c.train.optimizer.lr == 0.02);            // child over base, two levels down
  BOOST_TEST(c.train.optimizer.weight_decay == 0.1);   // sibling kept from base
  c = load_config(f, {"train.steps=300", "seed=9"});
  BOOST_TEST(c.train.steps == 300);                    // --set over child
  BOOST_TEST(c.seed == 9u);                            // --set over base
  // errors inside the base name the base file
  t.write("base.yaml", "train: {stepz: 1}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), (t.dir / "base.yaml").string() + ":1:9: train.stepz"));
}

BOOST_AUTO_TEST_CASE(base_cycle_and_missing_base) {
  TempDir t;
  t.write("a.yaml", "base: b.yaml\n");
  std::string b = t.write("b.yaml", "base: a.yaml\n");
  BOOST_TEST(contains(error_of([&] { load_config(b); }), "base cycle"));
  std::string self = t.write("self.yaml", "base: self.yaml\n");
  BOOST_TEST(contains(error_of([&] { load_config(self); }), "base cycle"));
  std::string m = t.write("m.yaml", "base: gone.yaml\n");
  BOOST_TEST(contains(error_of([&] { load_config(m); }), m + ":1:7: base: cannot open"));
}

BOOST_AUTO_TEST_CASE(round_trip) {
  TempDir t;
  ExperimentConfig c = load_config(t.write("a.yaml", R"(name: "yes"
data: {kind: synthetic, task: needle, depth: 0.3, stateful: false, random_crops: true}
model: {arch: compressive, compressive: {mem_len: 512, memory_layers: [2]}}
train:
  clip: 0.1
  optimizer: {type: adamw, lr: 0.1, no_decay: ["*.b"]}
  memory_dropout: {mem: 0.1, cmem: 0.2}
eval: {generate_every: 100}
)"));
  std::string text = to_yaml(c);
  ExperimentConfig back = load_config(t.write("resolved.yaml", text));
  BOOST_TEST((back == c));
  BOOST_TEST(to_yaml(back) == text);
  BOOST_TEST(back.name == "yes");
  BOOST_TEST(options_as<mnemo::arch::CompressiveConfig>(back).mem_len == 512);
  BOOST_TEST(options_as<mnemo::arch::CompressiveConfig>(back).cmem_len == 128);  // resolved: mem_len / 4
  BOOST_TEST(to_yaml(load_config(t.write("d.yaml", ""))) == to_yaml(load_config(t.write("d2.yaml", to_yaml(load_config(t.write("d.yaml", "")))))));
}

BOOST_AUTO_TEST_CASE(every_shipped_config_round_trips_whole) {
  // load -> to_yaml -> load is the same config and the same text, for every file we ship; the
  // written model.<arch> holds every option of the architecture, so a run folder's config.yaml
  // never falls back on a default (which may change) when it is read again.
  TempDir t;
  const std::vector<std::string> files = shipped_configs();
  BOOST_TEST(files.size() >= 20u);
  for (const std::string& file : files) {
    BOOST_TEST_CONTEXT(file) {
      const ExperimentConfig c = load_config(file);
      const std::string text = to_yaml(c);
      const ExperimentConfig back = load_config(t.write("resolved.yaml", text));
      BOOST_TEST((back == c));
      BOOST_TEST(to_yaml(back) == text);
      const YAML::Node written = YAML::Load(text)["model"][c.model.arch];
      BOOST_TEST(written.IsMap());
      for (const std::string& key : option_names_of(c.model.arch)) BOOST_TEST(written[key].IsDefined(), key);
      BOOST_TEST(written.size() == option_names_of(c.model.arch).size());
    }
  }
}

BOOST_AUTO_TEST_CASE(every_point_of_every_shipped_sweep_loads_and_builds) {
  // A sweep point is the file plus its overrides: a per-point override that an architecture
  // refuses (a memory-dropout name the memoryless transformer lacks) must fail here, not an
  // hour into the sweep.
  int64_t points = 0;
  for (const std::string& file : shipped_configs()) {
    const ExperimentConfig c = load_config(file);
    for (const SweepPoint& p : expand_sweep(c.sweep)) {
      BOOST_TEST_CONTEXT(file << " " << p.name) {
        const ExperimentConfig at = load_config(file, p.overrides);
        BOOST_TEST(mnemo::nn::param_count(*build_model(at)) > 0);
        ++points;
      }
    }
  }
  BOOST_TEST(points >= 25);  // quickstart's 6 and the ablations' 20
}

BOOST_AUTO_TEST_CASE(written_config_pins_derived_defaults) {
  // A run folder rebuilt after a default changes still builds the model it trained: the
  // resolved values are in the file, so reading it back with another segment length (what a
  // derived default would follow) keeps them; only a fresh config follows the new value.
  TempDir t;
  const std::string file = t.write("r.yaml", R"(data: {segment_len: 16}
model: {arch: rmt, dim: 32, heads: 4, rmt: {num_memory_tokens: 2}}
)");
  const ExperimentConfig c = load_config(file);
  const mnemo::arch::RmtConfig rc = options_as<mnemo::arch::RmtConfig>(c);
  BOOST_TEST(rc.dim_head == 8);      // dim / heads
  BOOST_TEST(rc.xl_mem_len == 16);   // data.segment_len
  const std::string run_config = t.write("run.yaml", to_yaml(c));
  const ExperimentConfig later = load_config(run_config, {"data.segment_len=32", "model.heads=2"});
  BOOST_TEST(options_as<mnemo::arch::RmtConfig>(later).xl_mem_len == 16);
  BOOST_TEST(options_as<mnemo::arch::RmtConfig>(later).dim_head == 8);
  const ExperimentConfig fresh = load_config(file, {"data.segment_len=32", "model.heads=2"});
  BOOST_TEST(options_as<mnemo::arch::RmtConfig>(fresh).xl_mem_len == 32);
  BOOST_TEST(options_as<mnemo::arch::RmtConfig>(fresh).dim_head == 16);
  // the same weights fit: the model rebuilt from the written file has every parameter shape
  const auto a = build_model(c), b = build_model(load_config(run_config));
  const auto pa = mnemo::nn::named_params(*a), pb = mnemo::nn::named_params(*b);
  BOOST_TEST(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size() && i < pb.size(); ++i) {
    BOOST_TEST(pa[i].first == pb[i].first);
    BOOST_TEST((pa[i].second->value.shape() == pb[i].second->value.shape()));
  }
}

BOOST_AUTO_TEST_CASE(arch_options_are_checked_at_load_with_their_location) {
  TempDir t;
  const std::string f = t.write("o.yaml", R"(data: {segment_len: 16}
model:
  arch: brt
  dim: 32
  heads: 4
  brt:
    block_width: 5
)");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), f + ":7:18: model.brt.block_width: must divide data.segment_len = 16, got 5"));
  const std::string g = t.write("p.yaml", "model: {arch: compressive, compressive: {cmem_ratio: 0}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(g); }), g + ":1:54: model.compressive.cmem_ratio: must be >= 1, got 0"));
  BOOST_TEST(contains(error_of([&] { load_config(g, {"model.arch=memxl"}); }), ""));  // other blocks are ignored
  const std::string h = t.write("q.yaml", "model: {arch: memxl, memxl: {lmem_len: yes}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(h); }), "model.memxl.lmem_len: expected an integer"));
  // compressive's parity-dependent defaults resolve at load and are written out
  const ExperimentConfig p = load_config(g, {"model.compressive.cmem_ratio=2", "model.compressive.reference_parity=true"});
  BOOST_TEST(!options_as<mnemo::arch::CompressiveConfig>(p).final_norm.value());
  BOOST_TEST(contains(to_yaml(p), "gate_bias_init: 0"));
}

BOOST_AUTO_TEST_CASE(options_that_train_across_segments_need_a_tape_of_two) {
  // compressor_task_grad and MemXL's detach_hiddens: false act only through gradients that
  // cross a segment boundary on one tape: refused at their key where every tape holds one
  // segment, accepted where a tape holds two or more.
  TempDir t;
  const std::string f = t.write("c.yaml", R"(data: {segments: 4}
model:
  arch: compressive
  compressive:
    compressor_task_grad: true
train: {bptt: truncated, window: 1}
)");
  const std::string e = error_of([&] { load_config(f); });
  BOOST_TEST(contains(e, f + ":5:"), e);
  BOOST_TEST(contains(e, "model.compressive.compressor_task_grad: acts only through gradients that cross segments"), e);
  BOOST_TEST(contains(e, "train.bptt: truncated, train.window: 1, data.segments: 4"), e);
  BOOST_TEST(load_config(f, {"train.window=2"}).train.window == 2);
  BOOST_TEST((load_config(f, {"train.bptt=full"}).train.bptt == BpttMode::full));
  BOOST_TEST(contains(error_of([&] { load_config(f, {"train.bptt=full", "data.segments=1"}); }), "compressor_task_grad"));
  BOOST_TEST(load_config(f, {"model.compressive.compressor_task_grad=false"}).model.arch == "compressive");
  const std::string g = t.write("m.yaml", "data: {segments: 3}\nmodel: {arch: memxl, memxl: {detach_hiddens: false}}\n");
  BOOST_TEST(contains(error_of([&] { load_config(g); }), "model.memxl.detach_hiddens: acts only through gradients"));
  BOOST_TEST(load_config(g, {"train.bptt=replay"}).train.window == 3);
}

BOOST_AUTO_TEST_CASE(modes_are_enums_and_unsupported_ones_are_refused_at_load) {
  TempDir t;
  const std::string f = t.write("m.yaml", "train:\n  optimizer: {type: sgd}\n");
  BOOST_TEST(contains(error_of([&] { load_config(f); }), f + ":2:21: train.optimizer.type: sgd is not a training optimizer"));
  const ExperimentConfig c = load_config(t.write("n.yaml", R"(data: {kind: synthetic, task: needle}
train: {bptt: full, optimizer: {step_every: batch}, schedule: {kind: warmup_cosine, warmup_steps: 2}}
)"));
  BOOST_TEST((c.data.task == mnemo::data::Task::needle));
  BOOST_TEST((c.train.bptt == BpttMode::full));
  BOOST_TEST((c.train.schedule.kind == ScheduleKind::warmup_cosine));
  BOOST_TEST(contains(to_yaml(c), "task: needle"));
  BOOST_TEST(contains(to_yaml(c), "bptt: full"));
  BOOST_TEST(contains(error_of([&] { load_config(f, {"train.optimizer.type=adam"}); }),
                      "train.optimizer.type: must be one of adamw (did you mean adamw?), got adam"));
}

BOOST_AUTO_TEST_CASE(hostile_inputs_are_refused_with_their_location) {
  TempDir t;
  const auto refused = [&](const std::string& name, const std::string& yaml, const std::string& what) {
    const std::string f = t.write(name, yaml);
    return contains(error_of([&] { load_config(f); }), what);
  };
  // an alias that contains itself would recurse until the stack overflows
  BOOST_TEST(refused("alias.yaml", "x: &a [*a]\n", "alias.yaml:1:4: an alias refers to a node that contains it"));
  BOOST_TEST(refused("alias2.yaml", "seed: 1\nsweep: &a {seed: [*a]}\n", "a cycle"));
  BOOST_TEST(contains(error_of([&] { load_config(t.write("ok.yaml", ""), {"sweep=&a [*a]"}); }), "a cycle"));
  BOOST_TEST(contains(error_of([&] { load_config(t.dir.string()); }), "is a directory, not a config file"));
  // non-finite numbers, oversized and overflowing sizes
  BOOST_TEST(refused("nan.yaml", "train: {optimizer: {lr: .nan}}\n", "train.optimizer.lr: must be a finite number, got .nan"));
  BOOST_TEST(refused("inf.yaml", "train: {clip: .inf}\n", "train.clip: must be a finite number"));
  BOOST_TEST(refused("big.yaml", "model: {dim: 4611686018427387904}\n", "model.dim: must be in [1, 65536]"));
  BOOST_TEST(refused("tok.yaml", "data: {batch_size: 65536, segments: 65536, segment_len: 65536}\n",
                     "tokens per batch is more than 2^31"));
  // the run name is a folder under runs/
  BOOST_TEST(refused("up.yaml", "name: ../..\n", "name: must be a plain file name, without / or \\"));
  BOOST_TEST(refused("dot.yaml", "name: '.'\n", "name: must be a plain file name (not empty, . or ..)"));
  // synthetic tasks: sizes that do not fit the sequence, a vocabulary without the task's letters
  BOOST_TEST(refused("cl.yaml", "data: {copy_len: 200}\n", "cl.yaml:1:18: data.copy_len: [data] copy: content_len 200"));
  BOOST_TEST(refused("tl.yaml", "data: {total_len: 7}\n", "data.total_len: must equal data.segments * data.segment_len"));
  BOOST_TEST(refused("v.yaml", "model: {vocab: 100}\n", "model.vocab: synthetic tasks use byte values up to 124"));
  BOOST_TEST(refused("v.yaml", "model: {vocab: 124}\n", "v.yaml:1:16: model.vocab: synthetic tasks use byte values up to 124: must be > 124, got 124"));
  // an option whose value would silently degenerate
  BOOST_TEST(refused("cr.yaml", "model: {arch: compressive, compressive: {cmem_ratio: 1000}}\n",
                     "model.compressive.cmem_ratio: must be <= mem_len = 64"));
}

BOOST_AUTO_TEST_CASE(reader_validators) {
  BOOST_TEST(edit_distance("mem_len", "mem_lenn") == 1u);
  BOOST_TEST(edit_distance("lr", "rl") == 1u);
  BOOST_TEST(closest("stpes", {"steps", "window"}) == "steps");
  YamlReader r(YAML::Load("a: 3\nb: [1, -2]\n"), "mem.yaml", "model.x");
  BOOST_TEST(r.get("a", int64_t(0), in_range(1, 5)) == 3);
  std::string msg = error_of([&] { r.get("b", std::vector<int64_t>{}, positive); });
  BOOST_TEST(contains(msg, "mem.yaml:2:8: model.x.b[1]: must be > 0, got -2"));
  r.get("b", std::vector<int64_t>{});
  BOOST_TEST(error_of([&] { r.reject_unknown_keys(); }).empty());
}

BOOST_AUTO_TEST_SUITE_END()
