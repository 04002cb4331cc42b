// ByteCorpus: a byte-level corpus (tokens 0..255) read from a plain text file or the
// enwik8 file, raw or gzip-compressed, cut into train / valid / test splits.
// enwik8 (exactly 100,000,000 bytes) gets the standard 90M / 5M / 5M split; any other
// file keeps its last `val_fraction` as the validation split and has no test split.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mnemo::data {

enum class Split { train, valid, test };
const char* split_name(Split s);

// A contiguous range of a corpus. It shares the bytes, so it outlives the ByteCorpus.
struct ByteSpan {
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  int64_t begin = 0, size = 0;

  const uint8_t* data() const { return bytes->data() + begin; }
  uint8_t operator[](int64_t i) const { return data()[i]; }
  std::string name;  // "file:split", for error messages
};

struct SplitSizes {
  int64_t train = 0, valid = 0, test = 0;
};

constexpr int64_t kEnwik8Bytes = 100'000'000;

// 90M / 5M / 5M for enwik8; otherwise the last val_fraction (at least one byte when
// the fraction is positive) is validation and test is empty.
SplitSizes standard_split(int64_t total, double val_fraction);

class ByteCorpus {
 public:
  // Reads `path`; a gzip file is recognised by its magic bytes, not its name.
  static ByteCorpus load(const std::string& path, double val_fraction = 0.05);
  // In-memory corpus (tests, synthetic text). Sizes must add up to bytes.size().
  ByteCorpus(std::vector<uint8_t> bytes, SplitSizes sizes, std::string name = "memory");

  const std::string& name() const { return name_; }
  int64_t size() const { return int64_t(bytes_->size()); }
  const SplitSizes& sizes() const { return sizes_; }
  ByteSpan split(Split s) const;  // an empty test split is an error naming the file
  const std::vector<uint8_t>& bytes() const { return *bytes_; }

 private:
  std::shared_ptr<const std::vector<uint8_t>> bytes_;
  SplitSizes sizes_;
  std::string name_;
};

// Whole-file readers. Errors name the file: "[data] cannot open 'x': No such file ...",
// "[data] 'x' is not a valid gzip file (...)".
std::vector<uint8_t> read_file_bytes(const std::string& path);
bool is_gzip_file(const std::string& path);

}  // namespace mnemo::data
