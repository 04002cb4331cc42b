// The architecture registry: `model.arch` in a config names an entry here. An entry reads
// model.<arch> into the architecture's typed config struct when the config loads (defaults
// and rules live with the struct, in architectures/), builds the SegmentModel from it and,
// where a PyTorch reference implementation exists, maps that reference's state dict onto
// the model's parameter names (`mnemo import`). Each architecture registers itself from its
// own experiments/arch_<name>.cpp with arch_entry<Traits>(), so adding one touches no shared file.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "architectures/options.h"
#include "architectures/segment_model.h"
#include "experiments/checkpoint.h"
#include "experiments/config.h"
#include "experiments/yaml_emit.h"
#include "layers/init.h"

namespace mnemo::experiments {

struct ArchInfo {
  std::string name;
  std::string summary;  // one line for `mnemo train --help` and error messages
  // model.<arch> (the map `r` reads; empty when absent) -> the typed, resolved options. Throws
  // with file:line:col and the dotted key.
  std::function<std::shared_ptr<const ArchOptions>(YamlReader r, const ModelConfig&, const DataConfig&)> read_options;
  std::function<std::unique_ptr<arch::SegmentModel>(const ExperimentConfig&, nn::Init&)> build;
  // Reference state dict (its names) -> the model's state dict (mnemo names). Empty when the
  // architecture has no reference implementation. Throws naming every missing/unused tensor.
  std::function<NamedTensors(const std::map<std::string, Tensor>& reference, const ExperimentConfig&)> import_reference;
  // The model's weights (a built model holding them) -> the reference's state dict: its names,
  // shapes, f32, its persistent buffers, nothing else (`mnemo export`). Empty when the
  // architecture has no reference. Throws naming the option when the reference cannot express
  // the configured model.
  std::function<NamedTensors(nn::Module& model, const ExperimentConfig&)> export_reference;
  // The option of model.<arch> set to a value that acts only through gradients crossing a
  // segment boundary on one tape (a compressor trained by a later segment's loss), or "".
  // A run whose tapes hold one segment refuses it at load: it would change nothing.
  std::function<std::string(const ArchOptions&)> cross_segment_option = {};
};

// The common half of every import_reference: each model parameter is looked up in
// `reference` under reference_name(its name) and must be there with its shape (converted to
// the parameter's dtype); each reference tensor must be used, except parity-fixture entries
// (input.*, expected.*, buffer.*), the reference-only `buffers` (checked against their values
// when present) and those `ignorable` accepts. One error names every missing, unused and
// mis-shaped tensor, each with the option `explain` says would account for it, after `what`
// and before `hint`.
struct ReferenceImport {
  std::string what;  // "[import brt] the reference state dict does not match model.brt"
  std::function<std::string(const std::string&)> reference_name = [](const std::string& n) { return n; };
  std::function<bool(const std::string&, const Tensor&)> ignorable = {};
  std::string hint = {};
  // Tensors of the reference's state dict that are no parameter of the model (persistent
  // buffers such as RMT's rotary_pos_emb.inv_freq, BRT's zero LayerNorm betas, MemXL's empty
  // mem_kv), under the reference's names, holding the values the model implies. Export writes
  // them; import accepts them when their values agree (to 1e-6, relative) and names them when not.
  NamedTensors buffers = {};
  // (reference name, missing: true / unused: false) -> the option that would explain it, as
  // "model.rmt.abs_pos_emb: true", or "" when none does.
  std::function<std::string(const std::string&, bool missing)> explain = {};
};
NamedTensors import_by_name(nn::Module& model, const std::map<std::string, Tensor>& reference,
                            const ReferenceImport& how);
// The other direction: every parameter of `model` under reference_name(its name), as f32 (the
// reference's dtype), then how.buffers; two tensors under one name are an error.
NamedTensors export_by_name(nn::Module& model, const ReferenceImport& how);
// Throws "[export rmt] the reference implementation cannot express this model:" and each of
// `refused` ("option: value (why)") when there is any.
// A model trained with mnemo's fixes on (reference_parity: false) has the reference's weights
// but not its numerics: export refuses it; `--set model.<arch>.reference_parity=true` exports
// the same weights to be run under the reference's numerics.
inline constexpr const char* kParityOff =
    "reference_parity: false (mnemo's fixes of the reference's numerics are on; --set "
    "model.<arch>.reference_parity=true exports the same weights to be run under the reference's numerics)";
void refuse_export(const std::string& arch, const std::vector<std::string>& refused);
bool is_fixture_entry(const std::string& name);  // input.*, expected.*, buffer.*: not weights

bool register_arch(ArchInfo info);  // returns true, for static registration
const ArchInfo& find_arch(const std::string& name);  // unknown: an error listing the known ones
std::vector<std::string> arch_names();

// Builds model.arch with weights drawn from an Init seeded by cfg.seed.
std::unique_ptr<arch::SegmentModel> build_model(const ExperimentConfig& cfg, DType dtype = DType::f32);

// cfg.model.options, or model.arch's defaults for cfg when none were read (a config made in code).
std::shared_ptr<const ArchOptions> options_or_defaults(const ExperimentConfig& cfg);
// Reads `yaml` (a YAML map) as model.<arch> of cfg into cfg.model.options, as load_config
// would; for configs made in code (tests, tools). Errors name `origin`.
void set_arch_options(ExperimentConfig& cfg, const std::string& yaml, const std::string& origin = "<code>");

// ---- typed options: one entry per architecture ---------------------------------------------
//
// Traits name an architecture's config struct and how it is visited and resolved:
//   struct RmtTraits {
//     using Config = arch::RmtConfig;
//     template <class Self, class V> static void visit(Self& c, V&& v) { Config::visit_options(c, v); }
//     static Config resolve(const Config& c) { return arch::resolved(c); }
//   };
// and optionally `static std::string cross_segment_option(const Config&)` (ArchInfo's).
// The config struct holds vocab, dim, depth, heads and seq_len besides its options; they come
// from model.* and data.segment_len.

// The resolved config struct behind ArchOptions.
template <class Config>
class ConfigOptions : public ArchOptions {
 public:
  explicit ConfigOptions(Config c) : config(std::move(c)) {}
  const Config config;  // resolved: no sentinel left
};

template <class Traits>
class TypedOptions final : public ConfigOptions<typename Traits::Config> {
 public:
  using ConfigOptions<typename Traits::Config>::ConfigOptions;
  void emit(YAML::Emitter& e) const override {
    e << YAML::BeginMap;
    Traits::visit(this->config, [&](const char* key, const auto& v) { put(e, key, v); });
    e << YAML::EndMap;
  }
};

// cfg's model.<arch> as the architecture's config struct (arch::RmtConfig, ...), shaped by
// model.* and data.segment_len; throws when model.arch keeps another struct or the options
// were resolved for another shape.
template <class Config>
Config options_as(const ExperimentConfig& cfg) {
  const auto options = options_or_defaults(cfg);
  const auto* typed = dynamic_cast<const ConfigOptions<Config>*>(options.get());
  MNEMO_CHECK(typed, "[models] model." << cfg.model.arch << " does not hold the options asked for");
  const Config& c = typed->config;
  MNEMO_CHECK(c.vocab == cfg.model.vocab && c.dim == cfg.model.dim && c.depth == cfg.model.depth &&
                  c.heads == cfg.model.heads && c.seq_len == cfg.data.segment_len,
              "[models] model." << cfg.model.arch << " was resolved for another model.* or data.segment_len: read the "
                                   "config again after changing them");
  return c;
}

template <class Config>
Config with_shape(Config c, const ModelConfig& m, const DataConfig& d) {
  c.vocab = m.vocab, c.dim = m.dim, c.depth = m.depth, c.heads = m.heads, c.seq_len = d.segment_len;
  return c;
}

// Every integer option of an architecture is a size, a count or a small sentinel; bounding
// them here keeps a typo such as mem_len: 4611686018427387904 a located config error instead
// of an overflowing shape deep inside the model's constructor.
struct OptionBound {
  static constexpr int64_t kMost = int64_t(1) << 24;
  template <class T> requires(!yaml_detail::is_vector<T>::value)  // a list is checked element by element
  std::string operator()(const T& v) const {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (std::cmp_greater(v, kMost)) return "must be at most " + std::to_string(kMost);
    }
    return "";
  }
};

template <class Traits>
std::shared_ptr<const ArchOptions> read_typed_options(YamlReader r, const ModelConfig& m, const DataConfig& d) {
  using Config = typename Traits::Config;
  Config c = with_shape(Config{}, m, d);
  Traits::visit(c, [&]<class T>(const char* key, T& field) {
    if constexpr (requires { typename T::value_type; field.has_value(); }) {
      if (r.has(key)) field = r.get(key, typename T::value_type{}, OptionBound{});
    } else {
      field = r.get(key, field, OptionBound{});
    }
  });
  r.reject_unknown_keys();
  try {
    return std::make_shared<TypedOptions<Traits>>(Traits::resolve(c));
  } catch (const arch::OptionError& e) {
    r.fail(e.key(), e.what());
  }
}

template <class Traits>
ArchInfo arch_entry(
    std::string name, std::string summary,
    std::function<std::unique_ptr<arch::SegmentModel>(const typename Traits::Config&, nn::Init&)> build,
    std::function<NamedTensors(const std::map<std::string, Tensor>&, const typename Traits::Config&)> import = {},
    std::function<NamedTensors(nn::Module&, const typename Traits::Config&)> export_ = {}) {
  ArchInfo info{.name = std::move(name), .summary = std::move(summary), .read_options = read_typed_options<Traits>,
                .build = {}, .import_reference = {}, .export_reference = {}};
  info.build = [build](const ExperimentConfig& cfg, nn::Init& init) { return build(options_as<typename Traits::Config>(cfg), init); };
  if (import)
    info.import_reference = [import](const std::map<std::string, Tensor>& ref, const ExperimentConfig& cfg) {
      return import(ref, options_as<typename Traits::Config>(cfg));
    };
  if (export_)
    info.export_reference = [export_](nn::Module& model, const ExperimentConfig& cfg) {
      return export_(model, options_as<typename Traits::Config>(cfg));
    };
  if constexpr (requires(const typename Traits::Config& c) { Traits::cross_segment_option(c); })
    info.cross_segment_option = [](const ArchOptions& o) {
      return Traits::cross_segment_option(dynamic_cast<const ConfigOptions<typename Traits::Config>&>(o).config);
    };
  return info;
}

}  // namespace mnemo::experiments

#define MNEMO_ARCH_CONCAT_(a, b) a##b
#define MNEMO_ARCH_CONCAT(a, b) MNEMO_ARCH_CONCAT_(a, b)
// MNEMO_REGISTER_ARCH(ArchInfo{...}); at namespace scope in experiments/arch_<name>.cpp.
#define MNEMO_REGISTER_ARCH(...) \
  [[maybe_unused]] static const bool MNEMO_ARCH_CONCAT(mnemo_arch_registered_, __LINE__) = \
      ::mnemo::experiments::register_arch(__VA_ARGS__)
