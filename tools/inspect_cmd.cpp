// `mnemo inspect`: runs a run's model over one held-out batch of its own data (or --input, a
// token file as `mnemo eval --tokens` reads it) with the attention recorder on, and writes
// CSVs and PNG heatmaps (experiments/inspect.h) to RUN/inspect or --out.
#include "tools/inspect_cmd.h"

#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "experiments/checkpoint.h"
#include "experiments/inspect.h"
#include "experiments/models.h"
#include "experiments/run.h"
#include "experiments/run_data.h"

namespace mnemo::tools {
namespace {

namespace fs = std::filesystem;
using namespace mnemo::experiments;

struct InspectArgs {
  std::string target, input, out;
  std::vector<std::string> sets;
  int64_t max_segments = 64;
  bool no_png = false;
};

int inspect_run(const InspectArgs& a) {
  const bool run = fs::is_directory(a.target);
  MNEMO_CHECK(!run || a.sets.empty(), "--set applies to experiment files; '" << a.target << "' is a run folder");
  const ExperimentConfig cfg = run ? load_run_config(a.target) : load_config(a.target, a.sets);
  auto model = build_model(cfg);
  if (run) {
    const std::string weights = checkpoint_path(a.target);
    MNEMO_CHECK(fs::exists(weights), "[run] '" << a.target << "' has no checkpoint yet");
    restore_weights(*model, load_checkpoint(weights).weights);
  } else {
    std::cerr << "mnemo: " << a.target << " is an experiment file: inspecting freshly initialised weights (seed "
              << cfg.seed << ")\n";
  }
  nn::eval(*model);
  if (cfg.train.threads > 0) omp_set_num_threads(int(cfg.train.threads));

  std::unique_ptr<SegmentSource> source;
  std::vector<data::Batch> batch;  // one held-out batch of the run's own data
  if (!a.input.empty()) {
    source = open_token_file(a.input, cfg.data.segment_len);
  } else {
    RunData data = make_run_data(cfg);
    MNEMO_CHECK(!data.eval.empty(), "[inspect] the run's config gives no held-out batch (eval.batches)");
    batch.push_back(data.eval.front());
    source = std::make_unique<BatchSegments>(batch);
  }
  const std::string dir = !a.out.empty() ? a.out : run ? (fs::path(a.target) / "inspect").string() : "inspect";
  const InspectOutput o =
      inspect(*model, *source, {.dir = dir, .max_segments = a.max_segments, .png = !a.no_png});

  std::printf("%s (%s): %ld segments inspected\n", cfg.name.c_str(), cfg.model.arch.c_str(), long(o.segments));
  if (o.memory_regions.empty()) {
    std::printf("no memory: every key %s attends to is a token of the segment itself\n", cfg.model.arch.c_str());
  } else {
    std::string kinds;
    for (const std::string& r : o.memory_regions) kinds += (kinds.empty() ? "" : ", ") + r;
    std::printf("memory read: %s\n", kinds.c_str());
  }
  for (const InspectSummary& s : o.summary)
    std::printf("  %-28s %-12s mean mass %.3f (max over heads %.3f)\n", s.call.c_str(), s.region.c_str(), s.mean,
                s.max_head);
  if (!o.no_png.empty()) std::printf("no PNGs: %s\n", o.no_png.c_str());
  for (const std::string& f : o.files) std::printf("wrote %s\n", f.c_str());
  return 0;
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* c = app.add_subcommand("inspect", "Heatmaps of what each segment reads from memory (attention mass on "
                                              "memory per layer and head, memory norms per slot), as PNG and CSV");
  c->add_option("target", a->target, "Run folder (or an experiment file: freshly initialised weights)")->required();
  c->add_option("--input", a->input, "Token file: .safetensors with input.tokens (B, N) [input.labels], or raw bytes "
                                     "(default: one held-out batch of the run's own data)");
  c->add_option("--out", a->out, "Output folder (default: RUN/inspect)");
  c->add_option("--set", a->sets, "Override a config key (experiment files only)");
  c->add_option("--max-segments", a->max_segments, "Inspect at most this many segments (0: all)")
      ->check(CLI::NonNegativeNumber);
  c->add_flag("--no-png", a->no_png, "CSVs only");
  c->callback([a] { throw CLI::RuntimeError(inspect_run(*a)); });
}

}  // namespace mnemo::tools
