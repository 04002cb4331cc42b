// Shared by the libFuzzer targets: the loaders under test read paths, so each input is
// written to a scratch folder of this process first.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace mnemo::fuzz {

// A folder of its own per process (libFuzzer's -jobs/-fork run several), removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string d = (std::filesystem::temp_directory_path() / "mnemo-fuzz-XXXXXX").string();
    if (!::mkdtemp(d.data())) std::abort();
    static std::string to_remove = d;
    std::atexit([] { std::filesystem::remove_all(to_remove); });
    return d;
  }();
  return dir;
}

inline std::string scratch_file(const std::string& name) { return scratch_dir() + "/" + name; }

inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) std::abort();  // the scratch folder itself failing is not a finding
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace mnemo::fuzz
