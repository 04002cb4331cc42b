// Shape: up to kMaxDims extents, row-major. Negative axes count from the end.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>

#include "autograd/error.h"
#include "kernels/kernels.h"

namespace mnemo {

inline constexpr int kMaxDims = kernels::kMaxDims;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}
  explicit Shape(std::span<const int64_t> dims) {
    MNEMO_CHECK(dims.size() <= size_t(kMaxDims), "[shape] at most " << kMaxDims << " dims, got " << dims.size());
    int64_t n = 1;  // the element count must fit, with room for 8-byte elements
    for (int64_t d : dims) {
      MNEMO_CHECK(d >= 0, "[shape] negative extent " << d);
      MNEMO_CHECK(!__builtin_mul_overflow(n, d, &n) && n <= (int64_t(1) << 59),
                  "[shape] " << describe(dims) << " has too many elements");
      dims_[rank_++] = d;
    }
  }

  int rank() const { return rank_; }
  static std::string describe(std::span<const int64_t> dims) {
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + ")";
  }
  int64_t operator[](int i) const { return dims_[axis(i)]; }
  int64_t& operator[](int i) { return dims_[axis(i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  const int64_t* begin() const { return dims_; }
  const int64_t* end() const { return dims_ + rank_; }
  std::span<const int64_t> dims() const { return {dims_, size_t(rank_)}; }

  // Index of `i` in [0, rank), accepting -rank..-1.
  int axis(int i) const {
    const int a = i < 0 ? i + rank_ : i;
    MNEMO_CHECK(a >= 0 && a < rank_, "[shape] axis " << i << " out of range for " << str());
    return a;
  }
  // Product of the extents before `a`, and after it: the (outer, n, inner) view of an axis.
  int64_t outer(int a) const {
    int64_t n = 1;
    for (int i = 0; i < axis(a); ++i) n *= dims_[i];
    return n;
  }
  int64_t inner(int a) const {
    int64_t n = 1;
    for (int i = axis(a) + 1; i < rank_; ++i) n *= dims_[i];
    return n;
  }

  Shape with(int a, int64_t extent) const {
    Shape s = *this;
    s.dims_[axis(a)] = extent;
    return s;
  }
  Shape without(int a) const {
    const int ax = axis(a);
    Shape s;
    for (int i = 0; i < rank_; ++i)
      if (i != ax) s.dims_[s.rank_++] = dims_[i];
    return s;
  }
  void push_back(int64_t d) {
    MNEMO_CHECK(rank_ < kMaxDims, "[shape] at most " << kMaxDims << " dims");
    dims_[rank_++] = d;
  }

  bool operator==(const Shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[i] != o.dims_[i]) return false;
    return true;
  }

  std::string str() const {
    std::string s = "(";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    if (rank_ == 1) s += ",";
    return s + ")";
  }

 private:
  int64_t dims_[kMaxDims] = {};
  int rank_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

}  // namespace mnemo
