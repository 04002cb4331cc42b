// Loading byte corpora: plain or gzip files (zlib's gzread) and the standard splits.
#include "data/byte_corpus.h"

#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "autograd/error.h"

namespace mnemo::data {

const char* split_name(Split s) {
  switch (s) {
    case Split::train: return "train";
    case Split::valid: return "valid";
    case Split::test: return "test";
  }
  return "?";
}

SplitSizes standard_split(int64_t total, double val_fraction) {
  if (total == kEnwik8Bytes) return {90'000'000, 5'000'000, 5'000'000};
  MNEMO_CHECK(val_fraction >= 0 && val_fraction < 1,
              "[data] val_fraction must be in [0, 1), got " << val_fraction);
  int64_t valid = int64_t(std::llround(double(total) * val_fraction));
  if (val_fraction > 0 && valid == 0 && total > 1) valid = 1;
  return {total - valid, valid, 0};
}

namespace {

std::string open_error(const std::string& path) {
  return "[data] cannot open '" + path + "': " + std::strerror(errno);
}

std::vector<uint8_t> read_plain(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  MNEMO_CHECK(f, open_error(path));
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  MNEMO_CHECK(!failed, "[data] error reading '" << path << "'");
  return out;
}

// gzread in chunks; a data error or a truncated stream is reported with zlib's words.
std::vector<uint8_t> read_gzip(const std::string& path) {
  gzFile g = gzopen(path.c_str(), "rb");
  MNEMO_CHECK(g, open_error(path));
  gzbuffer(g, 1 << 17);
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  int n;
  while ((n = gzread(g, buf.data(), unsigned(buf.size()))) > 0) out.insert(out.end(), buf.data(), buf.data() + n);
  int errnum = Z_OK;
  const std::string msg = gzerror(g, &errnum);
  gzclose(g);
  MNEMO_CHECK(n == 0 && (errnum == Z_OK || errnum == Z_STREAM_END),
              "[data] '" << path << "' is not a valid gzip file (" << msg << ")");
  return out;
}

}  // namespace

bool is_gzip_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  MNEMO_CHECK(f, open_error(path));
  unsigned char magic[2] = {0, 0};
  const size_t n = std::fread(magic, 1, 2, f);
  std::fclose(f);
  return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  return is_gzip_file(path) ? read_gzip(path) : read_plain(path);
}

ByteCorpus::ByteCorpus(std::vector<uint8_t> bytes, SplitSizes sizes, std::string name)
    : bytes_(std::make_shared<const std::vector<uint8_t>>(std::move(bytes))), sizes_(sizes), name_(std::move(name)) {
  MNEMO_CHECK(sizes.train >= 0 && sizes.valid >= 0 && sizes.test >= 0 &&
                  sizes.train + sizes.valid + sizes.test == size(),
              "[data] split sizes " << sizes.train << " + " << sizes.valid << " + " << sizes.test
                                    << " do not add up to the " << size() << " bytes of '" << name_ << "'");
}

ByteCorpus ByteCorpus::load(const std::string& path, double val_fraction) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  MNEMO_CHECK(!bytes.empty(), "[data] '" << path << "' is empty");
  const SplitSizes sizes = standard_split(int64_t(bytes.size()), val_fraction);
  return ByteCorpus(std::move(bytes), sizes, path);
}

ByteSpan ByteCorpus::split(Split s) const {
  const int64_t begin = s == Split::train ? 0 : s == Split::valid ? sizes_.train : sizes_.train + sizes_.valid;
  const int64_t size = s == Split::train ? sizes_.train : s == Split::valid ? sizes_.valid : sizes_.test;
  MNEMO_CHECK(size > 0, "[data] '" << name_ << "' has no " << split_name(s) << " split");
  return ByteSpan{bytes_, begin, size, name_ + ":" + split_name(s)};
}

}  // namespace mnemo::data
