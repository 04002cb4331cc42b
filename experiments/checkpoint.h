// Checkpoints: safetensors files (the Hugging Face format: an 8-byte little-endian header
// length, a JSON header, then raw little-endian tensor data), written atomically (temp
// file, fsync, rename, fsync of the directory) and read with every field validated, plus
// the training state a resumed run needs: weights, AdamW moments, RNG, data cursor, memory.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "architectures/segment_model.h"
#include "autograd/optim/adamw.h"
#include "layers/module.h"

namespace mnemo::experiments {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// ---- safetensors ----

struct Safetensors {
  std::map<std::string, Tensor> tensors;         // by name (CPU, freshly allocated)
  std::vector<std::string> names;                // the same names in file (offset) order
  std::map<std::string, std::string> metadata;   // "__metadata__": string -> string
};

// dtypes F32, F64, I32, U8; CPU tensors only; names unique and non-empty.
// Atomic: on any failure the previous file at `path` is untouched and no temp file remains.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// Refuses (mnemo::Error naming the file and the problem) truncated files, bad JSON, unknown
// dtypes, offsets out of range / overlapping / leaving holes, and size != dtype * shape.
Safetensors read_safetensors(const std::string& path);

// A safetensors file written one tensor at a time, none of them kept: the data goes to a
// temporary file as tensors come, and finish() writes the header (known only then) and that
// data to path's temporary file and renames it over `path`. The bytes equal write_safetensors'
// for the same tensors and metadata; unfinished, the previous file at `path` is untouched.
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path, const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();  // removes the temporary file unless finished
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  void add(const std::string& name, const Tensor& t);
  void finish();

 private:
  std::string path_, data_path_, header_;  // header_: the JSON so far, small
  std::set<std::string> seen_;
  uint64_t offset_ = 0;                     // data bytes written
  int fd_ = -1;
  bool finished_ = false;
};

// The same, in memory (the file functions are these plus I/O). `what` names the source in
// error messages.
std::string encode_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata);
Safetensors decode_safetensors(const std::string& bytes, const std::string& what = "<memory>");

// Writes `bytes` to path + ".tmp.<pid>", fsyncs it, renames it over `path`, fsyncs the
// directory. On failure removes the temp file and throws; `path` is left as it was.
void write_file_atomic(const std::string& path, const std::string& bytes);
std::string temp_path_for(const std::string& path);  // path + ".tmp.<pid>"

// ---- training state ----

struct TrainingState {
  int64_t step = 0;          // the trainer's steps (batches)
  // AdamW counts updates, not steps: `step` and "adamw.steps" agree when
  // adamw.steps == step * updates_per_step - skipped_updates, which load_checkpoint checks.
  int64_t updates_per_step = 1;   // data.segments with optimizer.step_every: segment
  int64_t skipped_updates = 0;    // updates not taken because the loss or gradient was non-finite
  NamedTensors weights;      // state-dict names ("layers.0.attn.to_q.weight")
  NamedTensors optimizer;    // "adamw.m.<param>", "adamw.v.<param>" (absent before a param's first update)
  std::map<std::string, int64_t> optimizer_counters;  // "adamw.steps", "adamw.step.<param>"
  uint64_t rng_state = 0;
  std::vector<int64_t> data_cursor;
  arch::Memory memory;       // carried memories by name
  std::map<std::string, std::string> extra;  // anything else the trainer wants back
};

// One safetensors file: weights under their names, optimizer tensors under "optim/...",
// memories under "memory/...", scalars, counters, cursor and extras in __metadata__, and the
// CRC32 of every tensor's bytes as "crc32/<tensor>". Refuses (the previous file kept) a state
// with a NaN/Inf in a float weight, optimizer tensor or memory: resuming from one is useless.
void save_checkpoint(const std::string& path, const TrainingState& state);
// Refuses, naming the file and the tensor or numbers: a checksum mismatch, a NaN/Inf in a
// float tensor, a step that disagrees with AdamW's update counts.
TrainingState load_checkpoint(const std::string& path);

// A snapshot (clones) of the model's weights and the optimizer's moments and counters;
// step = opt.steps(). The caller may set rng_state, data_cursor and extra afterwards.
TrainingState capture(nn::Module& model, const AdamW& opt, const arch::Memory& memory = {},
                      uint64_t rng_state = 0, std::vector<int64_t> data_cursor = {});
// Copies weights and optimizer state back. Everything is checked before anything changes:
// missing and unknown names are listed, a shape or dtype mismatch names the parameter and
// both shapes. Gradients are not part of the state and are left as they are.
void restore(nn::Module& model, AdamW& opt, const TrainingState& state);
// The weights alone (evaluation, generation, import), checked the same way.
void restore_weights(nn::Module& model, const NamedTensors& weights);

}  // namespace mnemo::experiments
