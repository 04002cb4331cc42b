// A fresh directory under the system temp dir, removed (with everything in it) at the end
// of the test that made it.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace mnemo::test {

struct TempDir {
  std::filesystem::path dir;
  explicit TempDir(const std::string& tag = "mnemo") {
    dir = std::filesystem::temp_directory_path() /
          (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(dir, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (dir / name).string(); }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
};

}  // namespace mnemo::test
