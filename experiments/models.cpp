#include "experiments/models.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "autograd/error.h"
#include "autograd/optim/optimizer.h"

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

bool is_fixture_entry(const std::string& name) {
  for (const char* prefix : {"input.", "expected.", "buffer."})
    if (name.rfind(prefix, 0) == 0) return true;
  return false;
}

namespace {
// " (model.rmt.abs_pos_emb: true would explain it)", or "" when `explain` knows no option.
std::string explained(const ReferenceImport& how, const std::string& ref, bool missing) {
  const std::string option = how.explain ? how.explain(ref, missing) : "";
  return option.empty() ? "" : " (" + option + " would explain it)";
}

// A reference-only buffer's values against the model's: "" when they agree.
std::string buffer_mismatch(const std::string& name, const Tensor& got, const Tensor& want) {
  std::ostringstream out;
  if (got.shape() != want.shape()) {
    out << "\n  buffer: " << name << " is " << got.shape() << " in the reference, " << want.shape() << " in the model";
    return out.str();
  }
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::abs(g[i] - w[i]) <= 1e-6 * std::abs(w[i]))) {
      out << "\n  buffer: " << name << " holds " << g[i] << " at flat index " << i << " where the model implies " << w[i];
      return out.str();
    }
  return "";
}
}  // namespace

NamedTensors import_by_name(nn::Module& model, const std::map<std::string, Tensor>& reference,
                            const ReferenceImport& how) {
  NamedTensors out;
  std::set<std::string> used;
  std::ostringstream problems;
  for (const auto& [name, p] : nn::named_params(model)) {
    const std::string ref = how.reference_name(name);
    const auto it = reference.find(ref);
    if (it == reference.end()) {
      problems << "\n  missing: " << ref << (ref == name ? "" : " (for " + name + ")") << " " << p->value.shape()
               << explained(how, ref, true);
      continue;
    }
    used.insert(ref);
    if (it->second.shape() != p->value.shape()) {
      problems << "\n  shape: " << ref << " is " << it->second.shape() << " in the reference, " << p->value.shape()
               << " in the model";
      continue;
    }
    // Converting would turn an integer tensor (a buffer or a step counter exported by
    // mistake) into plausible-looking weights, and a NaN would surface only as a NaN loss.
    if (is_floating(p->value.dtype()) && !is_floating(it->second.dtype())) {
      problems << "\n  dtype: " << ref << " is " << it->second.dtype() << " in the reference; the parameter "
               << name << " is " << p->value.dtype();
      continue;
    }
    const std::vector<double> values = it->second.to_vector();
    const auto bad = std::find_if(values.begin(), values.end(), [](double x) { return !std::isfinite(x); });
    if (bad != values.end()) {
      problems << "\n  non-finite: " << ref << " holds " << *bad << " at flat index " << (bad - values.begin())
               << " (" << std::count_if(values.begin(), values.end(), [](double x) { return !std::isfinite(x); })
               << " of " << values.size() << " values)";
      continue;
    }
    out.emplace_back(name, it->second.to(p->value.dtype()));
  }
  for (const auto& [name, want] : how.buffers) {
    const auto it = reference.find(name);
    if (it == reference.end()) continue;  // a buffer holds nothing the model needs
    used.insert(name);
    problems << buffer_mismatch(name, it->second, want);
  }
  for (const auto& [name, t] : reference)
    if (!used.count(name) && !is_fixture_entry(name) && !(how.ignorable && how.ignorable(name, t)))
      problems << "\n  unused: " << name << " " << t.shape() << explained(how, name, false);
  const std::string p = problems.str();
  MNEMO_CHECK(p.empty(), how.what << how.hint << ":" << p);
  return out;
}

NamedTensors export_by_name(nn::Module& model, const ReferenceImport& how) {
  NamedTensors out;
  std::set<std::string> names;
  const auto add = [&](const std::string& name, const Tensor& t) {
    MNEMO_CHECK(names.insert(name).second, how.what << ": two tensors would be exported as " << name);
    out.emplace_back(name, t.to(DType::f32));
  };
  for (const auto& [name, p] : nn::named_params(model)) add(how.reference_name(name), p->value);
  for (const auto& [name, t] : how.buffers) add(name, t);
  return out;
}

void refuse_export(const std::string& arch, const std::vector<std::string>& refused) {
  if (refused.empty()) return;
  std::string list;
  for (std::string r : refused) {
    for (size_t at; (at = r.find("<arch>")) != std::string::npos;) r.replace(at, 6, arch);
    list += "\n  model." + arch + "." + r;
  }
  MNEMO_CHECK(false, "[export " << arch << "] the reference implementation cannot express this model:" << list);
}

std::shared_ptr<const ArchOptions> options_or_defaults(const ExperimentConfig& cfg) {
  if (cfg.model.options) return cfg.model.options;
  return find_arch(cfg.model.arch).read_options(YamlReader(YAML::Node(YAML::NodeType::Map), "<defaults>",
                                                           "model." + cfg.model.arch),
                                                cfg.model, cfg.data);
}

void set_arch_options(ExperimentConfig& cfg, const std::string& yaml, const std::string& origin) {
  YAML::Node node = YAML::Load(yaml);
  if (node.IsNull()) node = YAML::Node(YAML::NodeType::Map);
  cfg.model.options =
      find_arch(cfg.model.arch).read_options(YamlReader(node, origin, "model." + cfg.model.arch), cfg.model, cfg.data);
}

namespace {

// A train.memory_dropout name must match a memory of the model. The names depend on the
// architecture and its options and are known only once the model is built: checked here,
// before any step, and reported at the key's location in the config.
void check_memory_dropout(const ExperimentConfig& cfg, const arch::SegmentModel& model) {
  if (cfg.train.memory_dropout.empty()) return;
  const arch::Memory memory = model.initial_memory(1);
  std::string names;
  for (const auto& [name, t] : memory) names += (names.empty() ? "" : ", ") + name;
  for (const auto& entry : cfg.train.memory_dropout) {
    const std::string& glob = entry.first;
    const bool any = std::any_of(memory.begin(), memory.end(), [&](const auto& m) { return glob_match(glob, m.first); });
    const auto at = cfg.train.memory_dropout_at.at.find(glob);
    MNEMO_CHECK(any, (at != cfg.train.memory_dropout_at.at.end() ? at->second : "train.memory_dropout." + glob)
                         << ": matches no memory of model.arch " << cfg.model.arch << " (it has: "
                         << (names.empty() ? "none" : names) << ")");
  }
}

}  // namespace

std::unique_ptr<arch::SegmentModel> build_model(const ExperimentConfig& cfg, DType dtype) {
  nn::Init init(cfg.seed, dtype);
  auto model = find_arch(cfg.model.arch).build(cfg, init);
  MNEMO_CHECK(model, "[models] the builder of '" << cfg.model.arch << "' returned no model");
  check_memory_dropout(cfg, *model);
  return model;
}

}  // namespace mnemo::experiments
