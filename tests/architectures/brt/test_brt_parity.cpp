// Parity with the PyTorch reference (tests/fixtures/brt_a.*, see ../shared/parity/README.md):
// weights imported through import_reference (the `mnemo import` path), 3 segments of 16 tokens
// (2 blocks of 8) in eval mode with memories threaded, logits / memories / losses per segment,
// then the gradients of segment 0's loss for every parameter.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <set>

#include "architectures/brt.h"
#include "experiments/checkpoint.h"
#include "experiments/models.h"
#include "tests/support/tensor_compare.h"

using mnemo::test::max_abs_diff;
using mnemo::test::max_abs;

using namespace mnemo;
using namespace mnemo::arch;
using namespace mnemo::experiments;

namespace {

const std::string kFixture = std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures/brt_a.safetensors";
constexpr int64_t kT = 16, kSegments = 3;

ExperimentConfig fixture_config() {
  ExperimentConfig c;
  c.model.arch = "brt";
  c.model.dim = 32, c.model.depth = 2, c.model.heads = 2, c.model.vocab = 256;
  c.data.segment_len = kT;
  set_arch_options(c, "{block_width: 8, num_state_vectors: 8, recurrent_layers: [2], reference_parity: true}");
  return c;
}

bool is_state_dict(const std::string& n) {
  return n.rfind("input.", 0) != 0 && n.rfind("expected.", 0) != 0 && n.rfind("buffer.", 0) != 0;
}

std::map<std::string, Tensor> state_dict(const Safetensors& f) {
  std::map<std::string, Tensor> sd;
  for (const auto& [n, t] : f.tensors)
    if (is_state_dict(n)) sd.emplace(n, t);
  return sd;
}

// i32 (B, L) columns [t0, t0 + n)
Tensor cols(const Tensor& x, int64_t t0, int64_t n) {
  std::vector<int32_t> v;
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t t = t0; t < t0 + n; ++t) v.push_back(x.data<int32_t>()[b * x.dim(1) + t]);
  return Tensor::from_ints({x.dim(0), n}, v);
}

// mnemo's "xl.<l>" (B, n, 2d) [k | v] as the fixture's (2, B, n, d)
Tensor as_reference_xl(const Tensor& m) {
  Tape tape;
  Tape::NoRecord nr(tape);
  const int64_t B = m.dim(0), n = m.dim(1), d = m.dim(2) / 2;
  return permute(reshape(tape.constant(m), {B, n, 2, d}), {2, 0, 1, 3}).value();
}

std::unique_ptr<SegmentModel> imported_model(const Safetensors& f) {
  const ExperimentConfig cfg = fixture_config();
  std::unique_ptr<SegmentModel> m = build_model(cfg);
  for (auto& [name, t] : find_arch("brt").import_reference(state_dict(f), cfg)) nn::find_param(*m, name).value = t;
  return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(brt_parity)

BOOST_AUTO_TEST_CASE(import_names_every_tensor) {
  const Safetensors f = read_safetensors(kFixture);
  const ExperimentConfig cfg = fixture_config();
  std::unique_ptr<SegmentModel> m = build_model(cfg);
  const NamedTensors w = find_arch("brt").import_reference(state_dict(f), cfg);
  BOOST_TEST(w.size() == nn::named_params(*m).size());
  // a tensor too many or too few is an error naming it
  std::map<std::string, Tensor> sd = state_dict(f);
  sd["layers.0.0.extra"] = Tensor::zeros({1});
  sd.erase("layers.1.0.state_container.init_state");
  try {
    find_arch("brt").import_reference(sd, cfg);
    BOOST_FAIL("import accepted a mismatched state dict");
  } catch (const Error& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("layers.0.0.extra") != std::string::npos);
    BOOST_TEST(msg.find("layers.1.0.state_container.init_state") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(rotary_tables_match_the_reference_buffers) {
  const Safetensors f = read_safetensors(kFixture);
  nn::Init init(0);
  const nn::Rotary rope(init, 16, 10000, true, 512, 16);
  std::vector<int64_t> pos(16);
  for (int64_t i = 0; i < 16; ++i) pos[size_t(i)] = i;
  auto [cos, sin] = rope.tables(pos, DType::f32, +1);
  const auto freqs = f.tensors.at("buffer.rotary_pos_emb.cached_freqs").to_vector();
  const auto scales = f.tensors.at("buffer.rotary_pos_emb.cached_scales").to_vector();
  const auto c = cos.to_vector(), s = sin.to_vector();
  double worst = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    worst = std::max(worst, std::abs(c[i] - std::cos(freqs[i]) * scales[i]));
    worst = std::max(worst, std::abs(s[i] - std::sin(freqs[i]) * scales[i]));
  }
  BOOST_TEST(worst < 1e-6);
}

BOOST_AUTO_TEST_CASE(logits_and_memories_of_three_segments) {
  const Safetensors f = read_safetensors(kFixture);
  std::unique_ptr<SegmentModel> m = imported_model(f);
  nn::eval(*m);
  const Tensor tokens = f.tensors.at("input.tokens"), labels = f.tensors.at("input.labels");
  Memory mem = m->initial_memory(2);
  for (int64_t s = 0; s < kSegments; ++s) {
    Tape tape;
    Tape::NoRecord nr(tape);
    MemoryVars in;
    for (auto& [name, t] : mem) in[name] = tape.constant(t);
    SegmentOut o = m->forward(tape, cols(tokens, s * kT, kT), in);
    const std::string seg = "seg" + std::to_string(s);
    BOOST_TEST_MESSAGE(seg << " logits max diff " << max_abs_diff(o.logits.value(), f.tensors.at("expected.logits." + seg)));
    BOOST_TEST(max_abs_diff(o.logits.value(), f.tensors.at("expected.logits." + seg)) <= 2e-5);
    const double loss = cross_entropy(o.logits, cols(labels, s * kT, kT)).value().item();
    BOOST_TEST(std::abs(loss - f.tensors.at("expected.eval_loss." + seg).item()) <= 1e-5);
    mem.clear();
    for (auto& [name, v] : o.memory) mem[name] = v.value();
    for (const char* xl : {"xl.0", "xl.1"})
      BOOST_TEST(max_abs_diff(as_reference_xl(mem.at(xl)), f.tensors.at("expected.mem." + seg + "." + xl)) <= 2e-5, xl);
    BOOST_TEST(max_abs_diff(mem.at("state.0"), f.tensors.at("expected.mem." + seg + ".state.0")) <= 2e-5);
  }
}

BOOST_AUTO_TEST_CASE(gradients_of_segment_0) {
  const Safetensors f = read_safetensors(kFixture);
  std::unique_ptr<SegmentModel> m = imported_model(f);
  nn::train(*m);
  Tape tape;
  MemoryVars in;
  for (auto& [name, t] : m->initial_memory(2)) in[name] = tape.constant(t);
  SegmentOut o = m->forward(tape, cols(f.tensors.at("input.tokens"), 0, kT), in);
  Var loss = cross_entropy(o.logits, cols(f.tensors.at("input.labels"), 0, kT));
  BOOST_TEST(std::abs(loss.value().item() - f.tensors.at("expected.loss.seg0").item()) <= 1e-5);
  tape.backward(loss);
  // the expected gradients under mnemo names: import maps them like weights
  std::map<std::string, Tensor> ref_grads;
  for (const auto& [n, t] : state_dict(f)) {
    const auto g = f.tensors.find("expected.grad." + n);
    ref_grads.emplace(n, g != f.tensors.end() ? g->second : t);  // zero LN buffers stay as they are
  }
  double largest = 0;
  for (const auto& [n, t] : f.tensors)
    if (n.rfind("expected.grad.", 0) == 0) largest = std::max(largest, max_abs(t));
  int64_t checked = 0;
  for (auto& [name, g_ref] : find_arch("brt").import_reference(ref_grads, fixture_config())) {
    const Param& p = nn::find_param(*m, name);
    BOOST_REQUIRE_MESSAGE(p.grad.defined(), name << " got no gradient");
    const double err = max_abs_diff(p.grad, g_ref), tol = 1e-4 * max_abs(g_ref) + 1e-6 * largest;
    BOOST_TEST(err <= tol, name << ": max diff " << err << " > " << tol);
    ++checked;
  }
  BOOST_TEST(checked == int64_t(nn::named_params(*m).size()));
}

BOOST_AUTO_TEST_CASE(default_mode_differs_by_P1_only_where_qk_norm_is) {
  // Without reference_parity the recurrent layer's QK-normed logits are scaled by 8, not 1/4:
  // the same weights then give clearly different logits.
  const Safetensors f = read_safetensors(kFixture);
  ExperimentConfig cfg = fixture_config();
  set_arch_options(cfg, "{block_width: 8, num_state_vectors: 8, recurrent_layers: [2], reference_parity: false}");
  std::unique_ptr<SegmentModel> m = build_model(cfg);
  for (auto& [name, t] : find_arch("brt").import_reference(state_dict(f), cfg)) nn::find_param(*m, name).value = t;
  Tape tape;
  Tape::NoRecord nr(tape);
  MemoryVars in;
  for (auto& [name, t] : m->initial_memory(2)) in[name] = tape.constant(t);
  const Tensor logits = m->forward(tape, cols(f.tensors.at("input.tokens"), 0, kT), in).logits.value();
  BOOST_TEST(max_abs_diff(logits, f.tensors.at("expected.logits.seg0")) > 1e-2);
}

BOOST_AUTO_TEST_SUITE_END()
