// Tensor: an owning, contiguous, row-major block of numbers on one device. It knows
// nothing about gradients. Copies are shallow (shared storage, so reshape is free);
// clone() copies the data. CPU storage comes from the caching allocator (kernels/memory.h),
// cuda storage from the device memory (kernels/emulated/device.h: the CUDA runtime, or the
// emulated device). Host code reads a cuda tensor only through an explicit copy (to(),
// to_vector(), item(), at()); data<T>() and raw() refuse it, and kernels get its device
// pointer from launch() (autograd/dispatch.h).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/error.h"
#include "autograd/random.h"
#include "autograd/shape.h"

namespace mnemo {

struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::cpu;
  // For caches of converted copies (a weight's bf16 copy, kernels/precision.h): an id no
  // other storage of the process gets, a version that copy_from, fill_ and the optimizers'
  // steps bump, and whether it entered a tape as a parameter.
  uint64_t id = 0;
  uint64_t version = 0;
  bool weight = false;
  // Host memory from the pinned allocator (kernels::device::pinned_alloc), freed there.
  bool pinned = false;
  Storage(size_t n, Device d, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu) {
    return full(Shape{}, value, dtype, device);
  }
  // Values in row-major order, converted to `dtype` (on the host, then copied to `device`).
  static Tensor from(const Shape& shape, std::initializer_list<double> values, DType dtype = DType::f32,
                     Device device = Device::cpu);
  static Tensor from(const Shape& shape, const std::vector<double>& values, DType dtype = DType::f32,
                     Device device = Device::cpu);
  static Tensor from_ints(const Shape& shape, const std::vector<int32_t>& values, Device device = Device::cpu);
  static Tensor randn(const Shape& shape, Rng& rng, DType dtype = DType::f32, double stddev = 1.0);
  static Tensor uniform(const Shape& shape, Rng& rng, double lo, double hi, DType dtype = DType::f32);
  // A cpu tensor in page-locked memory (kernels/emulated/device.h: pinned_alloc), for data
  // that goes to the device: a copy from it is asynchronous on a GPU. Otherwise an ordinary
  // host tensor. Fill it, then copy from it: a host write after a copy to the device was
  // queued would race with that copy.
  static Tensor pinned_empty(const Shape& shape, DType dtype = DType::f32);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::cpu; }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  // The host pointer. Handle semantics: a const Tensor still gives write access to its
  // (shared) storage. A cuda tensor is refused: copy it to the host first.
  template <class T> T* data() const {
    MNEMO_CHECK(defined(), "[tensor] data<" << dtype_name(dtype_of<T>()) << ">() of an undefined tensor");
    MNEMO_CHECK(dtype_of<T>() == dtype_, "[tensor] data<" << dtype_name(dtype_of<T>()) << ">() of a "
                                                          << dtype_name(dtype_) << " tensor " << shape_);
    if (storage_->device != Device::cpu) refuse_host_access("data<T>()");
    return static_cast<T*>(storage_->ptr);
  }
  void* raw() const {
    if (storage_ && storage_->device != Device::cpu) refuse_host_access("raw()");
    return storage_ ? storage_->ptr : nullptr;
  }

  Tensor reshape(const Shape& shape) const;   // shares storage
  Tensor clone() const;
  Tensor to(DType dtype) const;               // a copy unless already `dtype`
  Tensor to(Device device) const;             // a copy unless already on `device`
  Tensor pinned() const;                      // a pinned host copy unless already pinned
  bool is_pinned() const { return storage_ && storage_->pinned; }
  Tensor empty_like() const { return empty(shape_, dtype_, device()); }
  Tensor zeros_like() const { return zeros(shape_, dtype_, device()); }

  double item() const;                        // the value of a one-element tensor, as double
  double at(std::initializer_list<int64_t> index) const;
  std::vector<double> to_vector() const;      // any dtype, converted to double
  void fill_(double value) const;
  void copy_from(const Tensor& src) const;    // same shape; converts dtype; any devices

  bool unique() const { return storage_.use_count() == 1; }
  // The storage's id and version (Storage above); writes outside copy_from, fill_ and the
  // optimizers call bump_version() where a cached copy could otherwise outlive them.
  uint64_t storage_id() const { return storage_ ? storage_->id : 0; }
  uint64_t version() const { return storage_ ? storage_->version : 0; }
  void bump_version() const {
    if (storage_) ++storage_->version;
  }
  bool is_weight() const { return storage_ && storage_->weight; }
  void mark_weight() const {
    if (storage_) storage_->weight = true;
  }
  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }

 private:
  friend struct KernelArgs;  // autograd/dispatch.h: the one reader of device pointers
  void* storage_ptr() const { return storage_ ? storage_->ptr : nullptr; }
  [[noreturn]] void refuse_host_access(const char* what) const;
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  DType dtype_ = DType::f32;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace mnemo
