// The safetensors reader (experiments/checkpoint.cpp): any bytes either decode or are refused
// with mnemo::Error. What decodes must encode again and decode to the same tensors: the
// reader accepts nothing the writer could not have written (up to I64 read as I32).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "autograd/error.h"
#include "experiments/checkpoint.h"
#include "tests/fuzz/fuzz_support.h"

using namespace mnemo;
using namespace mnemo::experiments;

namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Safetensors st;
  try {
    st = decode_safetensors(std::string(fuzz::as_text(data, size)), "fuzz");
  } catch (const Error&) {
    return 0;
  }
  NamedTensors tensors;
  for (const std::string& name : st.names) tensors.emplace_back(name, st.tensors.at(name));
  const Safetensors back = decode_safetensors(encode_safetensors(tensors, st.metadata), "re-encoded");
  if (back.names != st.names || back.metadata != st.metadata) {
    std::fprintf(stderr, "re-encoding changed the names or the metadata\n");
    std::abort();
  }
  for (const std::string& name : st.names)
    if (!same_bytes(st.tensors.at(name), back.tensors.at(name))) {
      std::fprintf(stderr, "re-encoding changed tensor '%s'\n", name.c_str());
      std::abort();
    }
  return 0;
}
