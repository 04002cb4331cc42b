// When a training step runs eagerly, is captured into a CUDA Graph, or replays one: the
// bookkeeping behind optional whole-step capture, host-only so the CPU build tests it.
// A step is keyed by its shapes (a string the trainer builds). The first `warmup` steps of a
// key run eagerly so that the allocator's cache holds every block the step needs (a capture
// must not call cudaMalloc); the next one is captured; later ones replay. A capture that
// failed (an op that cannot be captured, a backing allocation during capture) marks the key
// eager for good. At most `max_graphs` keys keep a graph; the least recently used goes.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>

namespace mnemo::kernels::cuda {

enum class StepAction : uint8_t { eager, capture, replay };
const char* step_action_name(StepAction a);

class GraphPlan {
 public:
  explicit GraphPlan(int warmup = 2, int max_graphs = 4);

  StepAction next(const std::string& key);                  // what the step with these shapes does now
  void captured(const std::string& key, void* graph_exec);  // after a capture succeeded
  void capture_failed(const std::string& key);
  void* graph(const std::string& key) const;  // the graph to replay; null when none
  // Graphs evicted since the last call, for the runtime to destroy (cudaGraphExecDestroy).
  std::list<void*> take_evicted();

  int graphs() const { return int(lru_.size()); }

 private:
  struct Entry {
    int eager_runs = 0;
    bool uncapturable = false;
    void* exec = nullptr;
  };
  int warmup_, max_graphs_;
  std::unordered_map<std::string, Entry> keys_;
  std::list<std::string> lru_;  // keys holding a graph, most recent first
  std::list<void*> evicted_;
};

}  // namespace mnemo::kernels::cuda
