// Reference parity (tests/fixtures/memxl_a.*, made by lucidrains/memory-transformer-xl at the
// commit in the .json): the reference's weights imported through the registry's
// import_reference (the path `mnemo import` takes), reference_parity on, three segments in eval
// mode with Memory(short, long) threaded through, then segment 0's training loss and the
// gradient of every parameter. Tolerances as ../shared/parity/README.md suggests.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include <yaml-cpp/yaml.h>

#include "architectures/memxl.h"
#include "experiments/checkpoint.h"
#include "experiments/models.h"
#include "tests/support/tensor_compare.h"

using mnemo::test::max_abs_diff;
using mnemo::test::max_abs;

using namespace mnemo;
using namespace mnemo::arch;

namespace {

const std::string kFixture = std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures/memxl_a.safetensors";
constexpr int64_t kB = 2, kT = 16, kSegments = 3;

experiments::ExperimentConfig fixture_config(bool parity) {
  experiments::ExperimentConfig cfg;
  cfg.model.arch = "memxl";
  cfg.model.dim = 32, cfg.model.depth = 2, cfg.model.heads = 2, cfg.model.vocab = 256;
  cfg.data.segment_len = kT;
  experiments::set_arch_options(cfg, std::string("{mem_len: 16, lmem_len: 8, reference_parity: ") +
                                         (parity ? "true" : "false") + "}");
  return cfg;
}

struct Fixture {
  experiments::Safetensors file = experiments::read_safetensors(kFixture);
  const Tensor& at(const std::string& name) const {
    const auto it = file.tensors.find(name);
    if (it == file.tensors.end()) BOOST_FAIL("fixture has no " << name);
    return it->second;
  }
  // columns [s T, (s + 1) T) of a (B, S T) i32 stream
  Tensor segment(const std::string& name, int64_t s) const {
    const Tensor& all = at(name);
    std::vector<int32_t> v;
    for (int64_t b = 0; b < kB; ++b)
      for (int64_t i = 0; i < kT; ++i) v.push_back(int32_t(all.at({b, s * kT + i})));
    return Tensor::from_ints({kB, kT}, v);
  }
};

std::unique_ptr<SegmentModel> imported_model(const Fixture& f, bool parity) {
  const experiments::ExperimentConfig cfg = fixture_config(parity);
  auto model = experiments::build_model(cfg);
  const experiments::NamedTensors weights = experiments::find_arch("memxl").import_reference(f.file.tensors, cfg);
  BOOST_TEST(weights.size() == nn::named_params(*model).size());
  for (const auto& [name, t] : weights) nn::find_param(*model, name).value.copy_from(t);
  return model;
}

// reference name of a mnemo parameter (the inverse of the import map)
std::string reference_name(const std::string& name) {
  if (name.rfind("to_emb_dim.", 0) == 0) return "to_logits.0." + name.substr(11);
  if (name.rfind("to_logits.", 0) == 0) return "to_logits.1." + name.substr(10);
  return name;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(memxl_parity)

BOOST_AUTO_TEST_CASE(forward_logits_and_memories_of_three_segments) {
  const Fixture f;
  auto model = imported_model(f, true);
  nn::eval(*model);
  Memory mem = model->initial_memory(kB);
  for (int64_t s = 0; s < kSegments; ++s) {
    Tape tape;
    Tape::NoRecord no_record(tape);
    MemoryVars in;
    for (const auto& [name, t] : mem) in[name] = tape.constant(t);
    const SegmentOut out = model->forward(tape, f.segment("input.tokens", s), in);
    const std::string seg = "seg" + std::to_string(s);
    const double dl = max_abs_diff(out.logits.value(), f.at("expected.logits." + seg));
    const double loss = cross_entropy(out.logits, f.segment("input.labels", s)).value().item();
    const double dloss = std::abs(loss - f.at("expected.eval_loss." + seg).item());
    BOOST_TEST_MESSAGE("segment " << s << ": logits max diff " << dl << ", eval loss diff " << dloss);
    BOOST_TEST(dl <= 2e-5, "logits of segment " << s << " differ by " << dl);
    BOOST_TEST(dloss <= 1e-5);
    mem.clear();
    for (const auto& [name, v] : out.memory) mem[name] = v.value();
    for (const char* name : {"short", "long"}) {
      const double dm = max_abs_diff(mem.at(name), f.at("expected.mem." + seg + "." + name));
      BOOST_TEST_MESSAGE("  memory " << name << " " << mem.at(name).shape() << " max diff " << dm);
      BOOST_TEST(dm <= 2e-5, "memory " << name << " after segment " << s << " differs by " << dm);
    }
  }
}

BOOST_AUTO_TEST_CASE(training_loss_and_gradients_of_segment_0) {
  const Fixture f;
  auto model = imported_model(f, true);
  nn::train(*model);
  Tape tape;
  MemoryVars in;
  for (const auto& [name, t] : model->initial_memory(kB)) in[name] = tape.constant(t);
  const SegmentOut out = model->forward(tape, f.segment("input.tokens", 0), in);
  Var loss = cross_entropy(out.logits, f.segment("input.labels", 0));
  BOOST_TEST(std::abs(loss.value().item() - f.at("expected.loss.seg0").item()) <= 1e-5);
  tape.backward(loss);

  double largest = 0;  // the largest |g_ref| of the model, for the absolute floor
  for (const auto& [name, t] : f.file.tensors)
    if (name.rfind("expected.grad.", 0) == 0) largest = std::max(largest, max_abs(t));
  int checked = 0, without = 0;
  for (auto& [name, p] : nn::named_params(*model)) {
    const auto it = f.file.tensors.find("expected.grad." + reference_name(name));
    if (it == f.file.tensors.end()) {  // the writer: its output is not used by segment 0's loss
      BOOST_TEST((!p->grad.defined() || max_abs(p->grad) == 0.0), name << " should get no gradient");
      ++without;
      continue;
    }
    BOOST_REQUIRE_MESSAGE(p->grad.defined(), name << " got no gradient");
    const double err = max_abs_diff(p->grad, it->second);
    const double tol = 1e-4 * max_abs(it->second) + 1e-6 * largest;
    BOOST_TEST(err <= tol, name << ": gradient differs by " << err << " (tolerance " << tol << ")");
    ++checked;
  }
  BOOST_TEST_MESSAGE(checked << " gradients compared, " << without << " parameters without gradient");
  BOOST_TEST(checked == 68);   // every model parameter outside the writer (the fixture's 70 minus 2 empty mem_kv)
  BOOST_TEST(without == 16);   // the writer's, without its empty mem_kv
}

BOOST_AUTO_TEST_CASE(intended_behaviour_differs_from_the_reference) {
  // The same weights with reference_parity off. Segment 0 has no memory, and with D = 32 >=
  // mem_len + lmem_len = 24 the reference's window (P4) ends at the table's end, so its rows are
  // the distance rows: the logits agree. Later segments differ by P1 (normalised memories) and
  // P2 (the writer's head merge).
  const Fixture f;
  auto model = imported_model(f, false);
  nn::eval(*model);
  Memory mem = model->initial_memory(kB);
  for (int64_t s = 0; s < kSegments; ++s) {
    Tape tape;
    MemoryVars in;
    for (const auto& [name, t] : mem) in[name] = tape.constant(t);
    const SegmentOut out = model->forward(tape, f.segment("input.tokens", s), in);
    const double dl = max_abs_diff(out.logits.value(), f.at("expected.logits.seg" + std::to_string(s)));
    BOOST_TEST_MESSAGE("intended, segment " << s << ": logits differ from the reference by " << dl);
    if (s == 0)
      BOOST_TEST(dl <= 2e-5);
    else
      BOOST_TEST(dl > 1e-3);
    mem.clear();
    for (const auto& [name, v] : out.memory) mem[name] = v.value();
  }
}

BOOST_AUTO_TEST_CASE(import_names_every_missing_and_unused_tensor) {
  const Fixture f;
  std::map<std::string, Tensor> ref = f.file.tensors;
  ref.erase("memory_network.init_lmem");
  ref["attn_layers.0.fn.fn.extra"] = Tensor::zeros({2});
  const experiments::ExperimentConfig cfg = fixture_config(true);
  try {
    experiments::find_arch("memxl").import_reference(ref, cfg);
    BOOST_FAIL("import accepted a state dict with a missing and an unused tensor");
  } catch (const Error& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("missing: memory_network.init_lmem") != std::string::npos, msg);
    BOOST_TEST(msg.find("unused: attn_layers.0.fn.fn.extra") != std::string::npos, msg);
  }
  // a model of another shape: lmem_len 4 cannot take the fixture's (1, 8, 32) positions
  experiments::ExperimentConfig other = cfg;
  experiments::set_arch_options(other, "{mem_len: 16, lmem_len: 4}");
  BOOST_CHECK_THROW(experiments::find_arch("memxl").import_reference(f.file.tensors, other), Error);
}

BOOST_AUTO_TEST_SUITE_END()
