// The data readers: a corpus file (plain or gzip, detected by its magic bytes) cut into
// splits, and the token files of `mnemo eval --tokens` (raw bytes, or a safetensors file with
// input.tokens). Every input is read or refused with mnemo::Error; what is read is walked to
// the end.
#include <climits>
#include <cstdlib>
#include <memory>

#include "autograd/error.h"
#include "data/byte_corpus.h"
#include "experiments/evaluate.h"
#include "tests/fuzz/fuzz_support.h"

using namespace mnemo;

namespace {

// The last byte picks the segment length and the validation fraction, so both vary without
// a second input.
void read_corpus(const std::string& path, uint8_t knob) {
  try {
    const auto corpus = data::ByteCorpus::load(path, double(knob % 6) * 0.1);
    int64_t sum = 0;
    for (data::Split s : {data::Split::train, data::Split::valid}) {
      if (s == data::Split::valid && corpus.sizes().valid == 0) continue;
      const data::ByteSpan span = corpus.split(s);
      for (int64_t i = 0; i < span.size; ++i) sum += span[i];
    }
    if (sum < 0) std::abort();  // keeps the reads
  } catch (const Error&) {
  }
}

void read_tokens(std::unique_ptr<experiments::SegmentSource> (*open)(const std::string&, int64_t),
                 const std::string& path, int64_t seg_len) {
  try {
    auto source = open(path, seg_len);
    int64_t sum = 0;
    while (auto seg = source->next()) {
      for (const Tensor* t : {&seg->tokens, &seg->targets}) {
        if (!t->defined()) continue;
        const int32_t* p = t->data<int32_t>();
        for (int64_t i = 0; i < t->numel(); ++i) sum += p[i];
      }
    }
    if (sum == INT64_MIN) std::abort();  // keeps the reads
  } catch (const Error&) {
  }
}

std::unique_ptr<experiments::SegmentSource> open_bytes(const std::string& p, int64_t n) {
  return std::make_unique<experiments::ByteFileSegments>(p, n);
}
std::unique_ptr<experiments::SegmentSource> open_safetensors(const std::string& p, int64_t n) {
  return std::make_unique<experiments::TokenFileSegments>(p, n);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_file("input");
  fuzz::write_file(path, fuzz::as_text(data, size));
  const uint8_t knob = size ? data[size - 1] : 0;
  read_corpus(path, knob);
  const int64_t seg_len = 1 + knob % 9;
  read_tokens(open_bytes, path, seg_len);
  read_tokens(open_safetensors, path, seg_len);
  return 0;
}
