// The precision of float GEMMs (the matmul op, and so every linear layer): f32, or bf16
// operands with f32 accumulation on oneDNN (brg:avx512_core_bf16) or on cuBLAS's tensor cores
// for a run on the CUDA device, and the fused attention's tile products likewise on either
// (the attention op reads it into AttentionDesc::bf16).
// Nothing else changes: softmax, norms, losses and optimizer state stay f32, double f64.
// A process-wide switch, like the backend choice in kernels.h; train.precision sets it
// around each training batch (experiments/bptt.cpp). Within one setting, a weight's bf16
// copy is made once per layout and reused (GemmDesc::WeightTag); setting it drops them.
#pragma once

#include <cstdint>
#include <string>

namespace mnemo::kernels {

enum class MatmulPrecision : uint8_t { f32, bf16 };

// Where the GEMMs of a run go: the CPU's kernels, or the CUDA device's (cuBLAS; on the
// emulated device, kernels/emulated/device.h, the CPU's again, so that bf16 there is the CPU's).
enum class GemmDevice : uint8_t { cpu, cuda };

// Why bf16 cannot run on `where`, "" when it can. The CPU: a build without oneDNN,
// MNEMO_BACKEND (or a setter) keeping oneDNN off, or a CPU below avx512_bf16 (also what
// ONEDNN_MAX_CPU_ISA=AVX2 makes of this one). CUDA: no device (every GPU the build targets,
// sm_80 and later, has bf16 tensor cores), or the emulated device's CPU reason.
std::string bf16_unavailable(GemmDevice where = GemmDevice::cpu);
// Setting bf16 where it cannot run throws std::runtime_error with that reason.
void set_matmul_precision(MatmulPrecision p, GemmDevice where = GemmDevice::cpu);
MatmulPrecision matmul_precision();
// How many bf16 copies of weights the GEMMs have made in this process (for tests: one per
// weight and layout in a training batch, however many products read it).
uint64_t bf16_weight_conversions();

// A precision for the scope's lifetime; the previous one comes back after it.
class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision p, GemmDevice where = GemmDevice::cpu)
      : before_(matmul_precision()), where_(where) {
    set_matmul_precision(p, where);
  }
  ~MatmulPrecisionScope() { set_matmul_precision(before_, where_); }
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulPrecision before_;
  GemmDevice where_;
};

}  // namespace mnemo::kernels
