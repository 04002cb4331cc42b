// Reference parity (tests/fixtures/rmt_a.*, made with lucidrains' recurrent-memory-transformer
// 520a357): the reference's state dict imported through `import_reference` (the path of
// `mnemo import`), then with reference_parity: true
//   - eval logits, write memories and XL caches of 3 segments, XL threaded through (the model
//     API convention), and the reference wrapper's own loop (read memories only);
//   - the loss of segment 0 in train mode and its gradient for every parameter,
// within the tolerances of ../shared/parity/README.md.
#include <boost/test/unit_test.hpp>

#include <yaml-cpp/yaml.h>

#include "experiments/checkpoint.h"
#include "experiments/models.h"
#include "tests/architectures/rmt/rmt_test_util.h"

using namespace mnemo;
using namespace mnemo::test_rmt;
using namespace mnemo::experiments;

namespace {

const std::string kFixture = std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures/rmt_a.safetensors";
constexpr int64_t kB = 2, kT = 16, kSegments = 3, kHeads = 2, kXl = 8, kDimHead = 16;

ExperimentConfig fixture_config() {
  ExperimentConfig cfg;
  cfg.model.arch = "rmt";
  cfg.model.dim = 32;
  cfg.model.depth = 2;
  cfg.model.heads = 2;
  cfg.model.vocab = 256;
  cfg.data.segment_len = kT;
  set_arch_options(cfg, "{num_memory_tokens: 4, dim_head: 16, xl_mem_len: 8, reference_parity: true}");
  return cfg;
}

struct Fixture {
  Safetensors file = read_safetensors(kFixture);
  const Tensor& at(const std::string& name) const {
    const auto it = file.tensors.find(name);
    BOOST_REQUIRE_MESSAGE(it != file.tensors.end(), "the fixture has no " << name);
    return it->second;
  }
};

// The model built from the config with the reference weights imported by name.
std::unique_ptr<arch::SegmentModel> imported_model(const Fixture& f) {
  const ExperimentConfig cfg = fixture_config();
  auto model = build_model(cfg);
  const NamedTensors weights = find_arch("rmt").import_reference(f.file.tensors, cfg);
  BOOST_TEST(weights.size() == nn::params(*model).size());  // every parameter comes from the file
  for (const auto& [name, t] : weights) {
    Param& p = nn::find_param(*model, name);
    BOOST_REQUIRE_MESSAGE(p.value.shape() == t.shape(), name << ": " << p.value.shape() << " vs " << t.shape());
    p.value.copy_from(t);
  }
  return model;
}

// The reference's XL cache (2, B, H, L, d) in mnemo's layout (B, 2, H, L, d).
Tensor reference_xl_layout(const Tensor& ref) {
  const auto v = ref.to_vector();
  std::vector<double> out(v.size());
  const int64_t inner = kHeads * kXl * kDimHead;
  for (int64_t kv = 0; kv < 2; ++kv)
    for (int64_t b = 0; b < kB; ++b)
      for (int64_t i = 0; i < inner; ++i) out[size_t((b * 2 + kv) * inner + i)] = v[size_t((kv * kB + b) * inner + i)];
  return Tensor::from({kB, 2, kHeads, kXl, kDimHead}, out);
}

double cross_entropy_of(const Tensor& logits, const Tensor& labels) {
  Tape tape;
  return cross_entropy(tape.constant(logits), labels, -1).value().item();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(rmt_parity)

BOOST_AUTO_TEST_CASE(logits_and_memories_of_three_segments_with_xl) {
  const Fixture f;
  auto model = imported_model(f);
  nn::eval(*model);
  const Tensor tokens = f.at("input.tokens"), labels = f.at("input.labels");
  BOOST_REQUIRE(tokens.dtype() == DType::i32 && tokens.shape() == (Shape{kB, kSegments * kT}));
  arch::Memory mem = model->initial_memory(kB);
  for (int64_t i = 0; i < kSegments; ++i) {
    const std::string seg = "seg" + std::to_string(i);
    const Run r = run(*model, {columns(tokens, i * kT, kT)}, mem);
    mem = r.memory[0];
    BOOST_TEST_MESSAGE("segment " << i << ": max |logits - reference| "
                                  << max_abs_diff(r.logits[0], f.at("expected.logits." + seg)) << ", write memory "
                                  << max_abs_diff(mem.at("write"), f.at("expected.mem." + seg + ".write")));
    BOOST_TEST_CONTEXT("segment " << i) {
      BOOST_TEST(max_abs_diff(r.logits[0], f.at("expected.logits." + seg)) <= 2e-5);
      BOOST_TEST(std::abs(cross_entropy_of(r.logits[0], columns(labels, i * kT, kT)) -
                          f.at("expected.eval_loss." + seg).item()) <= 1e-5);
      BOOST_TEST(max_abs_diff(mem.at("write"), f.at("expected.mem." + seg + ".write")) <= 2e-5);
      for (const char* xl : {"xl.0", "xl.1"}) {
        BOOST_TEST(mem.at(xl).shape() == (Shape{kB, 2, kHeads, kXl, kDimHead}), xl);
        BOOST_TEST(max_abs_diff(mem.at(xl), reference_xl_layout(f.at("expected.mem." + seg + "." + xl))) <= 2e-5, xl);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(reference_wrapper_loop_carries_read_memories_only) {
  // RecurrentMemoryTransformerWrapper.forward never passes XL memories back in (P2): each
  // call here gets the carried write memory and empty caches.
  const Fixture f;
  auto model = imported_model(f);
  nn::eval(*model);
  const Tensor tokens = f.at("input.tokens");
  const arch::Memory initial = model->initial_memory(kB);
  arch::Memory mem = initial;
  for (int64_t i = 0; i < kSegments; ++i) {
    const std::string seg = "seg" + std::to_string(i);
    const Run r = run(*model, {columns(tokens, i * kT, kT)}, mem);
    mem = initial;
    mem["write"] = r.memory[0].at("write");
    BOOST_TEST_CONTEXT("segment " << i) {
      BOOST_TEST(max_abs_diff(r.logits[0], f.at("expected.wrapper_logits." + seg)) <= 2e-5);
      BOOST_TEST(max_abs_diff(mem.at("write"), f.at("expected.wrapper_mem." + seg + ".write")) <= 2e-5);
    }
  }
}

BOOST_AUTO_TEST_CASE(loss_and_gradients_of_segment_zero) {
  const Fixture f;
  auto model = imported_model(f);
  nn::train(*model);  // every dropout of rmt_a is 0: train and eval agree
  for (Param* p : nn::params(*model)) p->zero_grad();
  Tape tape;
  arch::SegmentOut o = model->forward(tape, columns(f.at("input.tokens"), 0, kT),
                                      constants(tape, model->initial_memory(kB)));
  Var loss = cross_entropy(o.logits, columns(f.at("input.labels"), 0, kT), -1);
  BOOST_TEST(std::abs(loss.value().item() - f.at("expected.loss.seg0").item()) <= 1e-5);
  tape.backward(loss);

  // The expected gradients carry the reference's parameter names: the importer maps them.
  std::map<std::string, Tensor> ref_grads;
  const std::string prefix = "expected.grad.";
  for (const auto& [name, t] : f.file.tensors)
    if (name.rfind(prefix, 0) == 0) ref_grads[name.substr(prefix.size())] = t;
  const NamedTensors expected = find_arch("rmt").import_reference(ref_grads, fixture_config());
  BOOST_TEST(expected.size() == nn::params(*model).size());  // every parameter gets a gradient
  double largest = 0;
  for (const auto& [name, g] : expected) largest = std::max(largest, max_abs(g));
  double worst = 0;  // the largest error as a fraction of its tolerance
  for (const auto& [name, g_ref] : expected) {
    const Param& p = nn::find_param(*model, name);
    BOOST_REQUIRE_MESSAGE(p.grad.defined(), name << " got no gradient");
    const double err = max_abs_diff(p.grad, g_ref), tol = 1e-4 * max_abs(g_ref) + 1e-6 * largest;
    worst = std::max(worst, err / tol);
    BOOST_TEST(err <= tol, name << ": max |g - g_ref| " << err << " > " << tol);
  }
  BOOST_TEST_MESSAGE("gradients: worst error / tolerance " << worst);
}

BOOST_AUTO_TEST_CASE(import_names_every_missing_and_unused_tensor) {
  const Fixture f;
  std::map<std::string, Tensor> sd = f.file.tensors;
  sd.erase("layers.1.0.branch.null_kv");
  sd["layers.9.extra"] = Tensor::zeros({1});
  try {
    find_arch("rmt").import_reference(sd, fixture_config());
    BOOST_FAIL("import accepted a state dict with a missing and an unused tensor");
  } catch (const Error& e) {
    const std::string what = e.what();
    BOOST_TEST(what.find("missing: layers.1.0.branch.null_kv") != std::string::npos, what);
    BOOST_TEST(what.find("unused: layers.9.extra") != std::string::npos, what);
  }
}

BOOST_AUTO_TEST_SUITE_END()
