// Matrix products with transpose flags (a transpose that matters is a kernel flag, not a copy).
//   C = op(A) op(B)
//   dop(A) = dC op(B)^T        dop(B) = op(A)^T dC
// so   dA = dC op(B)^T  (A plain)   or  op(B) dC^T  (A transposed)
//      dB = op(A)^T dC  (B plain)   or  dC^T op(A)  (B transposed)
// Leading dims are batch dims; a 2-D operand is shared by the whole batch and its gradient
// sums over it (one folded GEMM when the layout allows).
#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"
#include "kernels/precision.h"

namespace mnemo {
namespace {

// A weight's tag while GEMMs run in bf16: the backend may then convert it once and reuse
// the copy for every product of the training batch (forward and backward, every segment).
kernels::GemmDesc::WeightTag weight_tag(const Tensor& t) {
  if (!t.is_weight() || kernels::matmul_precision() != kernels::MatmulPrecision::bf16) return {};
  return {t.storage_id(), t.version()};
}

// op(A) op(B) for 2-D or (batch, R, C) operands; a 2-D operand is shared across the batch.
Tensor gemm_t(const Tensor& A, bool ta, const Tensor& B, bool tb) {
  const int64_t ra = A.dim(-2), ca = A.dim(-1), rb = B.dim(-2), cb = B.dim(-1);
  const bool batched = A.rank() == 3 || B.rank() == 3;
  const int64_t batch = A.rank() == 3 ? A.dim(0) : (B.rank() == 3 ? B.dim(0) : 1);
  kernels::GemmDesc d;
  d.trans_a = ta;
  d.trans_b = tb;
  d.M = ta ? ca : ra;
  d.K = ta ? ra : ca;
  d.N = tb ? rb : cb;
  MNEMO_ASSERT((tb ? cb : rb) == d.K);
  if (A.rank() == 3 && B.rank() == 2 && !ta)  // one tall GEMM instead of `batch` small ones
    return gemm_t(A.reshape({batch * ra, ca}), false, B, tb).reshape({batch, d.M, d.N});
  d.lda = ca;
  d.ldb = cb;
  d.ldc = d.N;
  d.batch = batch;
  d.stride_a = A.rank() == 3 ? ra * ca : 0;
  d.stride_b = B.rank() == 3 ? rb * cb : 0;
  d.stride_c = d.M * d.N;
  d.tag_a = weight_tag(A);
  d.tag_b = weight_tag(B);
  Tensor C = Tensor::empty(batched ? Shape{batch, d.M, d.N} : Shape{d.M, d.N}, A.dtype(), A.device());
  if (C.numel() > 0) launch(kernels::gemm, A, d, A, B, C);
  return C;
}

// Views a (..., R, C) tensor as (batch, R, C), or leaves a 2-D one alone.
Tensor as3(const Tensor& t) {
  if (t.rank() == 2) return t;
  int64_t batch = 1;  // from the leading dims: numel / (R C) would divide by zero for empty matrices
  for (int i = 0; i < t.rank() - 2; ++i) batch *= t.dim(i);
  return t.reshape({batch, t.dim(-2), t.dim(-1)});
}

struct MatmulOp {
  const char* name = "matmul";
  MatmulOpts o;

  Tensor forward(Ctx& ctx, const Tensor& a, const Tensor& b) const {
    tm::check_float_same(name, {&a, &b});
    MNEMO_CHECK(a.rank() >= 2 && b.rank() >= 2,
                "[matmul] expected operands with at least 2 dims, got " << a.shape() << " and " << b.shape());
    const int64_t M = o.trans_a ? a.dim(-1) : a.dim(-2), Ka = o.trans_a ? a.dim(-2) : a.dim(-1);
    const int64_t Kb = o.trans_b ? b.dim(-1) : b.dim(-2), N = o.trans_b ? b.dim(-2) : b.dim(-1);
    MNEMO_CHECK(Ka == Kb, "[matmul] inner dims differ: " << a.shape() << (o.trans_a ? "^T" : "") << " x "
                                                          << b.shape() << (o.trans_b ? "^T" : ""));
    const Shape& lead = a.rank() >= b.rank() ? a.shape() : b.shape();
    if (a.rank() > 2 && b.rank() > 2) {
      bool same = a.rank() == b.rank();
      for (int i = 0; same && i < a.rank() - 2; ++i) same = a.dim(i) == b.dim(i);
      MNEMO_CHECK(same, "[matmul] batch dims differ: " << a.shape() << " and " << b.shape()
                                                        << " (a 2-D operand is shared; otherwise they must match)");
    }
    Shape out = lead;
    out[-2] = M;
    out[-1] = N;
    ctx.save("a", a);
    ctx.save("b", b);
    return gemm_t(as3(a), o.trans_a, as3(b), o.trans_b).reshape(out);
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor A = as3(ctx.saved("a")), B = as3(ctx.saved("b")), G = as3(dy);
    const Shape &sa = ctx.input_shape(0), &sb = ctx.input_shape(1);
    Grads g(2);
    if (ctx.needs_grad(0)) {
      Tensor dA = o.trans_a ? gemm_t(B, o.trans_b, G, true) : gemm_t(G, false, B, !o.trans_b);
      if (A.rank() == 2 && dA.rank() == 3) dA = tm::sum_to(dA, A.shape());
      g[0] = dA.reshape(sa);
    }
    if (ctx.needs_grad(1)) {
      Tensor dB;
      if (B.rank() == 2 && A.rank() == 3 && !o.trans_a) {  // fold the batch into one GEMM
        const Tensor A2 = A.reshape({A.dim(0) * A.dim(1), A.dim(2)});
        const Tensor G2 = G.reshape({G.dim(0) * G.dim(1), G.dim(2)});
        dB = o.trans_b ? gemm_t(G2, true, A2, false) : gemm_t(A2, true, G2, false);
      } else {
        dB = o.trans_b ? gemm_t(G, true, A, o.trans_a) : gemm_t(A, !o.trans_a, G, false);
        if (B.rank() == 2 && dB.rank() == 3) dB = tm::sum_to(dB, B.shape());
      }
      g[1] = dB.reshape(sb);
    }
    return g;
  }
};

}  // namespace

Var matmul(Var a, Var b, MatmulOpts opts) { return apply(MatmulOp{"matmul", opts}, a, b); }

using gradcheck::Sample;
MNEMO_GRADCHECK("matmul", [](Sample& s) { return matmul(s.input({3, 4}), s.input({4, 5})); });
MNEMO_GRADCHECK("matmul.trans_a", [](Sample& s) { return matmul(s.input({4, 3}), s.input({4, 5}), {.trans_a = true}); });
MNEMO_GRADCHECK("matmul.trans_b", [](Sample& s) { return matmul(s.input({3, 4}), s.input({5, 4}), {.trans_b = true}); });
MNEMO_GRADCHECK("matmul.trans_ab", [](Sample& s) {
  return matmul(s.input({4, 3}), s.input({5, 4}), {.trans_a = true, .trans_b = true});
});
MNEMO_GRADCHECK("matmul.batched", [](Sample& s) { return matmul(s.input({2, 3, 4}), s.input({2, 4, 2})); });
MNEMO_GRADCHECK("matmul.batched4d_trans_b", [](Sample& s) {
  return matmul(s.input({2, 2, 3, 4}), s.input({2, 2, 5, 4}), {.trans_b = true});
});
MNEMO_GRADCHECK("matmul.shared_b", [](Sample& s) { return matmul(s.input({2, 3, 4}), s.input({4, 5})); });
MNEMO_GRADCHECK("matmul.shared_b_trans_ab", [](Sample& s) {
  return matmul(s.input({2, 4, 3}), s.input({5, 4}), {.trans_a = true, .trans_b = true});
});
MNEMO_GRADCHECK("matmul.empty_rows", [](Sample& s) {  // a zero-length time axis must not crash
  Var a = s.input({2, 0, 3}), b = s.input({3, 4});
  return concat({matmul(a, b), s.input({2, 1, 4})}, 1);
});
MNEMO_GRADCHECK("matmul.shared_a", [](Sample& s) { return matmul(s.input({3, 4}), s.input({2, 4, 5})); });

}  // namespace mnemo
