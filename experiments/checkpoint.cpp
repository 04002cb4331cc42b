// Safetensors reading and writing (the header's JSON is in json.cpp), atomic file
// replacement, and the mapping of a TrainingState onto one file.
// Reading trusts nothing: a checkpoint that is truncated or corrupt is refused with a
// message naming the file and the first thing found wrong.
#include "experiments/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <string_view>

#include <zlib.h>

#include "autograd/dispatch.h"
#include "experiments/json.h"

namespace mnemo::experiments {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so is the host");

using json::Json;
using json::json_string;
using json::kind_name;
using json::to_u64;
using json::valid_utf8;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr const char* kFormat = "mnemo.checkpoint/1";

#define CKPT_CHECK(cond, what, msg) MNEMO_CHECK(cond, "checkpoint '" << (what) << "': " << msg)
#define CKPT_FAIL(what, msg) CKPT_CHECK(false, what, msg)

// ---- dtypes ----

const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";  // mnemo has no bf16 tensors yet: refused by write and read
    case DType::i32: return "I32";
    case DType::u8: return "U8";
  }
  return "?";
}

bool parse_st_dtype(std::string_view s, DType& out) {
  for (DType t : {DType::f32, DType::f64, DType::i32, DType::u8})
    if (s == st_dtype(t)) {
      out = t;
      return true;
    }
  return false;
}

// ---- the header, both ways ----

struct Entry {
  std::string name;
  DType dtype = DType::f32;
  bool i64 = false;  // stored as I64 (PyTorch's token tensors); read into i32, range-checked
  Shape shape;
  uint64_t begin = 0, end = 0;
};

std::string shape_json(const Shape& s) {
  std::string out = "[";
  for (int i = 0; i < s.rank(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

uint64_t read_le64(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return n;
}

std::vector<uint64_t> json_uints(const Json& j, const std::string& what, const std::string& field) {
  CKPT_CHECK(j.kind == Json::Kind::array, what, field << " must be an array, got " << kind_name(j.kind));
  std::vector<uint64_t> out;
  for (const Json& item : j.items) {
    uint64_t v = 0;
    CKPT_CHECK(item.kind == Json::Kind::number && to_u64(item.text, v), what,
               field << " must hold non-negative integers, got " << (item.kind == Json::Kind::number ? item.text : kind_name(item.kind)));
    out.push_back(v);
  }
  return out;
}

Entry parse_entry(const std::string& name, const Json& j, const std::string& what) {
  const std::string where = "tensor '" + name + "'";
  CKPT_CHECK(j.kind == Json::Kind::object, what, where << " must be an object, got " << kind_name(j.kind));
  Entry e;
  e.name = name;
  const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
  for (const auto& [key, v] : j.members) {
    if (key == "dtype") dtype = &v;
    else if (key == "shape") shape = &v;
    else if (key == "data_offsets") offsets = &v;
    else CKPT_FAIL(what, where << " has an unknown field \"" << key << "\"");
  }
  CKPT_CHECK(dtype && shape && offsets, what, where << " needs dtype, shape and data_offsets");
  CKPT_CHECK(dtype->kind == Json::Kind::string, what, where << ": dtype must be a string");
  e.i64 = dtype->text == "I64";
  if (e.i64) e.dtype = DType::i32;
  CKPT_CHECK(e.i64 || parse_st_dtype(dtype->text, e.dtype), what,
             where << ": unsupported dtype \"" << dtype->text << "\" (mnemo reads F32, F64, I32, I64, U8)");

  const std::vector<uint64_t> dims = json_uints(*shape, what, where + ": shape");
  CKPT_CHECK(dims.size() <= size_t(kMaxDims), what, where << ": " << dims.size() << " dims, at most " << kMaxDims);
  uint64_t bytes = e.i64 ? 8 : dtype_size(e.dtype);
  for (uint64_t d : dims) {
    CKPT_CHECK(d <= uint64_t(INT64_MAX) && !__builtin_mul_overflow(bytes, d, &bytes), what,
               where << ": shape " << shape_json(e.shape) << " is too large");
    e.shape.push_back(int64_t(d));
  }
  const std::vector<uint64_t> off = json_uints(*offsets, what, where + ": data_offsets");
  CKPT_CHECK(off.size() == 2 && off[0] <= off[1], what, where << ": data_offsets must be [begin, end] with begin <= end");
  e.begin = off[0];
  e.end = off[1];
  CKPT_CHECK(e.end - e.begin == bytes, what,
             where << ": " << (e.i64 ? "I64" : st_dtype(e.dtype)) << " " << e.shape << " needs " << bytes << " bytes, data_offsets ["
                   << e.begin << ", " << e.end << "] hold " << e.end - e.begin);
  return e;
}

std::map<std::string, std::string> parse_metadata(const Json& j, const std::string& what) {
  CKPT_CHECK(j.kind == Json::Kind::object, what, "__metadata__ must be an object, got " << kind_name(j.kind));
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.members) {
    CKPT_CHECK(v.kind == Json::Kind::string, what, "__metadata__ \"" << k << "\" must be a string, got " << kind_name(v.kind));
    out[k] = v.text;
  }
  return out;
}

// Offsets must tile [0, data_bytes) exactly: no overlap, no hole, nothing past the end.
void check_layout(std::vector<Entry>& entries, uint64_t data_bytes, const std::string& what) {
  uint64_t needed = 0;
  for (const Entry& e : entries) needed = std::max(needed, e.end);
  CKPT_CHECK(needed <= data_bytes, what, "truncated: header says " << needed << " bytes of data, file has " << data_bytes);
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t at = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    CKPT_CHECK(e.begin >= at, what,
               "tensors '" << prev->name << "' [" << prev->begin << ", " << prev->end << "] and '" << e.name << "' ["
                           << e.begin << ", " << e.end << "] overlap");
    CKPT_CHECK(e.begin == at, what, "bytes [" << at << ", " << e.begin << ") of data belong to no tensor");
    at = e.end;
    if (e.end > e.begin || !prev) prev = &e;
  }
  CKPT_CHECK(at == data_bytes, what, (data_bytes - at) << " bytes after the last tensor belong to no tensor");
}

// ---- files ----

std::string errno_text() { return std::strerror(errno); }

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CKPT_CHECK(fd >= 0, path, "cannot open: " << errno_text());
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string err = errno_text();
      ::close(fd);
      CKPT_FAIL(path, "read failed: " << err);
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return out;
}

void write_all(int fd, const char* p, size_t n, const std::string& tmp) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    CKPT_CHECK(w > 0, tmp, "write failed: " << errno_text());
    p += w;
    n -= size_t(w);
  }
}

// Makes the rename itself durable: the directory entry lives in the directory's data.
void fsync_directory(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CKPT_CHECK(fd >= 0, path, "written, but cannot open its directory to fsync it: " << errno_text());
  const int rc = ::fsync(fd);
  const std::string err = rc == 0 ? "" : errno_text();
  ::close(fd);
  CKPT_CHECK(rc == 0, path, "written, but fsync of its directory failed: " << err);
}

// ---- training state <-> file ----

int64_t parse_i64(const std::string& text, const std::string& what, const std::string& key) {
  int64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  CKPT_CHECK(ec == std::errc() && p == text.data() + text.size() && !text.empty(), what,
             "metadata \"" << key << "\" must be an integer, got \"" << text << "\"");
  return v;
}

uint64_t parse_u64(const std::string& text, const std::string& what, const std::string& key) {
  uint64_t v = 0;
  CKPT_CHECK(to_u64(text, v), what, "metadata \"" << key << "\" must be a non-negative integer, got \"" << text << "\"");
  return v;
}

std::string cursor_json(const std::vector<int64_t>& c) {
  std::string out = "[";
  for (size_t i = 0; i < c.size(); ++i) out += (i ? "," : "") + std::to_string(c[i]);
  return out + "]";
}

std::vector<int64_t> parse_cursor(const std::string& text, const std::string& what) {
  const Json j = json::parse(text, "checkpoint '" + what + "' metadata \"data_cursor\"");
  CKPT_CHECK(j.kind == Json::Kind::array, what, "metadata \"data_cursor\" must be a JSON array of integers");
  std::vector<int64_t> out;
  for (const Json& item : j.items) {
    CKPT_CHECK(item.kind == Json::Kind::number, what, "metadata \"data_cursor\" must hold integers");
    out.push_back(parse_i64(item.text, what, "data_cursor"));
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// ---- integrity ----

// zlib's crc32 takes 32-bit lengths; tensors can be larger, so it is fed in pieces.
std::string crc32_hex(const Tensor& t) {
  MNEMO_ASSERT(t.device() == Device::cpu);  // save_checkpoint stages device tensors on the host first
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(t.raw());
  for (size_t left = t.nbytes(); left > 0;) {
    const uInt n = uInt(std::min<size_t>(left, size_t(1) << 30));
    crc = ::crc32(crc, p, n);
    p += n;
    left -= n;
  }
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(crc & 0xffffffffUL));
  return buf;
}

int64_t count_non_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype()) || t.numel() == 0) return 0;
  return launch(kernels::count_non_finite, t, t, t.numel());
}

std::string describe(const Tensor& t) {
  std::ostringstream os;
  os << t.dtype() << " " << t.shape();
  return os.str();
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + ("'" + n + "'");
  return out;
}

// name -> tensor, refusing repeated names (a state built by hand could repeat one).
std::map<std::string, Tensor> by_name(const NamedTensors& v, const char* what) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : v)
    MNEMO_CHECK(out.emplace(name, t).second, "[restore] " << what << " '" << name << "' appears twice in the state");
  return out;
}

}  // namespace

// ---- safetensors ----

namespace {

// The header's pieces, shared by the one-shot encoder and the streaming writer so that both
// write the same bytes: "{" + metadata, then one entry per tensor in order, then "}" padded.
std::string header_start(const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      MNEMO_CHECK(valid_utf8(k) && valid_utf8(v), "[safetensors] metadata \"" << k << "\" is not valid UTF-8");
      if (!first) header += ',';
      first = false;
      json_string(header, k);
      header += ':';
      json_string(header, v);
    }
    header += "}";
  }
  return header;
}

// Appends t's entry at data offset `offset`, after checking it can be saved under `name`.
void header_add(std::string& header, std::set<std::string>& seen, const std::string& name, const Tensor& t,
                uint64_t offset) {
  MNEMO_CHECK(!name.empty() && name != "__metadata__" && valid_utf8(name),
              "[safetensors] bad tensor name \"" << name << "\" (empty, reserved or not UTF-8)");
  MNEMO_CHECK(seen.insert(name).second, "[safetensors] tensor '" << name << "' given twice");
  MNEMO_CHECK(t.defined(), "[safetensors] tensor '" << name << "' is undefined");
  MNEMO_CHECK(t.dtype() != DType::bf16, "[safetensors] tensor '" << name << "' is bf16, which mnemo cannot save yet");
  // A device tensor is written through a copy to the host (encode_safetensors, SafetensorsWriter).
  if (header.size() > 1) header += ',';  // after metadata or a previous tensor
  json_string(header, name);
  header += ":{\"dtype\":\"" + std::string(st_dtype(t.dtype())) + "\",\"shape\":" + shape_json(t.shape()) +
            ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.nbytes()) + "]}";
}

// The 8-byte length and the closed header, padded with spaces (allowed by the format) so the
// data starts 8-byte aligned.
std::string header_finish(std::string header) {
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + header;
}

}  // namespace

std::string encode_safetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  std::string header = header_start(metadata);
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header_add(header, seen, name, t, offset);
    offset += t.nbytes();
  }
  std::string out = header_finish(std::move(header));
  out.reserve(out.size() + offset);
  for (const auto& [name, t] : tensors)
    if (t.nbytes() > 0) out.append(static_cast<const char*>(t.to(Device::cpu).raw()), t.nbytes());
  return out;
}

Safetensors decode_safetensors(const std::string& bytes, const std::string& what) {
  // A safetensors file is an 8-byte header length, then a JSON object: anything else (a
  // config, text, another format) is named as such rather than as a truncated checkpoint.
  CKPT_CHECK(bytes.size() < 9 || bytes[8] == '{', what,
             "is not a safetensors file (expected an 8-byte header length and then a JSON header starting with '{')");
  CKPT_CHECK(bytes.size() >= 8, what, "truncated: " << bytes.size() << " bytes, less than the 8-byte header length");
  const uint64_t n = read_le64(bytes);
  CKPT_CHECK(n <= bytes.size() - 8, what,
             "truncated: header length says " << n << " bytes, file has " << bytes.size() - 8 << " after the length");
  CKPT_CHECK(n <= kMaxHeaderBytes, what, "header length " << n << " is over the " << kMaxHeaderBytes << "-byte limit");
  const std::string_view header(bytes.data() + 8, n);
  CKPT_CHECK(valid_utf8(header), what, "header is not valid UTF-8");
  CKPT_CHECK(!header.empty() && header[0] == '{', what, "header does not start with '{'");
  const Json root = json::parse(header, "checkpoint '" + what + "' header");

  Safetensors out;
  std::vector<Entry> entries;
  for (const auto& [name, v] : root.members) {
    if (name == "__metadata__") out.metadata = parse_metadata(v, what);
    else entries.push_back(parse_entry(name, v, what));
  }
  check_layout(entries, bytes.size() - 8 - n, what);

  const char* data = bytes.data() + 8 + n;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.i64) {
      int32_t* dst = static_cast<int32_t*>(t.raw());
      for (int64_t i = 0; i < t.numel(); ++i) {
        int64_t v = 0;
        std::memcpy(&v, data + e.begin + 8 * uint64_t(i), 8);
        CKPT_CHECK(v >= INT32_MIN && v <= INT32_MAX, what,
                   "tensor '" << e.name << "': I64 value " << v << " at " << i << " does not fit mnemo's int32");
        dst[i] = int32_t(v);
      }
    } else if (t.nbytes() > 0) {
      std::memcpy(t.raw(), data + e.begin, t.nbytes());
    }
    out.tensors.emplace(e.name, t);
    out.names.push_back(e.name);
  }
  return out;
}

std::string temp_path_for(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

namespace {

// Writes `path` through a temporary file that `fill` writes into (fd, the temporary's name),
// then fsync, rename over `path` and fsync the folder: the old file stays whole until the
// new one is. On any failure the temporary is removed and `path` is left untouched.
template <class Fill>
void write_atomically(const std::string& path, Fill&& fill) {
  const std::string tmp = temp_path_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CKPT_CHECK(fd >= 0, path, "cannot create the temporary file '" << tmp << "': " << errno_text());
  try {
    fill(fd, tmp);
    CKPT_CHECK(::fsync(fd) == 0, tmp, "fsync failed: " << errno_text());
    const int rc = ::close(fd);
    fd = -1;
    CKPT_CHECK(rc == 0, tmp, "close failed: " << errno_text());
    CKPT_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, path, "cannot rename '" << tmp << "' over it: " << errno_text());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());  // the previous file was never touched
    throw;
  }
  fsync_directory(path);
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_atomically(path, [&](int fd, const std::string& tmp) { write_all(fd, bytes.data(), bytes.size(), tmp); });
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

Safetensors read_safetensors(const std::string& path) { return decode_safetensors(read_file(path), path); }

SafetensorsWriter::SafetensorsWriter(std::string path, const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), data_path_(temp_path_for(path_) + ".data"), header_(header_start(metadata)) {
  fd_ = ::open(data_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CKPT_CHECK(fd_ >= 0, path_, "cannot create the temporary file '" << data_path_ << "': " << errno_text());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(data_path_.c_str());
}

void SafetensorsWriter::add(const std::string& name, const Tensor& t) {
  MNEMO_CHECK(!finished_, "[safetensors] '" << path_ << "' is finished; cannot add '" << name << "'");
  header_add(header_, seen_, name, t, offset_);
  if (t.nbytes() > 0) write_all(fd_, static_cast<const char*>(t.to(Device::cpu).raw()), t.nbytes(), data_path_);
  offset_ += t.nbytes();
}

void SafetensorsWriter::finish() {
  MNEMO_CHECK(!finished_, "[safetensors] '" << path_ << "' is already finished");
  const int closed = ::close(fd_);
  fd_ = -1;
  CKPT_CHECK(closed == 0, data_path_, "close failed: " << errno_text());
  const int in = ::open(data_path_.c_str(), O_RDONLY | O_CLOEXEC);
  CKPT_CHECK(in >= 0, data_path_, "cannot reopen: " << errno_text());
  try {
    write_atomically(path_, [&](int out, const std::string& tmp) {
      const std::string head = header_finish(header_);
      write_all(out, head.data(), head.size(), tmp);
      std::vector<char> buf(size_t(1) << 20);  // the data, a MiB at a time
      for (uint64_t copied = 0; copied < offset_;) {
        const ssize_t r = ::read(in, buf.data(), buf.size());
        CKPT_CHECK(r > 0, data_path_, "read failed after " << copied << " of " << offset_ << " bytes: " << errno_text());
        write_all(out, buf.data(), size_t(r), tmp);
        copied += uint64_t(r);
      }
    });
  } catch (...) {
    ::close(in);
    throw;
  }
  ::close(in);
  ::unlink(data_path_.c_str());
  finished_ = true;
}

// ---- training state ----

namespace {

// AdamW counts its updates globally and per parameter; the checkpoint's step counts batches.
void check_step_counts(const TrainingState& s, bool has_update_counts, const std::string& path) {
  CKPT_CHECK(s.step >= 0 && s.updates_per_step >= 1 && s.skipped_updates >= 0, path,
             "step " << s.step << ", updates_per_step " << s.updates_per_step << ", skipped_updates "
                     << s.skipped_updates << " must be >= 0, >= 1 and >= 0");
  auto total = s.optimizer_counters.find("adamw.steps");
  if (total == s.optimizer_counters.end()) return;  // no optimizer state saved
  for (const auto& [key, n] : s.optimizer_counters)
    CKPT_CHECK(!starts_with(key, "adamw.step.") || (n >= 0 && n <= total->second), path,
               "AdamW step count of '" << key.substr(11) << "' is " << n << ", outside [0, " << total->second
                                       << "] (the optimizer's step count)");
  // Older checkpoints do not say how many updates a step made: nothing to compare with.
  if (!has_update_counts) return;
  const int64_t expected = s.step * s.updates_per_step - s.skipped_updates;
  CKPT_CHECK(expected == total->second, path,
             "inconsistent: step " << s.step << " (" << s.updates_per_step << " update(s) per step, "
                                   << s.skipped_updates << " skipped) means " << expected
                                   << " AdamW updates, but the optimizer's step count is " << total->second);
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainingState& s) {
  // A device tensor comes to the host once, into a pinned staging buffer (a direct DMA on a
  // GPU): the non-finite check, the checksum and the write all read that copy. The buffers
  // go back to the pinned cache after the write, for the next checkpoint.
  const auto on_host = [](const Tensor& t) { return t.defined() && t.device() != Device::cpu ? t.pinned() : t; };
  // A run that diverged must not replace its last good checkpoint with a useless one.
  const auto refuse_non_finite = [&](const std::string& name, const Tensor& t, const char* what) {
    if (const int64_t bad = count_non_finite(t))
      MNEMO_FAIL("[checkpoint] refusing to write '" << path << "': " << what << " '" << name << "' holds " << bad
                                                    << " NaN/Inf of " << t.numel()
                                                    << " values (the file there is left as it was)");
  };
  NamedTensors tensors;
  for (const auto& [name, t] : s.weights) {
    MNEMO_CHECK(!starts_with(name, "optim/") && !starts_with(name, "memory/"),
                "[checkpoint] weight name '" << name << "' would collide with the optim/ or memory/ sections");
    tensors.emplace_back(name, on_host(t));
    refuse_non_finite(name, tensors.back().second, "weight");
  }
  for (const auto& [name, t] : s.optimizer) {
    tensors.emplace_back("optim/" + name, on_host(t));
    refuse_non_finite(name, tensors.back().second, "optimizer tensor");
  }
  for (const auto& [name, t] : s.memory) {
    tensors.emplace_back("memory/" + name, on_host(t));
    refuse_non_finite(name, tensors.back().second, "memory");
  }

  std::map<std::string, std::string> meta;
  meta["format"] = kFormat;
  meta["step"] = std::to_string(s.step);
  meta["rng_state"] = std::to_string(s.rng_state);
  meta["data_cursor"] = cursor_json(s.data_cursor);
  for (const auto& [k, v] : s.optimizer_counters) meta["optim/" + k] = std::to_string(v);
  for (const auto& [k, v] : s.extra) meta["extra/" + k] = v;
  meta["updates_per_step"] = std::to_string(s.updates_per_step);
  meta["skipped_updates"] = std::to_string(s.skipped_updates);
  for (const auto& [name, t] : tensors)
    if (t.defined()) meta["crc32/" + name] = crc32_hex(t);
  write_safetensors(path, tensors, meta);
}

TrainingState load_checkpoint(const std::string& path) {
  Safetensors f = read_safetensors(path);
  const auto& meta = f.metadata;
  CKPT_CHECK(meta.count("format") && meta.at("format") == kFormat, path,
             "not a mnemo training checkpoint (metadata \"format\" is not \"" << kFormat << "\")");
  for (const char* key : {"step", "rng_state", "data_cursor"})
    CKPT_CHECK(meta.count(key), path, "metadata \"" << key << "\" is missing");

  TrainingState s;
  s.step = parse_i64(meta.at("step"), path, "step");
  s.rng_state = parse_u64(meta.at("rng_state"), path, "rng_state");
  s.data_cursor = parse_cursor(meta.at("data_cursor"), path);
  std::map<std::string, std::string> crcs;
  for (const auto& [k, v] : meta) {
    if (starts_with(k, "optim/")) s.optimizer_counters[k.substr(6)] = parse_i64(v, path, k);
    else if (starts_with(k, "extra/")) s.extra[k.substr(6)] = v;
    else if (starts_with(k, "crc32/")) crcs[k.substr(6)] = v;
    else if (k == "updates_per_step") s.updates_per_step = parse_i64(v, path, k);
    else if (k == "skipped_updates") s.skipped_updates = parse_i64(v, path, k);
    else CKPT_CHECK(k == "format" || k == "step" || k == "rng_state" || k == "data_cursor", path,
                    "unknown metadata key \"" << k << "\"");
  }
  check_step_counts(s, meta.count("updates_per_step") > 0, path);

  // Checkpoints written before checksums existed have no "crc32/" keys at all: they load
  // unverified. One that has any must have them for every tensor, or a lost key would hide damage.
  for (const auto& [name, crc] : crcs)
    CKPT_CHECK(f.tensors.count(name), path, "metadata has a checksum for tensor '" << name << "', which it does not hold");
  for (const std::string& name : f.names) {
    if (crcs.empty()) break;
    auto it = crcs.find(name);
    CKPT_CHECK(it != crcs.end(), path, "tensor '" << name << "' has no checksum (\"crc32/" << name << "\")");
    const std::string actual = crc32_hex(f.tensors.at(name));
    CKPT_CHECK(actual == it->second, path,
               "tensor '" << name << "' is corrupt: its data has CRC32 " << actual << ", the file recorded "
                          << it->second);
  }
  for (const std::string& name : f.names) {  // file order = the order they were saved in
    const Tensor& t = f.tensors.at(name);
    if (const int64_t bad = count_non_finite(t))
      CKPT_FAIL(path, "tensor '" << name << "' holds " << bad << " NaN/Inf of " << t.numel()
                                 << " values; a run cannot continue from non-finite state");
    if (starts_with(name, "optim/")) s.optimizer.emplace_back(name.substr(6), t);
    else if (starts_with(name, "memory/")) s.memory.emplace(name.substr(7), t);
    else s.weights.emplace_back(name, t);
  }
  return s;
}

TrainingState capture(nn::Module& model, const AdamW& opt, const arch::Memory& memory, uint64_t rng_state,
                      std::vector<int64_t> data_cursor) {
  TrainingState s;
  s.step = opt.steps();
  for (const auto& [name, p] : nn::named_params(model)) {
    MNEMO_CHECK(p->value.defined(), "[capture] parameter '" << name << "' is undefined");
    s.weights.emplace_back(name, p->value.clone());  // clones: training goes on in place
  }
  for (const auto& [name, p] : opt.named_params()) {
    const AdamW::State& st = opt.state(p);
    if (st.m.defined()) {
      s.optimizer.emplace_back("adamw.m." + name, st.m.clone());
      s.optimizer.emplace_back("adamw.v." + name, st.v.clone());
    }
    s.optimizer_counters["adamw.step." + name] = st.step;
  }
  s.optimizer_counters["adamw.steps"] = opt.steps();
  for (const auto& [name, t] : memory) s.memory.emplace(name, t.defined() ? t.clone() : t);
  s.rng_state = rng_state;
  s.data_cursor = std::move(data_cursor);
  return s;
}

namespace {

// Problems with the weights, one phrase each; empty when they match the model.
std::vector<std::string> weight_problems(const NamedParams& params, const std::map<std::string, Tensor>& weights) {
  std::vector<std::string> problems, missing, unknown;
  std::set<std::string> model_names;
  for (const auto& [name, p] : params) {
    model_names.insert(name);
    auto it = weights.find(name);
    if (it == weights.end()) {
      missing.push_back(name);
    } else if (!(it->second.shape() == p->value.shape()) || it->second.dtype() != p->value.dtype()) {
      problems.push_back("parameter '" + name + "': model has " + describe(p->value) + ", checkpoint has " +
                         describe(it->second));
    }
  }
  for (const auto& [name, t] : weights)
    if (!model_names.count(name)) unknown.push_back(name);
  if (!missing.empty()) problems.push_back("missing from the checkpoint: " + join(missing));
  if (!unknown.empty()) problems.push_back("unknown to the model: " + join(unknown));
  return problems;
}

// The same for AdamW's state: both moments or neither, shaped like the param, counters present.
std::vector<std::string> optimizer_problems(const AdamW& opt, const std::map<std::string, Tensor>& tensors,
                                            const std::map<std::string, int64_t>& counters) {
  std::vector<std::string> problems;
  std::set<std::string> known;
  for (const auto& [name, p] : opt.named_params()) {
    const std::string m = "adamw.m." + name, v = "adamw.v." + name;
    known.insert(m);
    known.insert(v);
    if (!counters.count("adamw.step." + name)) problems.push_back("no AdamW step count for '" + name + "'");
    const bool has_m = tensors.count(m), has_v = tensors.count(v);
    if (has_m != has_v) problems.push_back("AdamW state of '" + name + "' has only one of m and v");
    for (const std::string& key : {m, v}) {
      auto it = tensors.find(key);
      if (it != tensors.end() && (!(it->second.shape() == p->value.shape()) || it->second.dtype() != p->value.dtype()))
        problems.push_back("optimizer state '" + key + "': parameter has " + describe(p->value) + ", checkpoint has " +
                           describe(it->second));
    }
  }
  std::vector<std::string> unknown;
  for (const auto& [key, t] : tensors)
    if (!known.count(key)) unknown.push_back(key);
  if (!unknown.empty()) problems.push_back("optimizer state for parameters the optimizer does not hold: " + join(unknown));
  if (!counters.count("adamw.steps")) problems.push_back("no AdamW step counter \"adamw.steps\"");
  return problems;
}

}  // namespace

void restore_weights(nn::Module& model, const NamedTensors& weights_in) {
  const NamedParams params = nn::named_params(model);
  const std::map<std::string, Tensor> weights = by_name(weights_in, "weight");
  const std::vector<std::string> problems = weight_problems(params, weights);
  if (!problems.empty()) {
    std::string msg = "[restore] the weights do not match the model:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw Error(msg);
  }
  for (const auto& [name, p] : params) p->value.copy_from(weights.at(name));
}

void restore(nn::Module& model, AdamW& opt, const TrainingState& s) {
  const NamedParams params = nn::named_params(model);
  const std::map<std::string, Tensor> weights = by_name(s.weights, "weight");
  const std::map<std::string, Tensor> optim = by_name(s.optimizer, "optimizer tensor");
  std::vector<std::string> problems = weight_problems(params, weights);
  for (std::string& p : optimizer_problems(opt, optim, s.optimizer_counters)) problems.push_back(std::move(p));
  if (!problems.empty()) {
    std::string msg = "[restore] the checkpoint does not match the model:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw Error(msg);
  }
  // Everything matched: now change things.
  for (const auto& [name, p] : params) p->value.copy_from(weights.at(name));
  for (const auto& [name, p] : opt.named_params()) {
    AdamW::State st;
    if (auto it = optim.find("adamw.m." + name); it != optim.end()) {
      // Copies on the param's device: set_state takes ownership; the TrainingState stays usable.
      st.m = Tensor::empty(p->value.shape(), p->value.dtype(), p->value.device());
      st.m.copy_from(it->second);
      st.v = Tensor::empty(p->value.shape(), p->value.dtype(), p->value.device());
      st.v.copy_from(optim.at("adamw.v." + name));
    }
    st.step = s.optimizer_counters.at("adamw.step." + name);
    opt.set_state(p, std::move(st));
  }
  opt.set_step(s.optimizer_counters.at("adamw.steps"));
}

}  // namespace mnemo::experiments
