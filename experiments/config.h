// ExperimentConfig: one run's whole description, read strictly from YAML (with `base:`
// inheritance and `--set a.b=value` flags) into plain structs whose defaults are written
// here. The architecture's own block (model.<arch>) is read at load too, into the
// architecture's typed config struct (experiments/models.h), and held behind ArchOptions.
// Modes are enums. to_yaml writes every resolved field, so a run folder's config.yaml
// rebuilds the same model even after a default changes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "autograd/dtype.h"
#include "autograd/optim/adamw.h"
#include "autograd/optim/schedule.h"
#include "data/synthetic.h"
#include "experiments/yaml_reader.h"

namespace mnemo::experiments {

enum class DataKind : uint8_t { text, enwik8, synthetic };
enum class OptimizerKind : uint8_t { adamw };
enum class StepEvery : uint8_t { batch, segment };
enum class ScheduleKind : uint8_t { constant, warmup_cosine };
enum class BpttMode : uint8_t { truncated, full, replay };  // experiments/bptt.h
enum class OnNonFinite : uint8_t { stop, skip };
enum class Precision : uint8_t { f32, bf16 };

// The YAML spelling of each enum value, and back (an unknown name lists the known ones).
const char* name_of(DataKind v);
const char* name_of(data::Task v);
const char* name_of(OptimizerKind v);
const char* name_of(StepEvery v);
const char* name_of(ScheduleKind v);
const char* name_of(BpttMode v);
const char* name_of(OnNonFinite v);
const char* name_of(Precision v);

// Where each key of a map of names was written (name -> "file:line:col: train.memory_dropout.h"),
// for the errors found only once the model is built. Not part of the config's value: == ignores it.
struct KeyLocations {
  std::map<std::string, std::string> at;
  bool operator==(const KeyLocations&) const { return true; }
};

struct DataConfig {
  DataKind kind = DataKind::synthetic;
  std::string path;                  // the corpus file (text, enwik8: raw or .gz); unused for synthetic
  data::Task task = data::Task::copy;  // synthetic only
  int64_t total_len = 0;             // synthetic: tokens per sample; 0 = segments * segment_len
  int64_t segments = 4;              // S: segments per sample (one BPTT sample = S * T tokens)
  // synthetic: train on curriculum.segments[k] segments for curriculum.steps batches each
  // (steps, unless grad_accum > 1), then on `segments`; evaluation always uses `segments`
  std::vector<int64_t> curriculum_segments;
  int64_t curriculum_steps = 0;
  int64_t copy_len = 16;             // copy, reverse, selective_copy: tokens to remember
  int64_t num_pairs = 8;             // assoc_recall: K key/value pairs
  double depth = 0.5;                // needle: where the pair hides, as a fraction of the filler
  int64_t segment_len = 64;          // T: tokens per segment
  int64_t batch_size = 8;            // B: parallel streams
  bool stateful = true;              // memory at a batch's end seeds the next batch of the same streams
  bool random_crops = false;         // samples at random offsets, each from the initial memory
  double val_fraction = 0.05;        // text: held-out tail of the corpus (enwik8 uses its 5M/5M split)
  KeyLocations at;  // batch_size's, for `mpirun -n N` (a batch it cannot split is refused there)
  bool operator==(const DataConfig&) const = default;
};

// model.<arch> read into the architecture's own config struct, every default resolved
// (experiments/models.h makes one per architecture). Immutable once read.
class ArchOptions {
 public:
  virtual ~ArchOptions() = default;
  virtual void emit(YAML::Emitter& e) const = 0;  // every option as a YAML map
};

struct ModelConfig {
  std::string arch = "transformer";  // transformer | transformer_xl | rmt | brt | compressive | memxl
  int64_t dim = 128;                 // D: model width
  int64_t depth = 2;                 // layers
  int64_t heads = 4;                 // attention heads; must divide dim
  int64_t vocab = 256;               // bytes
  // model.<arch>, typed and resolved; null until read (the model then gets the defaults)
  std::shared_ptr<const ArchOptions> options;
  bool operator==(const ModelConfig& o) const;  // options compared by their resolved values
};

struct OptimizerConfig {
  OptimizerKind type = OptimizerKind::adamw;  // the trainer steps AdamW
  double lr = 1e-3;                           // base learning rate (the schedule scales it)
  std::vector<double> betas = {0.9, 0.999};   // adamw: beta1, beta2
  double weight_decay = 0.01;                 // decoupled (adamw) or L2 (sgd)
  double eps = 1e-8;                          // adamw denominator
  std::vector<std::string> no_decay = {};     // globs over param names with weight_decay 0
  // batch: one update per batch of S segments (after every window's backward);
  // segment: an update after every segment, memory detached between them (TrXL-style
  // streaming, how the Compressive Transformer reference trains). The schedule then counts
  // updates: train.steps * data.segments of them. With train.grad_accum A > 1 the A batches
  // run side by side and each segment's update adds their losses / A (the reference's
  // micro-batches); it needs batches from fresh memory (random crops, synthetic, stateless).
  StepEvery step_every = StepEvery::batch;
  bool operator==(const OptimizerConfig&) const = default;
};

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::constant;
  int64_t warmup_steps = 0;       // linear warm-up from lr/W to lr
  double min_lr = 0.0;            // warmup_cosine: lr reached at train.steps; at most lr
  bool operator==(const ScheduleConfig&) const = default;
};

struct TrainConfig {
  int64_t steps = 1000;               // optimizer steps
  BpttMode bptt = BpttMode::truncated;
  // truncated: k segments per tape; replay: the memory gradient is cut every k segments
  // (default data.segments: no cut, as full); at most data.segments; full ignores it
  int64_t window = 1;
  // replay: keep only the first entering memory and recompute the others by re-running
  // forwards on the way back, instead of keeping all S
  bool replay_recompute = false;
  // with replay_recompute: most memories alive at once besides the first, whatever the
  // segment count (fewer means more re-run forwards, experiments/replay_schedule.h)
  int64_t replay_snapshots = 3;
  int64_t grad_accum = 1;             // batches whose grads add up before one step
  double clip = 1.0;                  // global grad-norm clip; 0 = off
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  std::map<std::string, double> memory_dropout;  // memory name -> p of dropping it for a segment
  KeyLocations memory_dropout_at;                // checked against the model's memories by build_model
  int64_t log_every = 10;             // steps between progress/log lines
  int64_t eval_every = 200;           // steps between evaluations; 0 = only at the end
  int64_t checkpoint_every = 1000;    // steps between checkpoints; 0 = only at the end
  int64_t threads = 0;                // CPU threads; 0 = the runtime's default
  // A step whose loss or gradient norm is NaN/Inf is never applied. stop: the run fails at
  // once, naming the step, with no checkpoint written after it; skip: the step is dropped
  // (memory back to what entered it) and logged, and the run fails only after more than
  // max_skips such steps in a row (one bad batch is noise, a streak is divergence).
  OnNonFinite on_nonfinite = OnNonFinite::stop;
  int64_t max_skips = 10;             // skip: consecutive non-finite steps tolerated
  // The training step's GEMMs: f32, or bf16 operands with f32 accumulation (kernels.h,
  // MatmulPrecision); weights, optimizer state, attention, norms and losses stay f32, and
  // evaluation runs f32. bf16 on a machine that cannot run it is refused at load.
  Precision precision = Precision::f32;
  bool operator==(const TrainConfig&) const = default;
};

struct EvalConfig {
  int64_t batches = 16;          // held-out batches per evaluation; 0 = the whole held-out stream
  int64_t generate_every = 0;    // steps between generation samples; 0 = never
  int64_t generate_len = 256;    // bytes per sample
  double temperature = 1.0;      // sampling temperature
  int64_t top_k = 0;             // keep the k likeliest tokens; 0 = all
  bool operator==(const EvalConfig&) const = default;
};

// One axis of a `sweep:` grid: a dotted key and the values it takes (YAML scalars as text).
// A value written as a one-entry map, `- brt: {model.dim: 56}`, also sets those keys at the
// points that take it: overrides[i] holds value i's ("model.dim", "56") pairs, in file order
// (empty, or shorter than values, for plain values). For settings that differ by point,
// such as a narrower model for an architecture with more parameters per layer.
struct SweepAxis {
  std::string key;
  std::vector<std::string> values;
  std::vector<std::vector<std::pair<std::string, std::string>>> overrides = {};
  bool operator==(const SweepAxis&) const = default;
};

struct ExperimentConfig {
  std::string name;       // run name; the config file's stem when absent
  uint64_t seed = 1234;   // every RNG (init, data, dropout, sampling) derives from it
  // Where the run's tensors live. cuda needs the CUDA backend and a device, or the emulated
  // device (MNEMO_EMULATE_CUDA=1, docs/CUDA.md); otherwise it is refused at load with the
  // reason, never a silent run on the CPU under a cuda label. The model is built on the CPU
  // and moved once (experiments/on_device.h).
  Device device = Device::cpu;
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  EvalConfig eval;
  std::vector<SweepAxis> sweep;  // `mnemo sweep`: runs over the grid of these axes; empty for one run
  bool operator==(const ExperimentConfig&) const = default;
};

/// Reads `path` (following `base:` chains), applies `overrides` ("a.b=value", optionally
/// prefixed "--set "), then validates everything. Throws mnemo::Error with file:line:column.
ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
/// The fully resolved config as YAML; load_config of it gives the same config.
std::string to_yaml(const ExperimentConfig& cfg);

/// The optimizer and schedule structs of autograd/optim.
AdamWConfig adamw_config(const OptimizerConfig& opt);
/// The learning-rate schedule over optimizer updates (train.steps of them, or
/// train.steps * segments with optimizer.step_every: segment).
Schedule schedule_of(const TrainConfig& train, int64_t segments = 1);

}  // namespace mnemo::experiments
