// `mnemo bench generate CONFIG`: generation tokens/s of one experiment's model (weights as
// initialised: speed does not depend on them), through the model's per-token cache
// (SegmentModel::cached_generator) and through the generic path that re-runs forward() over
// the partial segment for every token (GenerateOptions::use_cache = false), interleaved
// A B A B ... on the same model and binary, so that a loaded machine slows both alike.
// One stream, greedy, a one-token prime, segments of data.segment_len.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench/bench.h"
#include "bench/timing.h"
#include "experiments/generate.h"
#include "experiments/models.h"


namespace mnemo::bench {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int run_generate_bench(const GenerateBenchOptions& o) {
  experiments::ExperimentConfig cfg = experiments::load_config(o.config, o.sets);
  const int threads = use_threads(cfg.train.threads);
  auto model = experiments::build_model(cfg);
  nn::eval(*model);
  const int64_t T = cfg.data.segment_len;
  const bool has_cache = model->cached_generator({}, 1, T) != nullptr;
  std::printf("config     %s (%s), segments of %ld, %ld tokens per run from a one-token prime, %d threads\n",
              o.config.c_str(), cfg.model.arch.c_str(), long(T), long(o.length), threads);
  if (!has_cache) std::printf("           the model has no cache for these segments: both runs re-run forward()\n");
  std::fflush(stdout);
  const Tensor prime = Tensor::from_ints({1, 1}, {'\n'});
  const auto run = [&](bool cache) {  // tokens/s
    experiments::GenerateOptions g{.length = o.length, .temperature = 0};
    g.use_cache = cache;
    const auto a = std::chrono::steady_clock::now();
    (void)experiments::generate(*model, T, prime, {}, g);
    return double(o.length) / std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
  };
  std::vector<double> cached, uncached;
  for (int i = 0; i < o.reps; ++i) {
    if (o.mode != "uncached") cached.push_back(run(true));
    if (o.mode != "cached") uncached.push_back(run(false));
    std::printf("run %d      cached %s tokens/s, uncached %s tokens/s\n", i + 1,
                cached.empty() ? "-" : std::to_string(long(cached.back())).c_str(),
                uncached.empty() ? "-" : std::to_string(long(uncached.back())).c_str());
    std::fflush(stdout);
  }
  if (!cached.empty()) std::printf("cached     %.1f tokens/s (median of %zu)\n", median(cached), cached.size());
  if (!uncached.empty()) std::printf("uncached   %.1f tokens/s (median of %zu)\n", median(uncached), uncached.size());
  if (!cached.empty() && !uncached.empty()) std::printf("ratio      %.1fx\n", median(cached) / median(uncached));
  return 0;
}

}  // namespace mnemo::bench
