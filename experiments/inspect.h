// `mnemo inspect`: what each segment reads from memory. The model runs over segments as in
// evaluation (evaluate(), memory carried, nothing taped) with the attention recorder on
// (autograd/attention_recorder.h); each architecture's attention_layout()
// (architectures/segment_model.h) says which key columns of each call are memory (XL cache,
// memory slots, compressed memory, long-term memory, states, ...) and which are the segment.
//   mass(call, head, region) = mean over streams b and token query rows i of
//                              sum over the region's key columns j of P[b, head, i, j]
// Every token row's probabilities sum to 1, so a call's region masses sum to 1 per head.
// Memory norms: per slot, the L2 norm over the last axis of each vector in the slot, averaged
// over every other axis but the slot axis (the second to last: (B, M, D), (B, 2, H, L, d),
// (Lm, B, L, D)).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "architectures/segment_model.h"
#include "experiments/evaluate.h"

namespace mnemo::experiments {

// One segment as the recorder saw it; the references live until the observer returns.
struct SegmentAttention {
  int64_t index = 0;
  const EvalSegment& segment;                         // tokens and targets (B, n)
  const std::vector<arch::AttentionLayout>& layout;   // the model's declaration, call by call
  const std::vector<Tensor>& probs;                   // per call: f64 (B, H, Tq, Tk)
  const arch::Memory& memory_in;                      // entering the segment
  const arch::Memory& memory_out;                     // leaving it
};
using AttentionObserver = std::function<void(const SegmentAttention&)>;

// Runs the model over `source` with the recorder on; throws when the model declares no
// layout, or when the calls recorded differ from the declaration (how many, key columns,
// query rows).
EvalResult record_attention(const arch::SegmentModel& model, SegmentSource& source, const AttentionObserver& observe);

struct RegionMass {
  std::string region;
  int64_t head = 0;
  double mass = 0;
};
// The masses of one call per head and region (regions in declaration order, then heads).
std::vector<RegionMass> region_masses(const arch::AttentionLayout& layout, const Tensor& probs);
// Per key column: the mean probability over streams, token rows and heads, (Tk).
std::vector<double> key_masses(const arch::AttentionLayout& layout, const Tensor& probs);
// The norm of each slot of a memory tensor (see the header comment).
std::vector<double> slot_norms(const Tensor& memory);

struct InspectOptions {
  std::string dir;            // output folder (created)
  int64_t max_segments = 64;  // stop after this many segments (0: all)
  bool png = true;            // PNG heatmaps with gnuplot, where it is installed
};
struct InspectSummary {
  std::string call, region;  // a call name ("layer 1") and a memory region read by it
  double mean = 0;           // mass over segments and heads
  double max_head = 0;       // the largest head's mass over segments
  int64_t heads = 0;
};
struct InspectOutput {
  std::vector<std::string> files;  // written, CSVs first
  std::vector<std::string> memory_regions;  // the memory kinds read (none: the model has no memory)
  std::string no_png;              // why there are no PNGs, or empty
  int64_t segments = 0;
  std::vector<InspectSummary> summary;  // per call name and memory region, in call order
};
// Writes into o.dir: region_mass.csv (segment,call,name,head,region,mass), key_mass.csv
// (segment,call,name,key,region,mass), memory_norms.csv (segment,memory,slot,norm) and PNG
// heatmaps: mass_<region>.png (call and head x segment), keys_<call>.png (key column x
// segment, mean over heads), norms_<memory>.png (slot x segment).
InspectOutput inspect(const arch::SegmentModel& model, SegmentSource& source, const InspectOptions& o);

}  // namespace mnemo::experiments
