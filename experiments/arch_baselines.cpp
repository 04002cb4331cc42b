// model.arch: transformer | transformer_xl (architectures/transformer.h: TransformerConfig holds
// the options, their defaults and rules).
//   model.transformer:    {ff_mult: 4, dropout: 0}
//   model.transformer_xl: {ff_mult: 4, dropout: 0, mem_len: segment_len}
#include "architectures/transformer.h"
#include "experiments/models.h"

namespace mnemo::experiments {
namespace {

template <bool XL>
struct BaselineTraits {
  using Config = arch::TransformerConfig;
  template <class Self, class V> static void visit(Self& c, V&& v) { Config::visit_options(c, v, XL); }
  static Config resolve(const Config& c) { return arch::resolved(c, XL); }
};

MNEMO_REGISTER_ARCH(arch_entry<BaselineTraits<false>>(
    "transformer", "pre-norm transformer, each segment alone (no memory)",
    [](const arch::TransformerConfig& c, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::Transformer>(init, c);
    }));

MNEMO_REGISTER_ARCH(arch_entry<BaselineTraits<true>>(
    "transformer_xl", "Transformer-XL: per-layer hidden-state memory of mem_len, relative positions",
    [](const arch::TransformerConfig& c, nn::Init& init) -> std::unique_ptr<arch::SegmentModel> {
      return std::make_unique<arch::TransformerXL>(init, c);
    }));

}  // namespace
}  // namespace mnemo::experiments
