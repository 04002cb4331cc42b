// The architecture registry: `model.arch` in a config names an entry here, and the entry
// builds the SegmentModel from the config (reading and validating model.<arch> itself) and,
// where a PyTorch reference implementation exists, maps that reference's state dict onto
// the model's parameter names (`mnemo import`). Each architecture registers itself from its
// own experiments/arch_<name>.cpp, so adding one touches no shared file.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "architectures/segment_model.h"
#include "experiments/checkpoint.h"
#include "experiments/config.h"
#include "layers/init.h"

namespace mnemo::experiments {

struct ArchInfo {
  std::string name;
  std::string summary;  // one line for `mnemo train --help` and error messages
  std::function<std::unique_ptr<arch::SegmentModel>(const ExperimentConfig&, nn::Init&)> build;
  // Reference state dict (its names) -> the model's state dict (mnemo names). Empty when the
  // architecture has no reference implementation. Throws naming every missing/unused tensor.
  std::function<NamedTensors(const std::map<std::string, Tensor>& reference, const ExperimentConfig&)> import_reference;
};

// The common half of every import_reference: each model parameter is looked up in
// `reference` under reference_name(its name) and must be there with its shape (converted to
// the parameter's dtype); each reference tensor must be used, except parity-fixture entries
// (input.*, expected.*, buffer.*) and those `ignorable` accepts. One error names every
// missing, unused and mis-shaped tensor, after `what` and before `hint`.
struct ReferenceImport {
  std::string what;  // "[import brt] the reference state dict does not match model.brt"
  std::function<std::string(const std::string&)> reference_name = [](const std::string& n) { return n; };
  std::function<bool(const std::string&, const Tensor&)> ignorable = {};
  std::string hint = {};
};
NamedTensors import_by_name(nn::Module& model, const std::map<std::string, Tensor>& reference,
                            const ReferenceImport& how);
bool is_fixture_entry(const std::string& name);  // input.*, expected.*, buffer.*: not weights

bool register_arch(ArchInfo info);  // returns true, for static registration
const ArchInfo& find_arch(const std::string& name);  // unknown: an error listing the known ones
std::vector<std::string> arch_names();

// Builds model.arch with weights drawn from an Init seeded by cfg.seed.
std::unique_ptr<arch::SegmentModel> build_model(const ExperimentConfig& cfg, DType dtype = DType::f32);

}  // namespace mnemo::experiments

#define MNEMO_ARCH_CONCAT_(a, b) a##b
#define MNEMO_ARCH_CONCAT(a, b) MNEMO_ARCH_CONCAT_(a, b)
// MNEMO_REGISTER_ARCH(ArchInfo{...}); at namespace scope in experiments/arch_<name>.cpp.
#define MNEMO_REGISTER_ARCH(...) \
  [[maybe_unused]] static const bool MNEMO_ARCH_CONCAT(mnemo_arch_registered_, __LINE__) = \
      ::mnemo::experiments::register_arch(__VA_ARGS__)
