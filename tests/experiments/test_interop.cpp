// Moving weights to and from the PyTorch reference implementations (issue 23):
//   - for each parity fixture (a reference state dict, tests/fixtures/*_a.safetensors), import
//     then export gives back the fixture's state dict byte for byte: the same names, dtypes,
//     shapes and values, nothing more;
//   - for a model of each architecture trained a few steps, export then import gives the same
//     logits;
//   - persistent buffers (RMT's rotary inv_freq) are written on export and checked on import;
//   - what the reference cannot express is refused naming the option, and names that do not
//     fit name the option that would explain them.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "experiments/checkpoint.h"
#include "experiments/models.h"
#include "experiments/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/error_of.h"

using namespace mnemo;
using namespace mnemo::experiments;

namespace {

struct FixtureCase {
  const char* file;     // tests/fixtures/<file>.safetensors
  const char* arch;
  const char* options;  // model.<arch>, as the parity tests configure it
};

const FixtureCase kFixtures[] = {
    {"rmt_a", "rmt", "{num_memory_tokens: 4, dim_head: 16, xl_mem_len: 8, abs_pos_emb: true, reference_parity: true}"},
    {"brt_a", "brt", "{block_width: 8, num_state_vectors: 8, recurrent_layers: [2], reference_parity: true}"},
    {"ct_a", "compressive", "{mem_len: 16, cmem_len: 4, cmem_ratio: 4, memory_layers: [1, 2], reference_parity: true}"},
    {"memxl_a", "memxl", "{mem_len: 16, lmem_len: 8, reference_parity: true}"},
};

ExperimentConfig fixture_config(const FixtureCase& f) {
  ExperimentConfig c;
  c.model.arch = f.arch;
  c.model.dim = 32, c.model.depth = 2, c.model.heads = 2, c.model.vocab = 256;
  c.data.segment_len = 16;
  set_arch_options(c, f.options);
  return c;
}

std::map<std::string, Tensor> state_dict_of(const Safetensors& f) {
  std::map<std::string, Tensor> sd;
  for (const auto& [n, t] : f.tensors)
    if (!is_fixture_entry(n)) sd.emplace(n, t);
  return sd;
}

// `model` holding `weights`, exported and read back as the file `mnemo export` writes.
std::map<std::string, Tensor> export_through_file(const ExperimentConfig& cfg, arch::SegmentModel& model) {
  const NamedTensors sd = find_arch(cfg.model.arch).export_reference(model, cfg);
  return decode_safetensors(encode_safetensors(sd, {{"format", "pt"}})).tensors;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}

using mnemo::test::error_of;

}  // namespace

BOOST_AUTO_TEST_SUITE(interop)

BOOST_AUTO_TEST_CASE(import_then_export_gives_back_each_fixture_state_dict_byte_for_byte) {
  for (const FixtureCase& fc : kFixtures) {
    BOOST_TEST_CONTEXT(fc.file) {
      const Safetensors file = read_safetensors(std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures/" + fc.file + ".safetensors");
      const std::map<std::string, Tensor> reference = state_dict_of(file);
      const ExperimentConfig cfg = fixture_config(fc);
      auto model = build_model(cfg);
      restore_weights(*model, find_arch(fc.arch).import_reference(file.tensors, cfg));
      const std::map<std::string, Tensor> exported = export_through_file(cfg, *model);
      BOOST_TEST(exported.size() == reference.size());
      for (const auto& [name, t] : exported)
        BOOST_TEST(reference.count(name) == 1u, "exported " << name << ", which the reference state dict lacks");
      for (const auto& [name, t] : reference) {
        const auto it = exported.find(name);
        BOOST_REQUIRE_MESSAGE(it != exported.end(), "export lacks " << name);
        BOOST_TEST(t.dtype() == DType::f32, name);
        BOOST_TEST(same_bytes(it->second, t), name << ": " << it->second.dtype() << " " << it->second.shape() << " vs "
                                                   << t.dtype() << " " << t.shape());
      }
    }
  }
}

// Tiny models of each architecture, trained 3 steps on the copy task under the reference's
// numerics, then exported, imported into a fresh model, and run on the same tokens.
BOOST_AUTO_TEST_CASE(export_then_import_of_a_trained_model_gives_the_same_logits) {
  const std::pair<const char*, const char*> cases[] = {
      {"rmt", "{num_memory_tokens: 2, reference_parity: true, abs_pos_emb: true, rotary_pos_emb: true}"},
      {"brt", "{block_width: 4, reference_parity: true}"},
      {"compressive", "{mem_len: 8, cmem_ratio: 2, reference_parity: true}"},
      {"memxl", "{mem_len: 8, lmem_len: 4, reference_parity: true}"},
  };
  for (const auto& [arch, options] : cases) {
    BOOST_TEST_CONTEXT(arch) {
      const test::TempDir tmp;
      const std::string path = tmp / "tiny.yaml";
      std::ofstream(path) << "name: tiny\nseed: 3\n"
                             "data: {kind: synthetic, task: copy, copy_len: 3, segments: 2, segment_len: 8, batch_size: 2}\n"
                             "model: {arch: " << arch << ", dim: 16, depth: 2, heads: 2, " << arch << ": " << options << "}\n"
                             "train: {steps: 3, log_every: 1, eval_every: 0, checkpoint_every: 3, threads: 1, optimizer: {lr: 0.01}}\n"
                             "eval: {batches: 1}\n";
      const ExperimentConfig cfg = load_config(path);
      const std::string run = tmp / "run";
      train_run(cfg, {.dir = run, .progress = false});
      auto trained = build_model(cfg);
      const TrainingState state = load_checkpoint(checkpoint_path(run));
      BOOST_TEST(state.step == 3);
      restore_weights(*trained, state.weights);

      const std::map<std::string, Tensor> exported = export_through_file(cfg, *trained);
      ExperimentConfig fresh_cfg = cfg;
      fresh_cfg.seed = 99;  // other initial weights: only the import can make them equal
      auto imported = build_model(fresh_cfg);
      restore_weights(*imported, find_arch(arch).import_reference(exported, cfg));

      const Tensor tokens = Tensor::from_ints({2, 8}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
      Tape t1, t2;
      nn::eval(*trained), nn::eval(*imported);
      const Tensor a = trained->forward(t1, tokens, arch::constants(t1, trained->initial_memory(2))).logits.value();
      const Tensor b = imported->forward(t2, tokens, arch::constants(t2, imported->initial_memory(2))).logits.value();
      BOOST_TEST(same_bytes(a, b));
      auto untrained = build_model(fresh_cfg);
      Tape t3;
      nn::eval(*untrained);
      const Tensor c = untrained->forward(t3, tokens, arch::constants(t3, untrained->initial_memory(2))).logits.value();
      BOOST_TEST(!same_bytes(a, c));  // the comparison can fail
    }
  }
}

// RMT with rotary positions: the reference's state dict carries RotaryEmbedding.inv_freq.
ExperimentConfig rotary_rmt(const std::string& extra = "") {
  ExperimentConfig c;
  c.model.arch = "rmt";
  c.model.dim = 32, c.model.depth = 2, c.model.heads = 2, c.model.vocab = 256;
  c.data.segment_len = 16;
  set_arch_options(c, "{num_memory_tokens: 4, dim_head: 16, abs_pos_emb: true, rotary_pos_emb: true, reference_parity: true" +
                           extra + "}");
  return c;
}

BOOST_AUTO_TEST_CASE(rmt_rotary_inv_freq_is_exported_as_torch_computes_it_and_checked_on_import) {
  // The BRT fixture holds torch's inv_freq for dim 16, theta 10000 (buffer.*): the same
  // expression as RMT's RotaryEmbedding, so RMT's export must match it bit for bit.
  const Safetensors brt = read_safetensors(std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures/brt_a.safetensors");
  const ExperimentConfig cfg = rotary_rmt(", rotary_theta: 10000");
  auto model = build_model(cfg);
  std::map<std::string, Tensor> sd = export_through_file(cfg, *model);
  BOOST_TEST_REQUIRE(sd.count("rotary_pos_emb.inv_freq") == 1u);
  BOOST_TEST(same_bytes(sd.at("rotary_pos_emb.inv_freq"), brt.tensors.at("buffer.rotary_pos_emb.inv_freq")));
  BOOST_TEST(sd.count("pos_emb.weight") == 1u);

  // The state dict imports (the buffer no longer "unused"), into the same weights.
  auto back = build_model(rotary_rmt(", rotary_theta: 10000"));
  restore_weights(*back, find_arch("rmt").import_reference(sd, cfg));
  for (const auto& [name, p] : nn::named_params(*model)) BOOST_TEST(same_bytes(p->value, nn::find_param(*back, name).value), name);

  // Another theta's buffer is named, with the option.
  const std::string msg = error_of([&] { find_arch("rmt").import_reference(sd, rotary_rmt()); });
  BOOST_TEST(msg.find("buffer: rotary_pos_emb.inv_freq") != std::string::npos, msg);
  BOOST_TEST(msg.find("missing") == std::string::npos, msg);

  // Without rotary in the config, the buffer is unused and the option is named.
  ExperimentConfig no_rotary = cfg;
  set_arch_options(no_rotary, "{num_memory_tokens: 4, dim_head: 16, abs_pos_emb: true, rotary_pos_emb: false, "
                              "reference_parity: true}");
  const std::string unused = error_of([&] { find_arch("rmt").import_reference(sd, no_rotary); });
  BOOST_TEST(unused.find("unused: rotary_pos_emb.inv_freq (8,) (model.rmt.rotary_pos_emb: true would explain it)") !=
                 std::string::npos,
             unused);
}

BOOST_AUTO_TEST_CASE(names_that_do_not_fit_name_the_option_that_explains_them) {
  const FixtureCase& rmt = kFixtures[0];
  const Safetensors file = read_safetensors(std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures/rmt_a.safetensors");
  ExperimentConfig cfg = fixture_config(rmt);
  set_arch_options(cfg, "{num_memory_tokens: 4, dim_head: 16, xl_mem_len: 8, reference_parity: true, "
                        "abs_pos_emb: false, rotary_pos_emb: true, null_kv: false}");
  const std::string msg = error_of([&] { find_arch("rmt").import_reference(file.tensors, cfg); });
  BOOST_TEST(msg.find("unused: pos_emb.weight (16, 32) (model.rmt.abs_pos_emb: true would explain it)") != std::string::npos, msg);
  BOOST_TEST(msg.find("unused: layers.0.0.branch.null_kv (2, 2, 16) (model.rmt.null_kv: true would explain it)") !=
                 std::string::npos,
             msg);

  const Safetensors memxl = read_safetensors(std::string(MNEMO_SOURCE_DIR) + "/tests/fixtures/memxl_a.safetensors");
  ExperimentConfig mcfg = fixture_config(kFixtures[3]);
  set_arch_options(mcfg, "{mem_len: 16, lmem_len: 8, reference_parity: true, gru_gated_residual: false}");
  const std::string m = error_of([&] { find_arch("memxl").import_reference(memxl.tensors, mcfg); });
  BOOST_TEST(m.find("unused: attn_layers.0.gru.Ua.weight (32, 32) (model.memxl.gru_gated_residual: true would explain it)") !=
                 std::string::npos,
             m);
}

BOOST_AUTO_TEST_CASE(export_refuses_what_the_reference_cannot_express_naming_the_option) {
  for (const FixtureCase& fc : kFixtures) {
    BOOST_TEST_CONTEXT(fc.arch) {
      ExperimentConfig cfg = fixture_config(fc);
      std::string options = fc.options;
      options.replace(options.find("reference_parity: true"), 22, "reference_parity: false");
      set_arch_options(cfg, options);
      auto model = build_model(cfg);
      const std::string msg = error_of([&] { find_arch(fc.arch).export_reference(*model, cfg); });
      BOOST_TEST(msg.find("[export " + std::string(fc.arch) + "]") != std::string::npos, msg);
      BOOST_TEST(msg.find("model." + std::string(fc.arch) + ".reference_parity: false") != std::string::npos, msg);
    }
  }
  ExperimentConfig ct = fixture_config(kFixtures[2]);
  set_arch_options(ct, "{mem_len: 16, cmem_len: 4, memory_layers: [1, 2], reference_parity: true, final_norm: true}");
  auto model = build_model(ct);
  const std::string msg = error_of([&] { find_arch("compressive").export_reference(*model, ct); });
  BOOST_TEST(msg.find("model.compressive.final_norm: true") != std::string::npos, msg);
  ExperimentConfig brt = fixture_config(kFixtures[1]);
  set_arch_options(brt, "{block_width: 8, recurrent_layers: [2], reference_parity: true, rotary_theta: 500}");
  auto b = build_model(brt);
  const std::string bmsg = error_of([&] { find_arch("brt").export_reference(*b, brt); });
  BOOST_TEST(bmsg.find("model.brt.rotary_theta: 500") != std::string::npos, bmsg);
}

BOOST_AUTO_TEST_SUITE_END()
