#include "experiments/gnuplot.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "autograd/error.h"

namespace mnemo::experiments {

std::string gnuplot_missing() {
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) return "";
  return "gnuplot is not installed (Debian: apt-get install gnuplot-nox)";
}

void run_gnuplot(const std::string& script, const std::string& png, const std::string& tag) {
  FILE* gp = ::popen("gnuplot", "w");
  MNEMO_CHECK(gp, "[" << tag << "] cannot start gnuplot");
  std::fwrite(script.data(), 1, script.size(), gp);
  const int rc = ::pclose(gp);
  MNEMO_CHECK(rc == 0 && std::filesystem::exists(png), "[" << tag << "] gnuplot failed (exit " << rc << ") writing " << png);
}

}  // namespace mnemo::experiments
