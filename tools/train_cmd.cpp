// The run commands. A TARGET is an experiment file (YAML) or a run folder (its config.yaml
// and checkpoints/last.safetensors); --set overrides apply to a file's config.
#include "tools/train_cmd.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>

#include "common/progress.h"
#include "experiments/distributed.h"
#include "mnemo_config.h"
#if MNEMO_WITH_MPI
#include "experiments/distributed_mpi.h"
#endif
#include "experiments/checkpoint.h"
#include "experiments/evaluate.h"
#include "experiments/generate.h"
#include "experiments/models.h"
#include "experiments/on_device.h"
#include "experiments/run.h"
#include "experiments/run_data.h"
#include "experiments/stream_report.h"

namespace mnemo::tools {
namespace {

namespace fs = std::filesystem;
using namespace mnemo::experiments;

struct Target {
  ExperimentConfig cfg;
  std::string weights;  // a checkpoint, or empty for freshly initialised weights
};

Target resolve(const std::string& target, const std::vector<std::string>& sets, const std::string& weights) {
  Target t;
  if (fs::is_directory(target)) {
    MNEMO_CHECK(sets.empty(), "--set applies to experiment files; '" << target << "' is a run folder");
    t.cfg = load_run_config(target);
    t.weights = checkpoint_path(target);
    MNEMO_CHECK(fs::exists(t.weights) || !weights.empty(), "[run] '" << target << "' has no checkpoint yet");
  } else {
    t.cfg = load_config(target, sets);
  }
  if (!weights.empty()) t.weights = weights;
  return t;
}

std::unique_ptr<arch::SegmentModel> load_model(const Target& t) {
  auto model = build_model(t.cfg);
  if (!t.weights.empty()) {
    restore_weights(*model, load_checkpoint(t.weights).weights);
  } else {
    std::cerr << "mnemo: no weights given: using freshly initialised ones (seed " << t.cfg.seed << ")\n";
  }
  move_to(*model, t.cfg.device);  // eval and generate run on the config's device
  nn::eval(*model);
  return model;
}

// ---- train ----

struct TrainArgs {
  std::string config, out, resume;
  std::vector<std::string> sets;
  int64_t stop_after = 0;
  bool quiet = false;
};

// What --set may change in a run being resumed: how long it trains and how it treats
// divergence. Anything else would make the resumed run differ from the one checkpointed.
bool settable_on_resume(const std::string& set) {
  std::string s = set.starts_with("--set ") ? set.substr(6) : set;
  for (const char* key : {"train.steps=", "train.on_nonfinite=", "train.max_skips="})
    if (s.starts_with(key)) return true;
  return false;
}

// The config and options of `mnemo train` (a file, or a run folder to resume).
void train_setup(const TrainArgs& a, ExperimentConfig& cfg, RunOptions& o) {
  MNEMO_CHECK(a.config.empty() != a.resume.empty(), "give an experiment file or --resume RUN, not both");
  o = RunOptions{.stop_after = a.stop_after, .progress = !a.quiet};
  if (!a.resume.empty()) {
    for (const std::string& set : a.sets)
      MNEMO_CHECK(settable_on_resume(set), "--set " << set << ": a run being resumed can only change train.steps, "
                                                         "train.on_nonfinite and train.max_skips");
    cfg = load_run_config(a.resume, a.sets);
    o.dir = a.resume, o.resume = true;
  } else {
    cfg = load_config(a.config, a.sets);
    o.dir = a.out;
  }
}

int exit_code(const RunResult& r) { return r.interrupted_by != 0 ? 128 + r.interrupted_by : 0; }

#if MNEMO_WITH_MPI
// `mpirun -n N mnemo train ...`: every process loads the config and sets up; a failure on any
// of them stops all of them with every message (printed once, by rank 0). An error after setup
// may leave the others inside a collective, so it stops the whole run (MPI_Abort).
int train_over_mpi(const TrainArgs& a) {
  MpiSession mpi;
  Communicator& world = mpi.world();
  try {
    ExperimentConfig cfg;
    RunOptions o;
    agree(world, [&] { train_setup(a, cfg, o); }, "loading the config");
    if (world.rank() != 0) o.progress = false;
    const RunResult r = train_run(cfg, o, world);
    if (world.rank() == 0) std::cout << "run folder: " << r.dir << "\n";
    return exit_code(r);
  } catch (const AgreedError& e) {
    if (world.rank() == 0) std::cerr << "mnemo: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    mpi.abort("[distributed] rank " + std::to_string(world.rank()) + " of " + std::to_string(world.size()) + ": " +
              e.what());
  }
}
#endif

// 0 when the run finished or stopped at --stop-after; 128 + the signal when SIGINT or SIGTERM
// stopped it (130, 143: what a shell reports for a command a signal ended), so that
// `mnemo train ... && next` does not go on. Errors (a diverged run included) exit 1 in main.
int train(const TrainArgs& a) {
  const int launched = launcher_world_size();
#if MNEMO_WITH_MPI
  if (launched > 1) return train_over_mpi(a);
#else
  MNEMO_CHECK(launched <= 1, "this mnemo was built without MPI, so under mpirun -n " << launched << " it would run "
                                 << launched << " separate copies of the run (install libopenmpi-dev and rebuild "
                                    "with meson setup -Dmpi=enabled)");
#endif
  ExperimentConfig cfg;
  RunOptions o;
  train_setup(a, cfg, o);
  const RunResult r = train_run(cfg, o);
  std::cout << "run folder: " << r.dir << "\n";
  return exit_code(r);
}

// ---- eval ----

struct EvalArgs {
  std::string target, weights, tokens, dump, plot, csv;
  std::vector<std::string> sets;
  bool segments = false, quiet = false;
};

// The report files' default: next to the run, named after the token file
// (RUN/eval_<file stem>.csv and .png); none for an experiment file.
std::string default_report(const EvalArgs& a, const char* ext) {
  if (!fs::is_directory(a.target)) return "";
  return (fs::path(a.target) / ("eval_" + fs::path(a.tokens).stem().string() + ext)).string();
}

// A stream of any length, memory carried throughout: the loss by position bucket as a table
// (and CSV, PNG), tokens/s and peak RSS; every segment's line with --segments; with
// --dump-logits its logits and memory go to the file as they come.
int eval_tokens(const arch::SegmentModel& model, const ExperimentConfig& cfg, const EvalArgs& a) {
  const std::unique_ptr<SegmentSource> source = open_token_file(a.tokens, cfg.data.segment_len);
  std::optional<SafetensorsWriter> dump;
  if (!a.dump.empty()) dump.emplace(a.dump, std::map<std::string, std::string>{{"format", "mnemo.logits/1"},
                                                                             {"arch", cfg.model.arch}});
  const SegmentObserver write = dump ? dump_segments(*dump) : SegmentObserver{};
  Progress progress({.label = "eval", .unit = "tok", .total = source->total_tokens(),
                     .mode = a.quiet ? ProgressMode::off : ProgressMode::automatic});
  int64_t start = 0, positions = 0, counted = 0;
  double nats = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const EvalResult e = evaluate(model, *source, [&](const SegmentReport& r) {
    const int64_t len = r.logits.dim(1);
    if (a.segments) {
      std::printf("segment %ld: tokens [%ld, %ld)", long(r.index), long(start), long(start + len));
      if (r.tokens > 0) std::printf("  loss %.6f", r.loss);
      std::printf("\n");
    }
    start += len;
    positions += r.logits.dim(0) * len;
    nats += r.loss * double(r.tokens), counted += r.tokens;
    char note[64] = "";
    if (counted > 0) std::snprintf(note, sizeof note, "%.4f bits/byte", nats / double(counted) / std::log(2.0));
    progress.update(positions, note);
    if (write) write(r);
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish();
  if (e.tokens > 0) {
    std::printf("%s", position_table(e).c_str());
    std::printf("mean loss %.6f (%.6f bits/byte, accuracy %.6f) over %ld tokens\n", e.loss, e.bits_per_byte,
                e.accuracy, long(e.tokens));
  }
  std::printf("%ld tokens in %.1f s: %.0f tokens/s; peak RSS %.1f MiB\n", long(positions), seconds,
              double(positions) / seconds, double(peak_resident_bytes()) / double(1 << 20));
  const std::string csv = a.csv.empty() ? default_report(a, ".csv") : a.csv;
  if (!csv.empty() && e.tokens > 0) {
    write_file_atomic(csv, position_csv(e));
    std::printf("positions table: %s\n", csv.c_str());
  }
  const std::string png = a.plot.empty() ? default_report(a, ".png") : a.plot;
  if (!png.empty() && e.tokens > 0) {
    std::string why;
    if (plot_positions(e, cfg.name + " (" + cfg.model.arch + ") on " + fs::path(a.tokens).filename().string(), png, &why))
      std::printf("plot: %s\n", png.c_str());
    else
      std::fprintf(stderr, "mnemo eval: no plot: %s\n", why.c_str());
  }
  if (dump) {
    dump->finish();
    std::printf("logits and memories of every segment written to %s\n", a.dump.c_str());
  }
  return 0;
}

int eval(const EvalArgs& a) {
  const Target t = resolve(a.target, a.sets, a.weights);
  auto model = load_model(t);
  if (!a.tokens.empty()) return eval_tokens(*model, t.cfg, a);
  MNEMO_CHECK(a.dump.empty(), "--dump-logits needs --tokens FILE");
  MNEMO_CHECK(a.plot.empty() && a.csv.empty() && !a.segments, "--plot, --csv and --segments need --tokens FILE");
  const RunData data = make_run_data(t.cfg);
  const EvalResult e = evaluate(*model, data.eval);
  std::printf("%s: loss %.6f, %.6f bits/byte, accuracy %.6f over %ld tokens\n", t.cfg.name.c_str(), e.loss,
              e.bits_per_byte, e.accuracy, long(e.tokens));
  return 0;
}

// ---- generate ----

struct GenerateArgs {
  std::string target, weights, prompt;
  std::vector<std::string> sets;
  GenerateOptions opts;
};

// Bytes are tokens 0..255: through `unsigned char`, since a plain char makes every byte of a
// UTF-8 prompt's multi-byte characters (>= 0x80) a negative id.
std::vector<int32_t> prompt_tokens(const std::string& prompt) {
  std::vector<int32_t> out;
  for (const unsigned char c : prompt) out.push_back(c);
  return out;
}

// Each byte is printed and flushed as it is sampled: a long generation shows its progress.
int generate_cmd(const GenerateArgs& a) {
  const Target t = resolve(a.target, a.sets, a.weights);
  auto model = load_model(t);
  std::cout << a.prompt << std::flush;
  generate(*model, t.cfg.data.segment_len, prompt_tokens(a.prompt), a.opts, [](const Tensor& tokens) {
    std::cout << printable({tokens.data<int32_t>()[0]}) << std::flush;
  });
  std::cout << "\n";
  return 0;
}

// ---- import ----

struct ImportArgs {
  std::string arch, config, reference, run;
  std::vector<std::string> sets;
};

int import_cmd(const ImportArgs& a) {
  ExperimentConfig cfg = load_config(a.config, a.sets);
  MNEMO_CHECK(cfg.model.arch == a.arch,
              "--arch " << a.arch << " but " << a.config << " sets model.arch: " << cfg.model.arch);
  const ArchInfo& info = find_arch(a.arch);
  MNEMO_CHECK(info.import_reference, "architecture '" << a.arch << "' has no reference implementation to import from");
  auto model = build_model(cfg);
  // Files exported for parity checks carry inputs and expected outputs beside the state dict;
  // import_reference skips them (is_fixture_entry).
  const NamedTensors weights = info.import_reference(read_safetensors(a.reference).tensors, cfg);
  restore_weights(*model, weights);  // checks every name, shape and dtype against the model
  AdamW opt(nn::named_params(*model), adamw_config(cfg.train.optimizer));
  const RunFolderLock lock(a.run);  // a `mnemo train` writing there meanwhile is refused, or refuses us
  MNEMO_CHECK(!fs::exists(checkpoint_path(a.run)), "'" << a.run << "' already holds a checkpoint; choose a new folder");
  fs::create_directories(fs::path(a.run) / "checkpoints");
  cfg.sweep.clear();
  write_file_atomic((fs::path(a.run) / "config.yaml").string(), to_yaml(cfg));
  save_checkpoint(checkpoint_path(a.run), capture(*model, opt));
  std::printf("imported %zu tensors from %s into %s\n", weights.size(), a.reference.c_str(),
              checkpoint_path(a.run).c_str());
  return 0;
}

// ---- export ----

struct ExportArgs {
  std::string arch, run, out;
  std::vector<std::string> sets;
};

// The run's last checkpoint as the reference implementation's state dict: its names, f32, its
// persistent buffers and nothing else (no optimizer state, no memories).
int export_cmd(const ExportArgs& a) {
  const ExperimentConfig cfg = load_run_config(a.run, a.sets);
  MNEMO_CHECK(cfg.model.arch == a.arch, "--arch " << a.arch << " but the run's model.arch is " << cfg.model.arch);
  const ArchInfo& info = find_arch(a.arch);
  MNEMO_CHECK(info.export_reference, "architecture '" << a.arch << "' has no reference implementation to export to");
  auto model = build_model(cfg);
  restore_weights(*model, load_checkpoint(checkpoint_path(a.run)).weights);
  const NamedTensors state_dict = info.export_reference(*model, cfg);
  write_safetensors(a.out, state_dict, {{"format", "pt"}});
  std::printf("exported %zu tensors from %s to %s\n", state_dict.size(), checkpoint_path(a.run).c_str(), a.out.c_str());
  return 0;
}

// Generation runs at hundreds to a few thousand bytes/s on a CPU (docs/BENCHMARKS.md), and the
// generic decoder of a model without a cache re-runs the partial segment for every byte; a
// length past a million bytes is far more likely a typo than a plan.
constexpr int64_t kMaxGenerateLength = 1'000'000;

// Flag checks with messages that say what is wanted (CLI11 2.1's own number validators print
// their range as 0 to DBL_MAX). A value that is not a number at all is left to CLI11's parse.
CLI::Validator integer_in(int64_t lo, int64_t hi = std::numeric_limits<int64_t>::max()) {
  const std::string range = hi == std::numeric_limits<int64_t>::max()
                                ? ">= " + std::to_string(lo)
                                : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](const std::string& s) -> std::string {
        int64_t v = 0;
        if (CLI::detail::lexical_cast(s, v) && (v < lo || v > hi)) return "must be an integer " + range + ", got " + s;
        return "";
      },
      range);
}

// A NaN temperature samples nothing and an infinite one is uniform noise: both are typos.
const CLI::Validator finite_non_negative(
    [](const std::string& s) -> std::string {
      double v = 0;
      if (CLI::detail::lexical_cast(s, v) && (!std::isfinite(v) || v < 0))
        return "must be a finite number >= 0, got " + s;
      return "";
    },
    "FINITE >= 0");

// CLI11 would wrap a negative seed around to a huge unsigned one.
const CLI::Validator not_negative_text(
    [](const std::string& s) -> std::string {
      return s.find('-') == std::string::npos ? "" : "must be an integer >= 0, got " + s;
    },
    "");

}  // namespace

void add_train_commands(CLI::App& app) {
  {
    auto a = std::make_shared<TrainArgs>();
    CLI::App* c = app.add_subcommand("train", "Train an experiment into a run folder (or resume one)");
    c->add_option("config", a->config, "Experiment YAML file");
    c->add_option("--set", a->sets, "Override a config key: --set train.steps=100 (repeatable; with --resume only "
                                    "train.steps, train.on_nonfinite, train.max_skips)");
    c->add_option("--out", a->out, "Run folder (default: runs/<name>)");
    c->add_option("--resume", a->resume, "Continue the run in this folder from its last checkpoint");
    c->add_option("--stop-after", a->stop_after, "Checkpoint and stop after this many steps in all")
        ->check(integer_in(1));
    c->add_flag("--quiet", a->quiet, "No progress line");
    c->footer("Architectures: " + [] {
      std::string s;
      for (const auto& n : arch_names()) s += (s.empty() ? "" : ", ") + n;
      return s;
    }());
    c->callback([a] { throw CLI::RuntimeError(train(*a)); });
  }
  {
    auto a = std::make_shared<EvalArgs>();
    CLI::App* c = app.add_subcommand("eval", "Evaluate a run or an experiment on held-out data or given tokens");
    c->add_option("target", a->target, "Run folder or experiment YAML file")->required();
    c->add_option("--set", a->sets, "Override a config key (experiment files only)");
    c->add_option("--weights", a->weights, "Checkpoint to load (default: the run's last)");
    c->add_option("--tokens", a->tokens, "Token file: .safetensors with input.tokens (B, N) [input.labels], or raw bytes (read as a stream, any length)");
    c->add_option("--dump-logits", a->dump, "Write every segment's logits and memories to this .safetensors file");
    c->add_option("--plot", a->plot, "With --tokens: PNG of bits/byte by position in the stream "
                                     "(default for a run folder: RUN/eval_<file stem>.png)");
    c->add_option("--csv", a->csv, "With --tokens: the position buckets as CSV (default for a run folder: "
                                   "RUN/eval_<file stem>.csv)");
    c->add_flag("--segments", a->segments, "With --tokens: a line per segment (its positions and loss)");
    c->add_flag("--quiet", a->quiet, "No progress bar or lines");
    c->callback([a] { throw CLI::RuntimeError(eval(*a)); });
  }
  {
    auto a = std::make_shared<GenerateArgs>();
    CLI::App* c = app.add_subcommand("generate", "Sample text from a run's model, memory carried across segments");
    c->add_option("target", a->target, "Run folder or experiment YAML file")->required();
    c->add_option("--set", a->sets, "Override a config key (experiment files only)");
    c->add_option("--weights", a->weights, "Checkpoint to load (default: the run's last)");
    c->add_option("--prompt", a->prompt, "Text to continue (default: a newline)");
    c->add_option("--length", a->opts.length, "Bytes to generate")
        ->capture_default_str()
        ->check(integer_in(1, kMaxGenerateLength));
    c->add_option("--temperature", a->opts.temperature, "Sampling temperature; 0 = greedy")
        ->capture_default_str()
        ->check(finite_non_negative);
    // A negative k is refused rather than read as "all", which would hide a typo.
    c->add_option("--top-k", a->opts.top_k, "Sample among the k likeliest bytes; 0 = all")
        ->capture_default_str()
        ->check(integer_in(0));
    c->add_option("--seed", a->opts.seed, "Sampling seed")->capture_default_str()->check(not_negative_text);
    c->callback([a] { throw CLI::RuntimeError(generate_cmd(*a)); });
  }
  {
    auto a = std::make_shared<ImportArgs>();
    CLI::App* c = app.add_subcommand("import", "Import a reference implementation's state dict into a new run folder");
    c->add_option("--arch", a->arch, "Architecture of the reference weights")->required();
    c->add_option("config", a->config, "Experiment YAML file describing the same model")->required();
    c->add_option("reference", a->reference, "The reference state dict as .safetensors")->required();
    c->add_option("run", a->run, "New run folder")->required();
    c->add_option("--set", a->sets, "Override a config key");
    c->callback([a] { throw CLI::RuntimeError(import_cmd(*a)); });
  }
  {
    auto a = std::make_shared<ExportArgs>();
    CLI::App* c = app.add_subcommand("export", "Write a run's weights as the reference implementation's state dict");
    c->add_option("--arch", a->arch, "Architecture of the run (rmt, brt, compressive, memxl)")->required();
    c->add_option("run", a->run, "Run folder (its last checkpoint)")->required();
    c->add_option("out", a->out, "Output .safetensors (load with safetensors.torch.load_file + load_state_dict)")
        ->required();
    c->add_option("--set", a->sets, "Override a config key of the run (e.g. model.rmt.reference_parity=true)");
    c->callback([a] { throw CLI::RuntimeError(export_cmd(*a)); });
  }
}

}  // namespace mnemo::tools
