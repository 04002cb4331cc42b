#include "kernels/cuda/graph_plan.h"

#include <stdexcept>
#include <utility>

namespace mnemo::kernels::cuda {

const char* step_action_name(StepAction a) {
  switch (a) {
    case StepAction::eager:
      return "eager";
    case StepAction::capture:
      return "capture";
    case StepAction::replay:
      return "replay";
  }
  return "?";
}

GraphPlan::GraphPlan(int warmup, int max_graphs) : warmup_(warmup), max_graphs_(max_graphs) {
  if (warmup < 1 || max_graphs < 1)
    throw std::invalid_argument("[cuda graphs] warmup and max_graphs must be at least 1, got " +
                                std::to_string(warmup) + " and " + std::to_string(max_graphs));
}

StepAction GraphPlan::next(const std::string& key) {
  Entry& e = keys_[key];
  if (e.exec) {
    lru_.remove(key);
    lru_.push_front(key);
    return StepAction::replay;
  }
  if (e.uncapturable || e.eager_runs < warmup_) {
    ++e.eager_runs;
    return StepAction::eager;
  }
  return StepAction::capture;
}

void GraphPlan::captured(const std::string& key, void* graph_exec) {
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.exec || it->second.uncapturable)
    throw std::logic_error("[cuda graphs] captured() for key '" + key + "' that next() did not ask to capture");
  it->second.exec = graph_exec;
  lru_.push_front(key);
  while (int(lru_.size()) > max_graphs_) {
    Entry& old = keys_.at(lru_.back());
    evicted_.push_back(old.exec);
    old.exec = nullptr;
    old.eager_runs = 0;  // a key that comes back warms up and captures again
    lru_.pop_back();
  }
}

void GraphPlan::capture_failed(const std::string& key) { keys_[key].uncapturable = true; }

void* GraphPlan::graph(const std::string& key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? nullptr : it->second.exec;
}

std::list<void*> GraphPlan::take_evicted() { return std::exchange(evicted_, {}); }

}  // namespace mnemo::kernels::cuda
