// Device memory for Device::cuda storage: the emulated device (host memory from a block
// cache with the real allocator's policy) or the CUDA runtime; the transfer counts.
#include "kernels/emulated/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "kernels/cuda/available.h"
#include "kernels/emulated/emulation.h"
#include "kernels/kernels.h"
#include "kernels/memory.h"
#include "mnemo_config.h"
#if MNEMO_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace mnemo::kernels::device {
namespace {

struct Emulated {
  std::mutex mu;
  // Host blocks aligned as the CPU allocator's, so the CPU kernels take the same paths
  // (and give the same bits) on emulated device memory as on host tensors.
  cuda::BlockCache cache{{[](size_t n) { return std::aligned_alloc(kAlignment, n); },
                          [](void* p) { std::free(p); }, "emulated device"}};
};

Emulated& emu() {
  static Emulated* e = new Emulated;  // never destroyed: tensors may be freed during static teardown
  return *e;
}

std::atomic<bool> g_emulated{false};
std::atomic<uint64_t> g_to_device{0}, g_to_host{0}, g_on_device{0}, g_to_device_bytes{0}, g_to_host_bytes{0};
std::atomic<int64_t> g_live{0};
std::atomic<uint64_t> g_result_reads{0};

[[noreturn]] void refuse() {
  throw std::runtime_error("[device] a cuda tensor cannot be made here: " + unavailable() +
                           " (MNEMO_EMULATE_CUDA=1 emulates the device on the host)");
}

}  // namespace

bool emulated() { return g_emulated.load(std::memory_order_relaxed); }

namespace {

void switch_emulation(bool on) {
  if (on == emulated()) return;
  if (g_live.load() != 0)
    throw std::logic_error("[device] cannot switch CUDA emulation " + std::string(on ? "on" : "off") + " while " +
                           std::to_string(g_live.load()) + " cuda tensors are alive");
  fill_emulated_slots(on);
  g_emulated = on;
}

}  // namespace

void set_cuda_emulation(bool on) {
  init();  // the slots must be filled before emulation swaps the cuda entries
  switch_emulation(on);
}

void apply_emulation_variable() {
  const char* value = std::getenv("MNEMO_EMULATE_CUDA");
  const std::string v = value ? value : "";
  if (v == "1") switch_emulation(true);
  else if (!v.empty() && v != "0")
    throw std::invalid_argument("[kernels] MNEMO_EMULATE_CUDA='" + v + "': expected 1 or 0 (or unset)");
}

std::string unavailable() {
  init();  // MNEMO_EMULATE_CUDA first
  if (emulated()) return "";
  return cuda::cuda_unavailable();
}

void* alloc(size_t bytes) {
  if (emulated()) {
    Emulated& e = emu();
    std::lock_guard lock(e.mu);
    return e.cache.allocate(bytes);
  }
#if MNEMO_WITH_CUDA
  if (cuda::device_available()) return cuda::device_alloc(bytes);
#endif
  refuse();
}

void free(void* p) {
  if (!p) return;
  if (emulated()) {
    Emulated& e = emu();
    std::lock_guard lock(e.mu);
    e.cache.release(p);
    return;
  }
#if MNEMO_WITH_CUDA
  cuda::device_free(p);
#endif
}

void to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  ++g_to_device;
  g_to_device_bytes += bytes;
  if (emulated()) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if MNEMO_WITH_CUDA
  cuda::copy_to_device(dst, src, bytes);
#else
  refuse();
#endif
}

void to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  ++g_to_host;
  g_to_host_bytes += bytes;
  if (emulated()) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if MNEMO_WITH_CUDA
  cuda::copy_to_host(dst, src, bytes);
#else
  refuse();
#endif
}

void on_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  ++g_on_device;
  if (emulated()) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if MNEMO_WITH_CUDA
  cuda::copy_on_device(dst, src, bytes);
#else
  refuse();
#endif
}

void memset(void* p, int value, size_t bytes) {
  if (bytes == 0) return;
  if (emulated()) {
    std::memset(p, value, bytes);
    return;
  }
#if MNEMO_WITH_CUDA
  cuda::memset_device(p, value, bytes);
#else
  refuse();
#endif
}

void synchronize() {
#if MNEMO_WITH_CUDA
  if (!emulated() && cuda::device_available()) cuda::synchronize();
#endif
}

Stats stats() {
  Stats s;
  if (emulated()) {
    Emulated& e = emu();
    std::lock_guard lock(e.mu);
    s.memory = e.cache.stats();
  }
#if MNEMO_WITH_CUDA
  else if (cuda::device_available()) {
    s.memory = cuda::device_memory_stats();
  }
#endif
  s.to_device = g_to_device;
  s.to_host = g_to_host;
  s.on_device = g_on_device;
  s.to_device_bytes = g_to_device_bytes;
  s.to_host_bytes = g_to_host_bytes;
  s.live_tensors = uint64_t(g_live.load());
  s.result_reads = g_result_reads;
  return s;
}

void reset_peak() {
  if (emulated()) {
    Emulated& e = emu();
    std::lock_guard lock(e.mu);
    e.cache.reset_peaks();
    return;
  }
#if MNEMO_WITH_CUDA
  if (cuda::device_available()) cuda::reset_device_peak();
#endif
}

void result_read() { ++g_result_reads; }
void storage_created() { ++g_live; }
void storage_destroyed() { --g_live; }

// ---- pinned host memory ----

namespace {

// The emulated device's pinned blocks: a cache of their own, so that its counts show what a
// run's data and checkpoints would hold page-locked on a GPU.
struct EmulatedPinned {
  std::mutex mu;
  cuda::BlockCache cache{{[](size_t n) { return std::aligned_alloc(kAlignment, n); },  // n: a multiple of 512
                          [](void* p) { std::free(p); }, "emulated pinned host"}};
};

EmulatedPinned& emu_pinned() {
  static EmulatedPinned* e = new EmulatedPinned;  // never destroyed, as emu()
  return *e;
}

std::atomic<int64_t> g_pinned_live{0};
std::atomic<uint64_t> g_to_device_pinned{0}, g_to_device_pinned_bytes{0};

}  // namespace

void* pinned_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  if (emulated()) {
    EmulatedPinned& e = emu_pinned();
    std::lock_guard lock(e.mu);
    p = e.cache.allocate(bytes);
  } else {
#if MNEMO_WITH_CUDA
    if (cuda::device_available()) p = cuda::pinned_alloc(bytes);
#endif
    if (!p)
      throw std::runtime_error("[device] pinned host memory cannot be allocated here: " + unavailable() +
                               " (MNEMO_EMULATE_CUDA=1 emulates the device on the host)");
  }
  ++g_pinned_live;
  return p;
}

void pinned_free(void* p) {
  if (!p) return;
  {
    EmulatedPinned& e = emu_pinned();
    std::lock_guard lock(e.mu);
    // By owner, not by the current mode: emulation may have been switched since the alloc.
    if (!MNEMO_WITH_CUDA || e.cache.owns(p)) {
      e.cache.release(p);  // throws for a pointer no pinned cache handed out
      --g_pinned_live;
      return;
    }
  }
#if MNEMO_WITH_CUDA
  cuda::pinned_free(p);
  --g_pinned_live;
#endif
}

void to_device_from_pinned(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  ++g_to_device_pinned;
  g_to_device_pinned_bytes += bytes;
  to_device(dst, src, bytes);  // the same queued copy: from pinned memory it is asynchronous
}

PinnedStats pinned_stats() {
  PinnedStats s;
  if (emulated()) {
    EmulatedPinned& e = emu_pinned();
    std::lock_guard lock(e.mu);
    s.memory = e.cache.stats();
  }
#if MNEMO_WITH_CUDA
  else if (cuda::device_available()) {
    s.memory = cuda::pinned_memory_stats();
  }
#endif
  s.live_blocks = uint64_t(g_pinned_live.load());
  s.to_device = g_to_device_pinned;
  s.to_device_bytes = g_to_device_pinned_bytes;
  return s;
}

}  // namespace mnemo::kernels::device
