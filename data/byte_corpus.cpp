// Loading byte corpora: plain or gzip files (zlib's gzread) and the standard splits.
#include "data/byte_corpus.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

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

// Member after member with inflate: gzread would skip whatever follows the last member
// without a word, so a damaged or appended-to download would pass for a good one.
std::vector<uint8_t> read_gzip(const std::string& path) {
  const std::vector<uint8_t> in = read_plain(path);
  z_stream z{};
  MNEMO_CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK, "[data] cannot start zlib to read '" << path << "'");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> end(&z, inflateEnd);
  std::vector<uint8_t> out, buf(1 << 20);
  size_t used = 0;  // compressed bytes inflate has consumed
  for (int64_t member = 1;; ++member) {
    int ret = Z_OK;
    while (ret != Z_STREAM_END) {
      if (z.avail_in == 0) {
        MNEMO_CHECK(used < in.size(), "[data] '" << path << "' is not a valid gzip file (truncated: member " << member
                                                 << " ends at byte " << used << " without its end)");
        z.next_in = const_cast<Bytef*>(in.data() + used);
        z.avail_in = uInt(std::min<size_t>(in.size() - used, 1u << 30));
      }
      z.next_out = buf.data();
      z.avail_out = uInt(buf.size());
      const uInt before = z.avail_in;
      ret = inflate(&z, Z_NO_FLUSH);
      used += before - z.avail_in;
      MNEMO_CHECK(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR,
                  "[data] '" << path << "' is not a valid gzip file (" << (z.msg ? z.msg : zError(ret)) << " in member "
                             << member << ", near compressed byte " << used << ")");
      out.insert(out.end(), buf.data(), buf.data() + (buf.size() - z.avail_out));
    }
    if (used == in.size()) return out;
    const size_t rest = in.size() - used;
    MNEMO_CHECK(rest >= 2 && in[used] == 0x1f && in[used + 1] == 0x8b,
                "[data] '" << path << "' has " << rest << " bytes after the last gzip member (member " << member
                           << " ends at byte " << used << " of " << in.size()
                           << "): the file is damaged or something was appended to it");
    inflateReset(&z);
    z.avail_in = 0;  // the next member starts at `used`
  }
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
  // fopen succeeds on a directory, and only the read fails, with a vaguer message.
  MNEMO_CHECK(!std::filesystem::is_directory(path), "[data] '" << path << "' is a directory, not a data file");
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
