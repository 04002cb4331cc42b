// The CUDA runtime as the rest of mnemo sees it (plain C++, no CUDA headers): whether a
// device is there, device and pinned host memory from caching allocators, copies, the one
// stream every kernel of the run is queued on, the matmul precision, and whole-step CUDA
// Graph capture. Built only with -Dcuda=enabled (MNEMO_WITH_CUDA); docs/CUDA.md.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "kernels/cuda/block_cache.h"

namespace mnemo::kernels::cuda {

// False when the driver finds no device (a CPU machine): callers then skip or fail clearly.
bool device_available();
std::string device_description();  // "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" or why there is none

// Device memory: never cudaMalloc in a steady-state step (block_cache.h). Thread-safe.
void* device_alloc(size_t bytes);
void device_free(void* p);
CacheStats device_memory_stats();
void reset_device_peak();
void empty_device_cache();
// Page-locked host buffers (data batches, checkpoints): copies from them are asynchronous,
// so a block freed while a copy from it may still be queued is handed out again only after
// that copy ran (an event recorded on the stream at the free, waited for at the reuse).
void* pinned_alloc(size_t bytes);
void pinned_free(void* p);
CacheStats pinned_memory_stats();

// Copies queued on the run's stream; to_host waits for it (the only synchronisation a step
// needs is for the values it logs).
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_on_device(void* dst, const void* src, size_t bytes);
void memset_device(void* p, int value, size_t bytes);
void synchronize();

// GEMMs: f32 (exact, the default: tests compare against the reference), tf32 tensor cores,
// or bf16 tensor cores (operands rounded to bf16, f32 accumulation and output).
enum class MatmulPrecision { f32, tf32, bf16 };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
// "f32", "tf32" or "bf16"; anything else throws naming the value.
MatmulPrecision parse_matmul_precision(const std::string& s);

// Runs step() for shapes `key`: eagerly during warm-up, then captured into a CUDA Graph,
// then by replaying it (graph_plan.h). Memory the step allocates while captured comes from
// a pool that belongs to the graph, so a replay never finds its blocks reused elsewhere.
// Returns what it did ("eager", "capture", "replay").
const char* run_step(const std::string& key, const std::function<void()>& step);

}  // namespace mnemo::kernels::cuda
