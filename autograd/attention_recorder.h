// What attention looked at, for `mnemo inspect` (experiments/inspect.*). While a recorder is
// active (RecordAttention, a scope), every call of the attention op (autograd/ops/ops.h)
// also hands its q, k, bias and mask description here, and the recorder keeps that call's
// probabilities, recomputed in f64 from them with the plain rules of kernels/kernels.h:
//   P[b, h, i, j] = softmax_j(scale q_i . k_j + bias_ij over the keys row i sees)
// so it does not matter which backend (fused cpu, reference, oneDNN) computed the output.
// Off by default: the op then pays one null check. Not for training: the recorder copies
// every call's (B, H, Tq, Tk) probabilities.
#pragma once

#include <vector>

#include "autograd/tensor.h"
#include "kernels/kernels.h"

namespace mnemo {

class AttentionRecorder {
 public:
  // One call, in the order the model made them: f64 (B, H, Tq, Tk) probabilities; a row
  // that sees no key is all zeros. Keys include the learned null slot (column 0) when the
  // call had one.
  std::vector<Tensor> calls;

  // q (B, H, Tq, d), k (B, Hk, Tk, d), bias undefined or as the description says.
  void record(const Tensor& q, const Tensor& k, const Tensor& bias, const kernels::AttentionDesc& desc);
  std::vector<Tensor> take();  // the calls so far, leaving none
};

// The active recorder, or null (the default).
AttentionRecorder* attention_recorder();

// Makes `r` the active recorder for its lifetime (the previous one comes back after).
class RecordAttention {
 public:
  explicit RecordAttention(AttentionRecorder& r);
  ~RecordAttention();
  RecordAttention(const RecordAttention&) = delete;
  RecordAttention& operator=(const RecordAttention&) = delete;

 private:
  AttentionRecorder* previous_;
};

}  // namespace mnemo
