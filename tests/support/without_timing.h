// A run's train.jsonl or metrics.jsonl without its wall-clock columns (tokens_per_s,
// elapsed_s): what two runs that must agree bit for bit are compared on.
#pragma once

#include <sstream>
#include <string>

namespace mnemo::test {

inline std::string without_timing(const std::string& jsonl) {
  std::string out;
  std::istringstream in(jsonl);
  for (std::string line; std::getline(in, line);) {
    for (const char* key : {",\"tokens_per_s\":", ",\"elapsed_s\":"}) {
      const size_t a = line.find(key);
      if (a == std::string::npos) continue;
      const size_t b = line.find_first_of(",}", a + 1);
      line.erase(a, b - a);
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace mnemo::test
