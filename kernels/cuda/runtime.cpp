// The CUDA runtime behind runtime.h: one lazily created stream and cuBLAS handle per
// process, the device and pinned-host block caches, and whole-step graph capture with a
// private memory pool per graph.
#include "kernels/cuda/runtime.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/graph_plan.h"

namespace mnemo::kernels::cuda {
namespace {

constexpr size_t kCublasWorkspace = size_t(32) << 20;  // fixed, so cuBLAS allocates nothing inside a capture

BlockCache::Backing device_backing(const char* what) {
  return {[](size_t n) -> void* {
            void* p = nullptr;
            return cudaMalloc(&p, n) == cudaSuccess ? p : (cudaGetLastError(), nullptr);
          },
          [](void* p) { cudaFree(p); }, what};
}

struct Graph {
  cudaGraphExec_t exec = nullptr;
  std::unique_ptr<BlockCache> pool;  // what the captured step allocated; lives as long as the graph
};

struct Runtime {
  std::recursive_mutex mu;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  BlockCache device{device_backing("device")};
  BlockCache pinned{{[](size_t n) -> void* {
                       void* p = nullptr;
                       return cudaHostAlloc(&p, n, cudaHostAllocDefault) == cudaSuccess ? p
                                                                                        : (cudaGetLastError(), nullptr);
                     },
                     [](void* p) { cudaFreeHost(p); }, "pinned host"}};
  // Pinned blocks freed while a copy from them may still be queued, each with the event
  // recorded on the stream at its free; events whose copies ran wait in the pool for reuse,
  // so a steady state creates none.
  std::unordered_map<void*, cudaEvent_t> pinned_pending;
  std::vector<cudaEvent_t> event_pool;
  GraphPlan plan;
  std::unordered_map<void*, Graph> graphs;           // by exec
  std::vector<std::unique_ptr<BlockCache>> retired;  // pools of failed captures: their blocks may still be held
  BlockCache* capture_pool = nullptr;                // while a step is being captured
  MatmulPrecision precision = MatmulPrecision::f32;

  BlockCache& owner(void* p) {
    if (capture_pool && capture_pool->owns(p)) return *capture_pool;
    if (device.owns(p)) return device;
    for (auto& [exec, g] : graphs)
      if (g.pool->owns(p)) return *g.pool;
    for (auto& pool : retired)
      if (pool->owns(p)) return *pool;
    throw std::invalid_argument("[cuda] device_free of a pointer no device cache handed out");
  }
};

// Never destroyed: tearing down streams and handles after the driver has unloaded at exit
// fails, and the process is ending anyway.
Runtime& rt() {
  static Runtime* r = new Runtime;
  return *r;
}

void require_device() {
  if (!device_available()) throw std::runtime_error("[cuda] no CUDA device: " + device_description());
}

}  // namespace

bool device_available() {
  static const bool yes = [] {
    int n = 0;
    const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    cudaGetLastError();  // clear the error a CPU machine leaves
    return ok;
  }();
  return yes;
}

std::string device_description() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
  }
  if (n == 0) return "the driver reports 0 devices";
  cudaDeviceProp p{};
  MNEMO_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  std::ostringstream s;
  s << p.name << ", sm_" << p.major << p.minor << ", " << double(p.totalGlobalMem) / double(1 << 30) << " GiB";
  return s.str();
}

cudaStream_t stream() {
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  if (!r.stream) {
    require_device();
    MNEMO_CUDA_CHECK(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
  }
  return r.stream;
}

void* cublas_handle() {
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  if (!r.cublas) {
    cudaStream_t s = stream();
    if (cublasCreate(&r.cublas) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("[cuda] cublasCreate failed");
    cublasSetStream(r.cublas, s);
    cublasSetWorkspace(r.cublas, r.device.allocate(kCublasWorkspace), kCublasWorkspace);
  }
  return r.cublas;
}

void* device_alloc(size_t bytes) {
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  require_device();
  return (r.capture_pool ? *r.capture_pool : r.device).allocate(bytes);
}

void device_free(void* p) {
  if (!p) return;
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  r.owner(p).release(p);
}

CacheStats device_memory_stats() {
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  CacheStats s = r.device.stats();
  for (auto& [exec, g] : r.graphs) {  // a graph's pool is device memory the run holds too
    s.reserved_bytes += g.pool->stats().reserved_bytes;
    s.peak_reserved_bytes += g.pool->stats().peak_reserved_bytes;
  }
  return s;
}

void reset_device_peak() {
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  r.device.reset_peaks();
}

void empty_device_cache() {
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  if (r.stream) MNEMO_CUDA_CHECK(cudaStreamSynchronize(r.stream));  // queued kernels may still use cached blocks
  r.device.empty_cache();
}

namespace {

// Events of pinned_pending whose copies have run go back to the pool (r.mu held).
void recycle_finished_events(Runtime& r) {
  for (auto it = r.pinned_pending.begin(); it != r.pinned_pending.end();) {
    const cudaError_t e = cudaEventQuery(it->second);
    if (e == cudaErrorNotReady) {
      cudaGetLastError();  // not an error: the copy is still queued
      ++it;
      continue;
    }
    MNEMO_CUDA_CHECK(e);
    r.event_pool.push_back(it->second);
    it = r.pinned_pending.erase(it);
  }
}

// Before the host writes into a block handed out again, the copies queued from it when it
// was freed must have run (r.mu held).
void wait_for_pending_copies(Runtime& r, void* p) {
  auto it = r.pinned_pending.find(p);
  if (it == r.pinned_pending.end()) return;
  MNEMO_CUDA_CHECK(cudaEventSynchronize(it->second));
  r.event_pool.push_back(it->second);
  r.pinned_pending.erase(it);
}

}  // namespace

void* pinned_alloc(size_t bytes) {
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  require_device();
  void* p = r.pinned.allocate(bytes);
  wait_for_pending_copies(r, p);
  return p;
}

void pinned_free(void* p) {
  if (!p) return;
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  r.pinned.release(p);  // first: a pointer it did not hand out throws before anything is recorded
  // Nothing can be queued before the stream exists. While a step is being captured its copies
  // have not run (and an event recorded now could not be waited for): a graph that reads
  // pinned memory needs that memory alive at its replays, which no event can give.
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (r.stream) MNEMO_CUDA_CHECK(cudaStreamIsCapturing(r.stream, &capturing));
  if (r.stream && capturing == cudaStreamCaptureStatusNone) {
    recycle_finished_events(r);
    cudaEvent_t event = nullptr;
    if (r.event_pool.empty()) {
      MNEMO_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    } else {
      event = r.event_pool.back();
      r.event_pool.pop_back();
    }
    MNEMO_CUDA_CHECK(cudaEventRecord(event, r.stream));
    // A stale entry (a block given back to cudaFreeHost by an emptied cache, its address
    // reused) is replaced: the new event is recorded later on the same stream.
    auto [it, fresh] = r.pinned_pending.emplace(p, event);
    if (!fresh) {
      r.event_pool.push_back(it->second);
      it->second = event;
    }
  }
}

CacheStats pinned_memory_stats() {
  Runtime& r = rt();
  std::lock_guard lock(r.mu);
  return r.pinned.stats();
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes) MNEMO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  MNEMO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
  MNEMO_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes) MNEMO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}

void memset_device(void* p, int value, size_t bytes) {
  if (bytes) MNEMO_CUDA_CHECK(cudaMemsetAsync(p, value, bytes, stream()));
}

void synchronize() { MNEMO_CUDA_CHECK(cudaStreamSynchronize(stream())); }

void set_matmul_precision(MatmulPrecision p) { rt().precision = p; }
MatmulPrecision matmul_precision() { return rt().precision; }

MatmulPrecision parse_matmul_precision(const std::string& s) {
  if (s == "f32") return MatmulPrecision::f32;
  if (s == "tf32") return MatmulPrecision::tf32;
  if (s == "bf16") return MatmulPrecision::bf16;
  throw std::invalid_argument("[cuda] matmul precision '" + s + "': expected f32, tf32 or bf16");
}

const char* run_step(const std::string& key, const std::function<void()>& step) {
  Runtime& r = rt();
  cudaStream_t s = stream();
  cublas_handle();  // its workspace must exist before a capture
  const StepAction action = r.plan.next(key);
  if (action == StepAction::replay) {
    MNEMO_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(r.plan.graph(key)), s));
    return step_action_name(action);
  }
  if (action == StepAction::eager) {
    step();
    return step_action_name(action);
  }
  auto pool = std::make_unique<BlockCache>(device_backing("device (graph pool)"));
  {
    std::lock_guard lock(r.mu);
    r.capture_pool = pool.get();
  }
  cudaGraph_t graph = nullptr;
  bool ok = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess;
  if (ok) {
    try {
      step();
    } catch (...) {
      cudaStreamEndCapture(s, &graph);
      if (graph) cudaGraphDestroy(graph);
      std::lock_guard lock(r.mu);
      r.capture_pool = nullptr;
      r.retired.push_back(std::move(pool));
      throw;
    }
    ok = cudaStreamEndCapture(s, &graph) == cudaSuccess && graph;
  }
  cudaGraphExec_t exec = nullptr;
#if CUDART_VERSION >= 12000
  ok = ok && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
#else
  ok = ok && cudaGraphInstantiate(&exec, graph, nullptr, nullptr, 0) == cudaSuccess;
#endif
  if (graph) cudaGraphDestroy(graph);
  std::lock_guard lock(r.mu);
  r.capture_pool = nullptr;
  if (!ok) {  // the captured work never ran: run the step for real, and never capture this key again
    cudaGetLastError();
    r.plan.capture_failed(key);
    r.retired.push_back(std::move(pool));
    step();
    return "eager";
  }
  r.plan.captured(key, exec);
  r.graphs[exec] = Graph{exec, std::move(pool)};
  for (void* old : r.plan.take_evicted()) {
    MNEMO_CUDA_CHECK(cudaStreamSynchronize(s));
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(old));
    r.retired.push_back(std::move(r.graphs[old].pool));
    r.graphs.erase(old);
  }
  MNEMO_CUDA_CHECK(cudaGraphLaunch(exec, s));  // the capture only recorded the step
  return step_action_name(action);
}

}  // namespace mnemo::kernels::cuda
