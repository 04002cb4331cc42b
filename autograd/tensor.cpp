#include "autograd/tensor.h"

#include <atomic>
#include <cstring>
#include <iomanip>

#include "kernels/memory.h"

namespace mnemo {

Storage::Storage(size_t n, Device d) : bytes(n), device(d) {
  MNEMO_CHECK(d == Device::cpu, "[tensor] device " << d << " storage needs the CUDA backend, which is not built");
  static std::atomic<uint64_t> next_id{1};
  id = next_id.fetch_add(1, std::memory_order_relaxed);
  ptr = kernels::cpu_alloc(n);
}

Storage::~Storage() { kernels::cpu_free(ptr, bytes); }

namespace {

template <class F>
void visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::i32: return f(int32_t{});
    case DType::u8: return f(uint8_t{});
    case DType::bf16: MNEMO_FAIL("[tensor] bf16 tensors are reserved and not implemented yet");
  }
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  MNEMO_CHECK(dtype != DType::bf16, "[tensor] bf16 tensors are reserved and not implemented yet");
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(t.nbytes(), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::from(const Shape& shape, std::initializer_list<double> values, DType dtype) {
  return from(shape, std::vector<double>(values), dtype);
}

Tensor Tensor::from(const Shape& shape, const std::vector<double>& values, DType dtype) {
  MNEMO_CHECK(int64_t(values.size()) == shape.numel(),
              "[tensor] from: shape " << shape << " needs " << shape.numel() << " values, got " << values.size());
  Tensor t = empty(shape, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = T(values[i]);
  });
  return t;
}

Tensor Tensor::from_ints(const Shape& shape, const std::vector<int32_t>& values) {
  MNEMO_CHECK(int64_t(values.size()) == shape.numel(),
              "[tensor] from_ints: shape " << shape << " needs " << shape.numel() << " values, got " << values.size());
  Tensor t = empty(shape, DType::i32);
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(int32_t));
  return t;
}

Tensor Tensor::randn(const Shape& shape, Rng& rng, DType dtype, double stddev) {
  std::vector<double> v(size_t(shape.numel()));
  for (double& x : v) x = rng.normal() * stddev;
  return from(shape, v, dtype);
}

Tensor Tensor::uniform(const Shape& shape, Rng& rng, double lo, double hi, DType dtype) {
  std::vector<double> v(size_t(shape.numel()));
  for (double& x : v) x = rng.uniform(lo, hi);
  return from(shape, v, dtype);
}

Tensor Tensor::reshape(const Shape& shape) const {
  MNEMO_CHECK(shape.numel() == numel(), "[reshape] cannot view " << shape_ << " (" << numel() << " elements) as "
                                                                 << shape << " (" << shape.numel() << ")");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor t = empty(shape_, dtype_, device());
  std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device());
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) const {
  MNEMO_CHECK(src.shape() == shape_, "[tensor] copy_from: shape " << src.shape() << " into " << shape_);
  bump_version();
  if (src.dtype() == dtype_) {
    std::memcpy(raw(), src.raw(), nbytes());
    return;
  }
  visit_dtype(dtype_, [&](auto dst_tag) {
    using D = decltype(dst_tag);
    visit_dtype(src.dtype(), [&](auto src_tag) {
      using S = decltype(src_tag);
      D* d = data<D>();
      const S* s = src.data<S>();
      for (int64_t i = 0; i < numel(); ++i) d[i] = D(s[i]);
    });
  });
}

double Tensor::item() const {
  MNEMO_CHECK(numel() == 1, "[tensor] item() needs one element, got shape " << shape_);
  return to_vector()[0];
}

double Tensor::at(std::initializer_list<int64_t> index) const {
  MNEMO_CHECK(int(index.size()) == rank(), "[tensor] at: " << index.size() << " indices for shape " << shape_);
  int64_t off = 0;
  int d = 0;
  for (int64_t i : index) {
    MNEMO_CHECK(i >= 0 && i < shape_[d], "[tensor] at: index " << i << " out of range in dim " << d << " of " << shape_);
    off = off * shape_[d] + i;
    ++d;
  }
  double v = 0;
  visit_dtype(dtype_, [&](auto tag) { v = double(data<decltype(tag)>()[off]); });
  return v;
}

std::vector<double> Tensor::to_vector() const {
  std::vector<double> v(static_cast<size_t>(numel()));
  visit_dtype(dtype_, [&](auto tag) {
    const auto* p = data<decltype(tag)>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = double(p[i]);
  });
  return v;
}

void Tensor::fill_(double value) const {
  bump_version();
  visit_dtype(dtype_, [&](auto tag) {
    using T = decltype(tag);
    T* __restrict p = data<T>();
    const int64_t n = numel();  // hoisted: the stores could alias the shape as far as GCC knows
    for (int64_t i = 0; i < n; ++i) p[i] = T(value);
  });
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor" << t.shape() << " " << t.dtype() << " [";
  const auto v = t.to_vector();
  const size_t n = std::min<size_t>(v.size(), 8);
  for (size_t i = 0; i < n; ++i) os << (i ? ", " : "") << std::setprecision(6) << v[i];
  if (v.size() > n) os << ", ...";
  return os << "]";
}

}  // namespace mnemo
