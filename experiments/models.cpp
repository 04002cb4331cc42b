#include "experiments/models.h"

#include "autograd/error.h"

namespace mnemo::experiments {

namespace {
std::map<std::string, ArchInfo>& registry() {
  static std::map<std::string, ArchInfo> r;  // constructed on first use: safe from static initialisers
  return r;
}
}  // namespace

bool register_arch(ArchInfo info) {
  MNEMO_CHECK(!info.name.empty() && info.build, "[models] an architecture needs a name and a builder");
  const std::string name = info.name;
  MNEMO_CHECK(registry().emplace(name, std::move(info)).second, "[models] architecture '" << name << "' registered twice");
  return true;
}

std::vector<std::string> arch_names() {
  std::vector<std::string> out;
  for (const auto& [name, info] : registry()) out.push_back(name);
  return out;
}

const ArchInfo& find_arch(const std::string& name) {
  const auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : arch_names()) known += (known.empty() ? "" : ", ") + n;
    MNEMO_CHECK(false, "[models] unknown architecture '" << name << "' (known: " << known << ")");
  }
  return it->second;
}

std::unique_ptr<arch::SegmentModel> build_model(const ExperimentConfig& cfg, DType dtype) {
  nn::Init init(cfg.seed, dtype);
  auto model = find_arch(cfg.model.arch).build(cfg, init);
  MNEMO_CHECK(model, "[models] the builder of '" << cfg.model.arch << "' returned no model");
  return model;
}

}  // namespace mnemo::experiments
