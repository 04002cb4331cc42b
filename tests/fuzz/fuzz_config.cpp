// The config loader (experiments/config.cpp): YAML, a `base:` file and `--set` flags.
// Input: the experiment file, then optionally a NUL byte and the file `base.yaml` beside it,
// then optionally a NUL byte and --set flags, one per line. Every input loads or is refused
// with mnemo::Error; what loads must survive its own resolved YAML (to_yaml, the run
// folder's config.yaml) unchanged, as `--resume` relies on.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <vector>

#include "autograd/error.h"
#include "experiments/config.h"
#include "tests/fuzz/fuzz_support.h"

using namespace mnemo;
using namespace mnemo::experiments;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = fuzz::as_text(data, size);
  const size_t a = in.find('\0');
  const size_t b = a == std::string_view::npos ? a : in.find('\0', a + 1);
  const std::string main = fuzz::scratch_file("main.yaml"), base = fuzz::scratch_file("base.yaml");
  fuzz::write_file(main, in.substr(0, a));
  std::filesystem::remove(base);  // a base: naming it is then a missing file
  if (a != std::string_view::npos) fuzz::write_file(base, in.substr(a + 1, b == std::string_view::npos ? b : b - a - 1));
  std::vector<std::string> sets;
  if (b != std::string_view::npos) {
    std::istringstream lines{std::string(in.substr(b + 1))};
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) sets.push_back(line);
  }

  ExperimentConfig cfg;
  try {
    cfg = load_config(main, sets);
  } catch (const Error&) {
    return 0;
  }
  const std::string resolved = fuzz::scratch_file("resolved.yaml");
  fuzz::write_file(resolved, to_yaml(cfg));
  const ExperimentConfig again = load_config(resolved);  // throws (a finding) if refused
  if (!(again == cfg)) {
    std::fprintf(stderr, "the resolved config reads back differently:\n%s\n", to_yaml(cfg).c_str());
    std::abort();
  }
  return 0;
}
