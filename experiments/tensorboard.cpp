#include "experiments/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "autograd/error.h"

namespace mnemo::experiments {
namespace tensorboard {
namespace {

// ---- protobuf wire format: varints and the three wire types used here ----

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) out.push_back(char(uint8_t(v) | 0x80)), v >>= 7;
  out.push_back(char(v));
}
void key(std::string& out, int field, int wire_type) { varint(out, uint64_t(field) << 3 | uint64_t(wire_type)); }
void int_field(std::string& out, int field, int64_t v) { key(out, field, 0), varint(out, uint64_t(v)); }
void bytes_field(std::string& out, int field, const std::string& bytes) {  // strings and sub-messages
  key(out, field, 2), varint(out, bytes.size()), out += bytes;
}
template <class T>
void fixed_field(std::string& out, int field, T v) {  // double (wire type 1) or float (5), little-endian
  static_assert(sizeof(T) == 8 || sizeof(T) == 4);
  key(out, field, sizeof(T) == 8 ? 1 : 5);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // the x86/ARM byte order is the wire's
  out.append(b, sizeof(T));
}

std::string event(double wall_time, int64_t step, const std::string& summary) {
  std::string e;
  fixed_field(e, 1, wall_time);
  int_field(e, 2, step);
  bytes_field(e, 5, summary);
  return e;
}

std::string le(uint64_t v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
  return out;
}

}  // namespace

uint32_t crc32c(const std::string& bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // reflected Castagnoli polynomial
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (const unsigned char b : bytes) c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const std::string& bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string record(const std::string& data) {
  const std::string length = le(data.size(), 8);
  return length + le(masked_crc32c(length), 4) + data + le(masked_crc32c(data), 4);
}

std::string file_version_event(double wall_time) {
  std::string e;
  fixed_field(e, 1, wall_time);
  bytes_field(e, 3, "brain.Event:2");
  return e;
}

std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value) {
  std::string v;
  bytes_field(v, 1, tag);
  fixed_field(v, 2, value);
  std::string summary;
  bytes_field(summary, 1, v);
  return event(wall_time, step, summary);
}

// The text plugin's form (tf.summary.text): a scalar DT_STRING tensor tagged plugin "text".
std::string text_event(double wall_time, int64_t step, const std::string& tag, const std::string& text) {
  std::string plugin, metadata, tensor, v, summary;
  bytes_field(plugin, 1, "text");
  bytes_field(metadata, 1, plugin);
  int_field(tensor, 1, 7);        // DT_STRING
  bytes_field(tensor, 2, "");     // shape []: a scalar
  bytes_field(tensor, 8, text);
  bytes_field(v, 1, tag);
  bytes_field(v, 8, tensor);
  bytes_field(v, 9, metadata);
  bytes_field(summary, 1, v);
  return event(wall_time, step, summary);
}

}  // namespace tensorboard

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  path_ = (std::filesystem::path(dir) / ("events.out.tfevents." + std::to_string(int64_t(now_seconds())) + "." + host +
                                         "." + std::to_string(getpid())))
              .string();
  file_ = std::fopen(path_.c_str(), "ab");
  MNEMO_CHECK(file_, "[tensorboard] cannot open " << path_ << ": " << std::strerror(errno));
  write(tensorboard::file_version_event(now_seconds()));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::scalar(int64_t step, const std::string& tag, double value) {
  write(tensorboard::scalar_event(now_seconds(), step, tag, float(value)));
}

void TensorBoardWriter::text(int64_t step, const std::string& tag, const std::string& text) {
  write(tensorboard::text_event(now_seconds(), step, tag, text));
}

// Event files are a view of the run's .jsonl logs, not its record: a failed write (a full
// disk) is reported once on stderr and the file closed, and training goes on.
void TensorBoardWriter::write(const std::string& event) {
  if (!file_) return;
  const std::string r = tensorboard::record(event);
  if (std::fwrite(r.data(), 1, r.size(), file_) == r.size() && std::fflush(file_) == 0) return;
  std::fprintf(stderr, "mnemo: warning: [tensorboard] cannot write %s: %s; no more events go there\n", path_.c_str(),
               std::strerror(errno));
  std::fclose(file_);
  file_ = nullptr;
}

}  // namespace mnemo::experiments
