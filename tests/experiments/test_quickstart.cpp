// The quickstart's promise, end to end (slow suite: under a minute on 2 cores): on the
// copy task spread over 4 segments, transformer_xl reaches 0.99 answer accuracy while the
// memoryless transformer stays near chance (1/26 per letter).
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "experiments/sweep.h"
#include "tests/support/temp_dir.h"

using namespace mnemo;
using namespace mnemo::experiments;

BOOST_AUTO_TEST_SUITE(quickstart_slow)

BOOST_AUTO_TEST_CASE(memory_solves_copy_and_no_memory_stays_at_chance) {
  test::TempDir tmp("mnemo-quickstart");
  const std::string dir = run_sweep(std::string(MNEMO_SOURCE_DIR) + "/experiments/configs/quickstart.yaml",
                                    {.dir = tmp / "qs", .progress = false});
  std::ifstream csv(std::filesystem::path(dir) / "summary.csv");
  std::string header, line;
  std::getline(csv, header);
  // run,model.arch,steps,final_val_loss,best_val_loss,final_val_accuracy,...
  std::map<std::string, double> accuracy;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    BOOST_REQUIRE(cells.size() > 5u);
    accuracy[cells[1]] = std::stod(cells[5]);
  }
  BOOST_TEST_MESSAGE("answer accuracy: transformer " << accuracy["transformer"] << ", transformer_xl "
                                                     << accuracy["transformer_xl"]);
  BOOST_TEST(accuracy.at("transformer_xl") >= 0.99);
  BOOST_TEST(accuracy.at("transformer") < 0.15);
}

BOOST_AUTO_TEST_SUITE_END()
