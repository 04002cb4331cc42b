// The memory of Device::cuda tensors, as Storage and Tensor see it: the real CUDA runtime
// (kernels/cuda/runtime.h) in a CUDA build with a device, or the emulated device: host
// memory behind the same interface and the same caching policy (block_cache.h), switched on
// for the whole process (set_cuda_emulation, or MNEMO_EMULATE_CUDA=1 read by kernels::init()).
// Emulation also fills the Backend::cuda kernel slots that the real backend fills
// (kernels/cuda/slots.h) with the CPU kernels, so that a model needing a kernel CUDA lacks
// fails here as it would on a GPU, and an emulated run that matches the CPU run bit for bit
// shows that every host access of device memory goes through an explicit copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda/block_cache.h"

namespace mnemo::kernels::device {

// Whether Device::cuda memory is the emulated device. Switching it with tensors alive on
// either device is an error (their memory would be freed to the wrong allocator).
bool emulated();
void set_cuda_emulation(bool on);

// MNEMO_EMULATE_CUDA=1 switches emulation on, 0 or unset leaves it off, anything else throws;
// kernels::init() calls it once, after filling the slots.
void apply_emulation_variable();

// Why a Device::cuda tensor cannot be made here, "" when it can: emulation on, or the CUDA
// backend built and a device present.
std::string unavailable();

// Never null for bytes > 0; throws with unavailable()'s reason when there is no device.
void* alloc(size_t bytes);
void free(void* p);

// Copies between host and device memory and on the device; to_host waits for the device.
void to_device(void* dst, const void* src, size_t bytes);
void to_host(void* dst, const void* src, size_t bytes);
void on_device(void* dst, const void* src, size_t bytes);
void memset(void* p, int value, size_t bytes);
void synchronize();

// What the device memory did: the caching allocator's counts (peak bytes, calls to the
// backing allocator) and the transfers, so tests can check what a step reads back.
struct Stats {
  cuda::CacheStats memory;
  uint64_t to_device = 0, to_host = 0, on_device = 0;  // copies
  uint64_t to_device_bytes = 0, to_host_bytes = 0;
  uint64_t live_tensors = 0;  // Device::cuda storages alive
  uint64_t result_reads = 0;  // kernels whose result the host waited for (count_non_finite)
  // Every wait of the host for the device: the copies to the host and the results read.
  uint64_t host_waits() const { return to_host + result_reads; }
};
Stats stats();
void reset_peak();

// For launch(): a kernel on a cuda tensor returned a value to the host.
void result_read();

// For Storage: counts live device storages, so the switch can refuse with tensors alive.
void storage_created();
void storage_destroyed();

// ---- pinned host memory ----
// Page-locked host blocks for data batches and checkpoint staging. A copy to the device from
// pageable memory is staged through a driver buffer and is effectively synchronous; from a
// pinned block it is an asynchronous DMA on the run's stream, so the host can go on. The CUDA
// runtime's pinned cache in a CUDA build with a device (runtime.cpp: a block freed while a
// copy from it may still be queued is handed out again only after that copy ran); on the
// emulated device, 64-byte aligned host blocks from a cache of their own. Never null for
// bytes > 0; throws with unavailable()'s reason when there is neither. pinned_free takes
// blocks of either kind, so a block outlives a switch of emulation.
void* pinned_alloc(size_t bytes);
void pinned_free(void* p);
// A host-to-device copy whose source is pinned memory: counted in Stats::to_device and in
// Stats::to_device_pinned, so tests can see where a transfer came from.
void to_device_from_pinned(void* dst, const void* src, size_t bytes);
struct PinnedStats {
  cuda::CacheStats memory;       // the pinned cache in use (emulated or the runtime's)
  uint64_t live_blocks = 0;      // handed out by pinned_alloc and not yet freed (either kind)
  uint64_t to_device = 0, to_device_bytes = 0;  // copies from pinned memory to the device
};
PinnedStats pinned_stats();

// Switches emulation on for a scope (tests), restoring the previous state.
class ScopedEmulation {
 public:
  explicit ScopedEmulation(bool on = true) : prev_(emulated()) { set_cuda_emulation(on); }
  ~ScopedEmulation() { set_cuda_emulation(prev_); }
  ScopedEmulation(const ScopedEmulation&) = delete;
  ScopedEmulation& operator=(const ScopedEmulation&) = delete;

 private:
  bool prev_;
};

}  // namespace mnemo::kernels::device
