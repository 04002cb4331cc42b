// The quickstart's promise, end to end, with experiments/configs/quickstart.yaml itself (slow
// suite: the quickstart's own few minutes on 2 cores): on the copy task whose letters lie
// further back than Transformer-XL's cache reaches, the four memory architectures answer well
// above chance (1/26 per letter), the memoryless transformer and Transformer-XL stay near it,
// and the six models' parameter counts are within 10% of each other.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "experiments/sweep.h"
#include "tests/support/temp_dir.h"

using namespace mnemo;
using namespace mnemo::experiments;

namespace {

std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
  return cells;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(quickstart_slow)

BOOST_AUTO_TEST_CASE(memory_architectures_answer_and_no_memory_stays_at_chance) {
  test::TempDir tmp("mnemo-quickstart");
  const std::string dir = run_sweep(std::string(MNEMO_SOURCE_DIR) + "/experiments/configs/quickstart.yaml",
                                    {.dir = tmp / "qs", .progress = false});
  std::ifstream csv(std::filesystem::path(dir) / "summary.csv");
  std::string line;
  std::getline(csv, line);
  const std::vector<std::string> header = cells_of(line);
  const auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    BOOST_REQUIRE_MESSAGE(it != header.end(), "summary.csv has no column " << name);
    return size_t(it - header.begin());
  };
  const size_t arch_col = column("model.arch"), params_col = column("params");
  const size_t accuracy_col = column("final_val_accuracy");
  std::map<std::string, double> accuracy, params;
  while (std::getline(csv, line)) {
    const std::vector<std::string> cells = cells_of(line);
    BOOST_REQUIRE(cells.size() == header.size());
    accuracy[cells[arch_col]] = std::stod(cells[accuracy_col]);
    params[cells[arch_col]] = std::stod(cells[params_col]);
  }
  BOOST_REQUIRE(accuracy.size() == 6u);
  double lo = 1e300, hi = 0;
  for (const auto& [arch, acc] : accuracy) {
    BOOST_TEST_MESSAGE(arch << ": answer accuracy " << acc << ", " << params.at(arch) << " parameters");
    lo = std::min(lo, params.at(arch)), hi = std::max(hi, params.at(arch));
  }
  BOOST_TEST(hi <= 1.1 * lo, "parameter counts " << lo << " to " << hi << " differ by more than 10%");
  // Chance is 1/26 = 0.038 per letter.
  for (const char* arch : {"rmt", "brt", "compressive", "memxl"})
    BOOST_TEST(accuracy.at(arch) >= 0.25, arch << " answers at " << accuracy.at(arch));
  BOOST_TEST(accuracy.at("transformer") < 0.1);
  BOOST_TEST(accuracy.at("transformer_xl") < 0.1);
}

BOOST_AUTO_TEST_SUITE_END()
