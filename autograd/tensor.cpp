#include "autograd/tensor.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <iomanip>

#include "autograd/dispatch.h"
#include "kernels/emulated/device.h"
#include "kernels/memory.h"

namespace mnemo {

namespace device = kernels::device;

Storage::Storage(size_t n, Device d, bool pin) : bytes(n), device(d), pinned(pin) {
  if (pinned) {
    MNEMO_ASSERT(d == Device::cpu);
    const std::string why = device::unavailable();
    MNEMO_CHECK(why.empty(), "[tensor] pinned host memory is for copies to a cuda device, and there is none: " << why);
    ptr = device::pinned_alloc(n);
  } else if (d == Device::cuda) {
    const std::string why = device::unavailable();  // applies MNEMO_EMULATE_CUDA first
    MNEMO_CHECK(why.empty(), "[tensor] a cuda tensor cannot be made here: "
                                 << why << " (MNEMO_EMULATE_CUDA=1 emulates the device on the host)");
    ptr = device::alloc(n);
    device::storage_created();
  } else {
    ptr = kernels::cpu_alloc(n);
  }
  static std::atomic<uint64_t> next_id{1};
  id = next_id.fetch_add(1, std::memory_order_relaxed);
}

Storage::~Storage() {
  if (pinned) {
    device::pinned_free(ptr);
  } else if (device == Device::cuda) {
    device::free(ptr);
    device::storage_destroyed();
  } else {
    kernels::cpu_free(ptr, bytes);
  }
}

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

void Tensor::refuse_host_access(const char* what) const {
  MNEMO_FAIL("[tensor] " << what << " of a " << device() << " " << dtype_name(dtype_) << " tensor " << shape_
                         << ": host code must copy it first (to(Device::cpu), to_vector(), item()); kernels get "
                            "device pointers through launch()");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  MNEMO_CHECK(dtype != DType::bf16, "[tensor] bf16 tensors are reserved and not implemented yet");
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(t.nbytes(), device);
  return t;
}

Tensor Tensor::pinned_empty(const Shape& shape, DType dtype) {
  MNEMO_CHECK(dtype != DType::bf16, "[tensor] bf16 tensors are reserved and not implemented yet");
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(t.nbytes(), Device::cpu, /*pinned=*/true);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device == Device::cuda) device::memset(t.storage_ptr(), 0, t.nbytes());
  else std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from(const Shape& shape, std::initializer_list<double> values, DType dtype, Device device) {
  return from(shape, std::vector<double>(values), dtype, device);
}

Tensor Tensor::from(const Shape& shape, const std::vector<double>& values, DType dtype, Device device) {
  MNEMO_CHECK(int64_t(values.size()) == shape.numel(),
              "[tensor] from: shape " << shape << " needs " << shape.numel() << " values, got " << values.size());
  Tensor t = empty(shape, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = T(values[i]);
  });
  return t.to(device);
}

Tensor Tensor::from_ints(const Shape& shape, const std::vector<int32_t>& values, Device device) {
  MNEMO_CHECK(int64_t(values.size()) == shape.numel(),
              "[tensor] from_ints: shape " << shape << " needs " << shape.numel() << " values, got " << values.size());
  Tensor t = empty(shape, DType::i32, device);
  if (values.empty()) return t;
  if (device == Device::cuda) device::to_device(t.storage_ptr(), values.data(), values.size() * sizeof(int32_t));
  else std::memcpy(t.raw(), values.data(), values.size() * sizeof(int32_t));
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
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device d) const {
  if (!defined() || d == device()) return *this;
  Tensor t = empty(shape_, dtype_, d);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::pinned() const {
  if (!defined() || is_pinned()) return *this;
  Tensor t = pinned_empty(shape_, dtype_);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) const {
  MNEMO_CHECK(src.shape() == shape_, "[tensor] copy_from: shape " << src.shape() << " into " << shape_);
  bump_version();
  const Device dd = device(), sd = src.device();
  if (src.dtype() == dtype_) {
    void* d = storage_ptr();
    const void* s = src.storage_ptr();
    if (dd == Device::cpu && sd == Device::cpu) std::memcpy(d, s, nbytes());
    else if (dd == Device::cpu) device::to_host(d, s, nbytes());
    else if (sd == Device::cpu && src.is_pinned()) device::to_device_from_pinned(d, s, nbytes());
    else if (sd == Device::cpu) device::to_device(d, s, nbytes());
    else device::on_device(d, s, nbytes());
    return;
  }
  if (dd != Device::cpu || sd != Device::cpu) {
    // A conversion across or on the device goes through the host: rare (a checkpoint of
    // another dtype), and explicit, so no kernel per dtype pair is needed.
    Tensor host = empty(shape_, dtype_);
    host.copy_from(src.to(Device::cpu));
    copy_from(host);
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
  visit_dtype(dtype_, [&](auto tag) {
    using T = decltype(tag);
    if (device() == Device::cpu) {
      v = double(data<T>()[off]);
    } else {
      T x;
      device::to_host(&x, static_cast<const T*>(storage_ptr()) + off, sizeof(T));
      v = double(x);
    }
  });
  return v;
}

std::vector<double> Tensor::to_vector() const {
  if (device() != Device::cpu) return to(Device::cpu).to_vector();
  std::vector<double> v(static_cast<size_t>(numel()));
  visit_dtype(dtype_, [&](auto tag) {
    const auto* p = data<decltype(tag)>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = double(p[i]);
  });
  return v;
}

void Tensor::fill_(double value) const {
  if (device() != Device::cpu) {
    bump_version();
    // Zero is all-zero bytes in every dtype; f32 has a fill kernel; the rest is filled on the host.
    if (value == 0 && !std::signbit(value)) device::memset(storage_ptr(), 0, nbytes());
    else if (dtype_ == DType::f32) launch(kernels::fill, *this, *this, numel(), float(value));
    else copy_from(full(shape_, value, dtype_));
    return;
  }
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
