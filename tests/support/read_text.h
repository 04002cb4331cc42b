// A whole file as text (empty when it cannot be opened): what a test compares a written
// table, log or config against.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace mnemo::test {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace mnemo::test
