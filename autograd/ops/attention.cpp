// Multi-head attention as one fused op (kernels: kernels/reference/attention.cpp, the plain
// oracle, and kernels/cpu/attention.cpp, tiled with an online softmax).
//   O = softmax(scale Q K^T + bias, over the keys a row may see) V
// q (B, H, Tq, d); k, v (B, Hk, Tk, d) with Hk = H, or 1 for one shared key/value head.
// Which keys a row sees is AttentionSpec's compact description (ops.h), never a dense
// Tq x Tk tensor unless the caller passes one. The backward is the kernel's; the learned
// null key/value slot is a concat in front of the keys, so its gradient comes for free.
// A band bias (BandBias, the relative shift) is the kernels' fourth input as it is, its
// gradient the band's; the composite dropout path, CUDA tensors and `mnemo inspect` get it
// expanded to (.., Tq, Tk) by band_to_dense (the CUDA kernel reads dense biases only).
#include <atomic>
#include <cmath>
#include <cstring>

#include "autograd/apply.h"
#include "autograd/attention_recorder.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"
#include "kernels/precision.h"

namespace mnemo {
namespace {

std::atomic<int64_t> g_attention_flops{0};

// (query, key) pairs the description lets see each other, one head of one sequence; key
// padding and dense masks aside.
int64_t visible_pairs(const kernels::AttentionDesc& a) {
  int64_t n = 0;
  for (int64_t i = 0; i < a.Tq; ++i) {
    int64_t lo, hi;
    kernels::attention_row_interval(a, i, lo, hi);
    n += a.prefix + std::max<int64_t>(0, hi - lo + 1);
  }
  return n;
}

struct AttentionOp {
  const char* name = "attention";
  kernels::AttentionDesc desc;  // shapes are filled in forward
  Tensor key_padding, mask;     // kept alive for backward
  bool has_bias;

  Tensor forward(Ctx& ctx, std::span<const Tensor> in) {
    const Tensor &q = in[0], &k = in[1], &v = in[2];
    Tensor o = q.empty_like();
    Tensor lse = Tensor::empty({desc.B, desc.H, desc.Tq}, q.dtype(), q.device());
    const Tensor bias = has_bias ? in[3] : Tensor{};
    if (o.numel() > 0) launch(kernels::attention_forward, q, desc, o, lse, q, k, v, bias);
    ctx.save("q", q), ctx.save("k", k), ctx.save("v", v), ctx.save("bias", bias), ctx.save("o", o);
    ctx.save("lse", lse);
    return o;
  }

  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor &q = ctx.saved("q"), &k = ctx.saved("k"), &v = ctx.saved("v"), &bias = ctx.saved("bias");
    Grads g(ctx.num_inputs());
    g[0] = q.empty_like();
    g[1] = k.empty_like();
    g[2] = v.empty_like();
    if (has_bias) g[3] = bias.empty_like();
    g_attention_flops += 12 * desc.B * desc.H * desc.d * visible_pairs(desc);
    if (q.numel() > 0)
      launch(kernels::attention_backward, q, desc, g[0], g[1], g[2], has_bias ? g[3] : Tensor{}, dy, q, k, v, bias,
             ctx.saved("o"), ctx.saved("lse"));
    for (size_t i = 0; i < g.size(); ++i)
      if (!ctx.needs_grad(i)) g[i] = Tensor{};
    return g;
  }
};

// apply_n wants a const forward; the op fills its descriptor before it is applied.
struct AttentionApply {
  const char* name = "attention";
  AttentionOp op;
  Tensor forward(Ctx& ctx, std::span<const Tensor> in) const { return AttentionOp(op).forward(ctx, in); }
  Grads backward(Ctx& ctx, const Tensor& dy) const { return op.backward(ctx, dy); }
};

// A u8 tensor with `n` ones put in front of its last axis (for the null key's column).
Tensor pad_front_ones(const Tensor& m, int64_t n) {
  if (m.dim(-1) == 1) return m;  // broadcast along keys: already covers the new column
  Shape s = m.shape();
  s[-1] += n;
  Tensor out = Tensor::full(s, 1.0, DType::u8);
  const Tensor host = m.to(Device::cpu);
  const int64_t rows = m.numel() / m.dim(-1), w = m.dim(-1);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out.data<uint8_t>() + r * (w + n) + n, host.data<uint8_t>() + r * w, size_t(w));
  return out.to(m.device());
}

void check_and_describe(const Var& q, const Var& k, const Var& v, const AttentionSpec& s, kernels::AttentionDesc& d) {
  const Tensor &qt = q.value(), &kt = k.value(), &vt = v.value();
  tm::check_float_same("attention", {&qt, &kt, &vt});
  MNEMO_CHECK(qt.rank() == 4 && kt.rank() == 4 && vt.rank() == 4,
              "[attention] expected q (B, H, Tq, d), k and v (B, Hk, Tk, d), got " << qt.shape() << ", " << kt.shape()
                                                                                   << ", " << vt.shape());
  d.B = qt.dim(0), d.H = qt.dim(1), d.Tq = qt.dim(2), d.d = qt.dim(3);
  d.Hk = kt.dim(1), d.Tk = kt.dim(2);
  MNEMO_CHECK(kt.shape() == vt.shape() && kt.dim(0) == d.B && kt.dim(3) == d.d && (d.Hk == d.H || d.Hk == 1),
              "[attention] k " << kt.shape() << " and v " << vt.shape() << " do not fit q " << qt.shape()
                               << " (need (B, H or 1, Tk, d))");
  d.scale = s.scale ? *s.scale : 1.0 / std::sqrt(double(d.d));
  d.prefix = s.prefix;
  d.causal = s.causal;
  d.window = s.window;
  d.read_rows = s.read_rows;
  d.write_rows = s.write_rows;
  // The GEMMs' precision (train.precision, set around each training batch) reaches the
  // tile products the same way; recorded here, so the backward runs as its forward did.
  d.bf16 = qt.dtype() == DType::f32 && kernels::matmul_precision() == kernels::MatmulPrecision::bf16;
  MNEMO_CHECK(s.prefix >= 0 && s.prefix <= d.Tk, "[attention] prefix " << s.prefix << " outside [0, " << d.Tk << "]");
  MNEMO_CHECK(s.window >= 0, "[attention] window must be >= 0, got " << s.window);
  MNEMO_CHECK(s.read_rows >= 0 && s.write_rows >= 0 && s.read_rows + s.write_rows <= d.Tq,
              "[attention] read_rows " << s.read_rows << " + write_rows " << s.write_rows << " exceed Tq " << d.Tq);
  if (s.key_padding.defined())
    MNEMO_CHECK(s.key_padding.dtype() == DType::u8 && s.key_padding.shape() == Shape({d.B, d.Tk}),
                "[attention] key_padding must be u8 (" << d.B << ", " << d.Tk << "), got " << s.key_padding.dtype()
                                                        << " " << s.key_padding.shape());
  if (s.mask.defined()) {
    const Shape full{d.B, d.H, d.Tq, d.Tk};
    tm::check_mask("attention", s.mask, full);
    const kernels::Strided w = tm::broadcast_walk(full, {full, s.mask.shape()});
    (void)w;
    int64_t stride = 1;
    for (int i = 3, j = s.mask.rank() - 1; i >= 0; --i, --j) {
      const int64_t ext = j >= 0 ? s.mask.dim(j) : 1;
      d.mask_strides[i] = ext == 1 ? 0 : stride;
      stride *= ext;
    }
  }
  if (s.band_bias.defined()) {
    const BandBias& bb = s.band_bias;
    const Tensor& t = bb.band.value();
    d.bias_per_batch = t.rank() == 4;
    MNEMO_CHECK((t.rank() == 3 || t.rank() == 4) && t.dim(-3) == d.H && t.dim(-2) == d.Tq && t.dim(-1) > 0 &&
                    (t.rank() == 3 || t.dim(0) == d.B) && t.dtype() == qt.dtype() && bb.from >= 0,
                "[attention] band bias must be (" << d.H << ", " << d.Tq << ", n > 0) or (" << d.B << ", " << d.H
                                                  << ", " << d.Tq << ", n > 0) " << qt.dtype()
                                                  << " with from >= 0, got " << t.shape() << " " << t.dtype()
                                                  << " from " << bb.from);
    d.bias_band = t.dim(-1), d.bias_shift = bb.shift, d.bias_from = bb.from, d.bias_scale = bb.scale;
  } else if (s.bias.defined()) {
    d.bias_per_batch = s.bias.rank() == 4;
    MNEMO_CHECK((s.bias.shape() == Shape({d.H, d.Tq, d.Tk}) || s.bias.shape() == Shape({d.B, d.H, d.Tq, d.Tk})) &&
                    s.bias.dtype() == qt.dtype(),
                "[attention] bias must be (" << d.H << ", " << d.Tq << ", " << d.Tk << ") or (" << d.B << ", " << d.H
                                             << ", " << d.Tq << ", " << d.Tk << ") " << qt.dtype() << ", got "
                                             << s.bias.shape() << " " << s.bias.dtype());
  }
}

// u8 (B, H, Tq, Tk): 1 where the description lets query i see key j (the kernel's rules).
Tensor dense_mask(const kernels::AttentionDesc& a) {
  Tensor m = Tensor::zeros({a.B, a.H, a.Tq, a.Tk}, DType::u8);
  uint8_t* p = m.data<uint8_t>();
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.H; ++h)
      for (int64_t i = 0; i < a.Tq; ++i) {
        int64_t lo, hi;
        kernels::attention_row_interval(a, i, lo, hi);
        for (int64_t j = 0; j < a.Tk; ++j) {
          const int64_t mj = j - a.prefix;
          bool ok = mj < 0 || (mj >= lo && mj <= hi);
          if (a.key_pad) ok = ok && a.key_pad[b * a.Tk + j];
          if (a.mask) {
            const int64_t* s = a.mask_strides;
            ok = ok && a.mask[b * s[0] + h * s[1] + i * s[2] + j * s[3]];
          }
          p[((b * a.H + h) * a.Tq + i) * a.Tk + j] = ok;
        }
      }
  return m;
}

// Attention with dropout on the probabilities, from ops: the fused kernel keeps no
// probabilities to drop. Same masks, bias, scale and shared heads as the fused path.
Var attention_with_dropout(Var q, Var k, Var v, const AttentionSpec& s, const kernels::AttentionDesc& d) {
  if (d.Hk == 1 && d.H > 1) {
    k = broadcast_to(k, {d.B, d.H, d.Tk, d.d});
    v = broadcast_to(v, {d.B, d.H, d.Tk, d.d});
  }
  Var logits = matmul(q, k, {.trans_b = true}) * d.scale;  // (B, H, Tq, Tk)
  if (s.bias.defined()) logits = logits + s.bias;
  Var p = dropout(softmax(logits, dense_mask(d).to(q.value().device())), s.dropout, s.dropout_seed, true);
  return matmul(p, v);  // (B, H, Tq, d)
}

}  // namespace

Var band_to_dense(const BandBias& bb, int64_t Tk) {
  const Var& x = bb.band;
  MNEMO_CHECK((x.rank() == 3 || x.rank() == 4) && Tk >= 0,
              "[band_to_dense] expected a band (H, Tq, n) or (B, H, Tq, n) and Tk >= 0, got " << x.shape() << ", Tk "
                                                                                                 << Tk);
  kernels::AttentionDesc a;  // only the band's fields: attention_band_keys states the index once
  a.Tk = Tk, a.bias_band = x.dim(-1), a.bias_shift = bb.shift, a.bias_from = bb.from;
  const int64_t Tq = x.dim(-2), n = x.dim(-1);
  std::vector<int32_t> idx(size_t(Tq * Tk), -1);
  for (int64_t i = 0; i < Tq; ++i) {
    int64_t lo, hi;
    kernels::attention_band_keys(a, i, lo, hi);
    for (int64_t j = lo; j <= hi; ++j) idx[size_t(i * Tk + j)] = int32_t(i * n + j - i + bb.shift);
  }
  Shape flat = x.shape().without(-1), full = x.shape();
  flat[-1] = Tq * n, full[-1] = Tk;
  const Tensor index = Tensor::from_ints({Tq * Tk}, idx);
  Var dense = reshape(index_select_or_zero(reshape(x, flat), flat.rank() - 1, index), full);
  return bb.scale == 1 ? dense : dense * bb.scale;
}

int64_t attention_flops() { return g_attention_flops.load(); }
void reset_attention_flops() { g_attention_flops = 0; }

Var attention(Var q, Var k, Var v, const AttentionSpec& spec_in) {
  AttentionSpec spec = spec_in;
  if (spec.null_k.defined() || spec.null_v.defined()) {  // a learned slot in front of every key list
    MNEMO_CHECK(spec.null_k.defined() && spec.null_v.defined() && spec.null_k.shape() == spec.null_v.shape() &&
                    spec.null_k.rank() == 2 && spec.null_k.dim(0) == k.dim(1) && spec.null_k.dim(1) == k.dim(3),
                "[attention] null_k and null_v must both be (" << k.dim(1) << ", " << k.dim(3) << ")");
    const Shape slot{k.dim(0), k.dim(1), 1, k.dim(3)};
    auto front = [&](Var x, Var null) {
      return concat({broadcast_to(reshape(null, {1, k.dim(1), 1, k.dim(3)}), slot), x}, 2);
    };
    k = front(k, spec.null_k);
    v = front(v, spec.null_v);
    spec.prefix += 1;
    if (spec.key_padding.defined()) spec.key_padding = pad_front_ones(spec.key_padding, 1);
    if (spec.mask.defined()) spec.mask = pad_front_ones(spec.mask, 1);
    if (spec.bias.defined()) spec.bias = pad(spec.bias, -1, 1, 0, 0.0);
    if (spec.band_bias.defined()) spec.band_bias.shift -= 1, spec.band_bias.from += 1;  // keys moved by one
    spec.null_k = spec.null_v = Var{};
  }
  // One bias reaches the kernels: a band stays a band unless another bias, the composite
  // dropout path or a CUDA tensor needs the logits dense.
  if (spec.band_bias.defined() &&
      (spec.bias.defined() || spec.dropout > 0 || q.value().device() != Device::cpu)) {
    Var dense = band_to_dense(spec.band_bias, k.dim(2));
    spec.bias = spec.bias.defined() ? spec.bias + dense : dense;
    spec.band_bias = {};
  }
  AttentionApply a;
  check_and_describe(q, k, v, spec, a.op.desc);
  MNEMO_CHECK(spec.dropout >= 0 && spec.dropout < 1, "[attention] dropout must be in [0, 1), got " << spec.dropout);
  // The masks on the host for the dense mask and the recorder, on q's device for the kernel.
  const Tensor& like = q.value();
  const Tensor pad_host = spec.key_padding.to(Device::cpu), mask_host = spec.mask.to(Device::cpu);
  kernels::AttentionDesc host_desc = a.op.desc;
  host_desc.key_pad = pad_host.defined() ? pad_host.data<uint8_t>() : nullptr;
  host_desc.mask = mask_host.defined() ? mask_host.data<uint8_t>() : nullptr;
  a.op.key_padding = spec.key_padding.to(like.device());
  a.op.mask = spec.mask.to(like.device());
  a.op.desc.key_pad = kernel_ptr<uint8_t>(a.op.key_padding, like, "attention");
  a.op.desc.mask = kernel_ptr<uint8_t>(a.op.mask, like, "attention");
  const bool banded = spec.band_bias.defined();
  a.op.has_bias = spec.bias.defined() || banded;
  if (AttentionRecorder* r = attention_recorder()) {  // `mnemo inspect` only; null otherwise
    kernels::AttentionDesc dense = host_desc;  // the recorder reads (.., Tq, Tk) logits
    dense.bias_band = dense.bias_shift = dense.bias_from = 0, dense.bias_scale = 1;
    Tensor bias = spec.bias.defined() ? spec.bias.value() : Tensor{};
    if (banded) bias = band_to_dense(spec.band_bias, k.dim(2)).value();
    r->record(q.value(), k.value(), bias, dense);
  }
  if (spec.dropout > 0) return attention_with_dropout(q, k, v, spec, host_desc);
  std::vector<Var> in{q, k, v};
  if (a.op.has_bias) in.push_back(banded ? spec.band_bias.band : spec.bias);
  return apply_n(a, in);
}

using gradcheck::Sample;
namespace {
Var qkv(Sample& s, int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t d, int64_t Hk, const AttentionSpec& spec) {
  Var q = s.input({B, H, Tq, d});
  Var k = s.input({B, Hk, Tk, d});
  Var v = s.input({B, Hk, Tk, d});
  return attention(q, k, v, spec);
}
}  // namespace

MNEMO_GRADCHECK("attention", [](Sample& s) { return qkv(s, 2, 2, 3, 4, 3, 2, {}); });
MNEMO_GRADCHECK("attention.causal", [](Sample& s) { return qkv(s, 1, 2, 4, 4, 3, 2, {.causal = true}); });
MNEMO_GRADCHECK("attention.causal_bottom_right", [](Sample& s) { return qkv(s, 1, 2, 3, 5, 2, 2, {.causal = true}); });
MNEMO_GRADCHECK("attention.causal_after_memory", [](Sample& s) {
  return qkv(s, 1, 2, 3, 5, 2, 2, {.prefix = 2, .causal = true});
});
MNEMO_GRADCHECK("attention.sliding_window", [](Sample& s) {
  return qkv(s, 1, 1, 5, 7, 2, 1, {.prefix = 1, .causal = true, .window = 2});
});
MNEMO_GRADCHECK("attention.memory_slots", [](Sample& s) {  // RMT: read rows see read slots, write rows all
  return qkv(s, 1, 2, 6, 6, 2, 2, {.causal = true, .read_rows = 2, .write_rows = 1});
});
MNEMO_GRADCHECK("attention.key_padding", [](Sample& s) {
  return qkv(s, 2, 1, 3, 4, 2, 1, {.key_padding = Tensor::from({2, 4}, {1, 1, 0, 1, 0, 1, 1, 1}, DType::u8)});
});
MNEMO_GRADCHECK("attention.dense_mask", [](Sample& s) {
  return qkv(s, 1, 2, 3, 4, 2, 2, {.mask = s.mask({2, 3, 4}, 0.5)});
});
MNEMO_GRADCHECK("attention.bias_and_scale", [](Sample& s) {
  Var q = s.input({1, 2, 3, 2}), k = s.input({1, 2, 4, 2}), v = s.input({1, 2, 4, 2});
  return attention(q, k, v, {.scale = 8.0, .causal = true, .bias = s.input({2, 3, 4})});
});
MNEMO_GRADCHECK("attention.batch_bias", [](Sample& s) {
  Var q = s.input({2, 2, 3, 2}), k = s.input({2, 2, 4, 2}), v = s.input({2, 2, 4, 2});
  return attention(q, k, v, {.prefix = 1, .causal = true, .bias = s.input({2, 2, 3, 4})});
});
MNEMO_GRADCHECK("attention.dropout", [](Sample& s) {  // the composite path
  Var q = s.input({1, 2, 3, 2}), k = s.input({1, 1, 4, 2}), v = s.input({1, 1, 4, 2});
  return attention(q, k, v, {.causal = true, .bias = s.input({2, 3, 4}), .dropout = 0.3, .dropout_seed = 9});
});
MNEMO_GRADCHECK("attention.band_bias", [](Sample& s) {  // row 0 reads 2 of the 4 columns, row 2 all
  Var q = s.input({1, 2, 3, 2}), k = s.input({1, 2, 5, 2}), v = s.input({1, 2, 5, 2});
  return attention(q, k, v, {.prefix = 1, .causal = true,
                             .band_bias = {.band = s.input({2, 3, 4}), .shift = 1, .from = 1, .scale = 0.7}});
});
MNEMO_GRADCHECK("attention.batch_band_bias_null_kv", [](Sample& s) {  // the null slot shifts the band's keys
  Var q = s.input({2, 2, 3, 2}), k = s.input({2, 2, 4, 2}), v = s.input({2, 2, 4, 2});
  return attention(q, k, v, {.causal = true, .band_bias = {.band = s.input({2, 2, 3, 5}), .shift = 2},
                             .null_k = s.input({2, 2}), .null_v = s.input({2, 2})});
});
MNEMO_GRADCHECK("attention.band_and_dense_bias", [](Sample& s) {  // both: expanded and added
  Var q = s.input({1, 2, 3, 2}), k = s.input({1, 2, 4, 2}), v = s.input({1, 2, 4, 2});
  return attention(q, k, v, {.causal = true, .bias = s.input({2, 3, 4}),
                             .band_bias = {.band = s.input({1, 2, 3, 3}), .shift = 0}});
});
MNEMO_GRADCHECK("attention.shared_kv", [](Sample& s) { return qkv(s, 2, 3, 3, 4, 2, 1, {.causal = true}); });
MNEMO_GRADCHECK("attention.null_kv", [](Sample& s) {
  Var q = s.input({1, 2, 3, 2}), k = s.input({1, 2, 3, 2}), v = s.input({1, 2, 3, 2});
  return attention(q, k, v, {.causal = true, .null_k = s.input({2, 2}), .null_v = s.input({2, 2})});
});
MNEMO_GRADCHECK("attention.multi_block", [](Sample& s) {  // longer than one 64-row tile
  return qkv(s, 1, 1, 70, 75, 2, 1, {.prefix = 5, .causal = true});
});

}  // namespace mnemo
