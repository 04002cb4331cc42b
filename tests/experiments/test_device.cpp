// The experiment config's `device:` key: cpu by default and written back by to_yaml; a bad
// name refused at its key; cuda refused at load with the file, line, key and the reason
// that fits this process (a build without CUDA, or no device), from the file and from --set
// alike, and accepted with a device or on the emulated one. Runs in every build: the reason
// it expects is the one kernels::device::unavailable() gives here.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "experiments/config.h"
#include "kernels/emulated/device.h"
#include "tests/support/contains.h"
#include "tests/support/error_of.h"
#include "tests/support/temp_dir.h"

using namespace mnemo;
using mnemo::test::contains;
using namespace mnemo::experiments;
using mnemo::test::error_of;

namespace {

// Config files in a fresh folder, removed with it; each holds a tiny model after the given
// first lines (so a `device:` line given first is line 1).
struct Configs {
  test::TempDir tmp{"mnemo_device"};
  int count = 0;
  std::string write(const std::string& first_lines) {
    const std::string path = tmp / ("c" + std::to_string(count++) + ".yaml");
    std::ofstream(path) << first_lines << "model:\n  arch: transformer\n  dim: 16\n  depth: 1\n  heads: 2\n"
                        << "train:\n  steps: 3\n";
    return path;
  }
};


}  // namespace

BOOST_AUTO_TEST_SUITE(device_key)

BOOST_AUTO_TEST_CASE(cpu_is_the_default_and_reads_back_from_to_yaml) {
  Configs files;
  const ExperimentConfig plain = load_config(files.write(""));
  BOOST_TEST((plain.device == Device::cpu));
  const std::string yaml = to_yaml(plain);
  BOOST_TEST(contains(yaml, "device: cpu"));
  const std::string again = files.write("");
  std::ofstream(again) << yaml;
  BOOST_TEST((load_config(again) == plain));
  ExperimentConfig written = load_config(files.write("device: cpu\n"));
  written.name = plain.name;  // the name is each file's stem
  BOOST_TEST((written == plain));
}

BOOST_AUTO_TEST_CASE(an_unknown_device_is_refused_at_its_key) {
  Configs files;
  const std::string path = files.write("seed: 3\ndevice: gpu\n");
  const std::string err = error_of([&] { load_config(path); });
  BOOST_TEST(contains(err, path + ":2:"));
  BOOST_TEST(contains(err, "device"));
  BOOST_TEST(contains(err, "gpu"));
  BOOST_TEST(contains(err, "cuda"));
}

BOOST_AUTO_TEST_CASE(cuda_is_refused_at_load_with_the_reason) {
  const kernels::device::ScopedEmulation off(false);
  const std::string reason = kernels::device::unavailable();
  Configs files;
  const std::string path = files.write("device: cuda\n");
  if (reason.empty()) {  // a CUDA build on a GPU machine: accepted
    BOOST_TEST((load_config(path).device == Device::cuda));
    return;
  }
  const std::string err = error_of([&] { load_config(path); });
  BOOST_TEST(contains(err, path + ":1:"));
  BOOST_TEST(contains(err, "device"));
  BOOST_TEST(contains(err, reason));
  BOOST_TEST(contains(err, "use device: cpu"));
  // The same from the command line.
  const std::string plain = files.write("");
  const std::string err_set = error_of([&] { load_config(plain, {"--set device=cuda"}); });
  BOOST_TEST(contains(err_set, "device"));
  BOOST_TEST(contains(err_set, reason));
}

BOOST_AUTO_TEST_CASE(cuda_is_accepted_on_the_emulated_device) {
  const kernels::device::ScopedEmulation emulate;
  Configs files;
  const ExperimentConfig cfg = load_config(files.write("device: cuda\n"));
  BOOST_TEST((cfg.device == Device::cuda));
  BOOST_TEST(contains(to_yaml(cfg), "device: cuda"));
  BOOST_TEST((load_config(files.write(""), {"--set device=cuda"}).device == Device::cuda));
}

BOOST_AUTO_TEST_SUITE_END()
