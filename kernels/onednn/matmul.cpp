// GEMM on oneDNN matmul primitives. Transposes and leading dimensions are strides of the
// memory descriptors (no copies); a batch stride of 0 is oneDNN's batch broadcast;
// alpha is an output scale and beta a sum post-op. Primitives are cached by the whole
// descriptor. With bf16 matmuls switched on, A and B are reordered to bf16 and the
// product accumulates in f32 (brg:avx512_core_bf16); a CPU that cannot build that
// primitive falls back to f32 with one warning. A weight's bf16 copy (an operand tagged
// GemmDesc::WeightTag) is made once and kept until the precision is next set (the end of
// the training batch's MatmulPrecisionScope), or remade when the weight's version moves.
// Where oneDNN's transposed-A path is slow, A is transposed into a scratch buffer first
// (copies_transposed_a).
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "kernels/memory.h"
#include "kernels/onednn/common.h"
#include "kernels/onednn/onednn.h"
#include "kernels/cpu/cpu.h"

namespace mnemo::kernels::onednn {
namespace {

using dnnl::memory;
using dt = memory::data_type;

std::atomic<bool> g_bf16{false};
std::atomic<uint64_t> g_weight_conversions{0};
std::atomic<TransposedA> g_transposed_a{TransposedA::automatic};

bool avx512() {
  static const bool yes = [] {
    using isa = dnnl::cpu_isa;
    const isa i = dnnl::get_effective_cpu_isa();  // ONEDNN_MAX_CPU_ISA included
    return i == isa::avx512_core || i == isa::avx512_core_vnni || i == isa::avx512_core_bf16 ||
           i == isa::avx512_core_amx || i == isa::avx512_mic || i == isa::avx512_mic_4ops;
  }();
  return yes;
}

struct Key {
  int64_t M, N, K, batch, lda, ldb, ldc, stride_a, stride_b, stride_c;
  float alpha, beta;
  uint8_t trans_a, trans_b, bf16, pad[5];
};
bool operator==(const Key& a, const Key& b) { return std::memcmp(&a, &b, sizeof(Key)) == 0; }

struct Entry {
  dnnl::matmul prim;
  memory::desc a_md, b_md, c_md;                   // f32 views of the caller's buffers
  memory::desc a_lp, b_lp;                         // bf16 copies (bf16 path only)
  dnnl::reorder to_lp_a, to_lp_b;
};

Cache<Key, Entry, BytesHash<Key>>& cache() {
  static Cache<Key, Entry, BytesHash<Key>> c;
  return c;
}

// (batch, rows, cols) with element strides; batch 1 when the operand is shared.
memory::desc view(dt type, int64_t batch, int64_t rows, int64_t cols, int64_t s_batch, int64_t s_row,
                  int64_t s_col) {
  if (batch == 1) return memory::desc({rows, cols}, type, {s_row, s_col});
  return memory::desc({batch, rows, cols}, type, {s_batch, s_row, s_col});
}

Entry make(const Key& k) {
  const bool shared_a = k.stride_a == 0, shared_b = k.stride_b == 0;
  const int64_t ba = shared_a ? 1 : k.batch, bb = shared_b ? 1 : k.batch;
  auto views = [&](dt type) {
    // With a batch > 1 every operand needs 3 dims, broadcast ones included.
    auto v = [&](int64_t b, int64_t r, int64_t c, int64_t sb, int64_t sr, int64_t sc) {
      return k.batch == 1 ? memory::desc({r, c}, type, {sr, sc}) : memory::desc({b, r, c}, type, {sb, sr, sc});
    };
    return std::array<memory::desc, 2>{
        v(ba, k.M, k.K, k.stride_a, k.trans_a ? 1 : k.lda, k.trans_a ? k.lda : 1),
        v(bb, k.K, k.N, k.stride_b, k.trans_b ? 1 : k.ldb, k.trans_b ? k.ldb : 1)};
  };
  Entry e;
  const auto f32 = views(dt::f32);
  e.a_md = f32[0];
  e.b_md = f32[1];
  e.c_md = view(dt::f32, k.batch, k.M, k.N, k.stride_c, k.ldc, 1);
  dnnl::primitive_attr attr;
  if (k.alpha != 1.0f) attr.set_output_scales(0, {k.alpha});
  if (k.beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(k.beta);
    attr.set_post_ops(po);
  }
  memory::desc src = e.a_md, wei = e.b_md;
  if (k.bf16) {
    // bf16 copies in a dense layout of the same logical shape
    auto dense = [&](int64_t b, int64_t r, int64_t c) {
      return k.batch == 1 ? memory::desc({r, c}, dt::bf16, memory::format_tag::ab)
                          : memory::desc({b, r, c}, dt::bf16, memory::format_tag::abc);
    };
    e.a_lp = src = dense(ba, k.M, k.K);
    e.b_lp = wei = dense(bb, k.K, k.N);
    e.to_lp_a = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), e.a_md, engine(), e.a_lp));
    e.to_lp_b = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), e.b_md, engine(), e.b_lp));
  }
  e.prim = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, e.c_md), attr, engine()));
  return e;
}

// A scratch buffer per thread, grown on demand, for the bf16 copies and a transposed A made plain.
void* scratch(int which, size_t bytes) {
  thread_local void* buf[2] = {nullptr, nullptr};
  thread_local size_t cap[2] = {0, 0};
  if (bytes > cap[which]) {
    cpu_free(buf[which], cap[which]);
    buf[which] = cpu_alloc(bytes);
    cap[which] = bytes;
  }
  return buf[which];
}

// The bf16 copies of weights, keyed by the weight and the operand view whose dense bf16
// layout the copy holds (one per layout: a weight read as B in the forward and as B^T in
// the backward has two).
struct WeightKey {
  uint64_t id;
  const void* ptr;
  int64_t batch, rows, cols, ld, stride, trans;
};
bool operator==(const WeightKey& a, const WeightKey& b) { return std::memcmp(&a, &b, sizeof(WeightKey)) == 0; }
struct WeightCopy {
  void* buf = nullptr;
  size_t bytes = 0;
  uint64_t version = 0;
};
struct WeightCopies {
  std::mutex mu;
  std::unordered_map<WeightKey, WeightCopy, BytesHash<WeightKey>> map;
  void clear() {
    std::lock_guard lock(mu);
    for (auto& [key, copy] : map) cpu_free(copy.buf, copy.bytes);
    map.clear();
  }
  ~WeightCopies() { clear(); }
};
WeightCopies& weight_copies() {
  static WeightCopies w;
  return w;
}

// The bf16 operand `which` (0 = A, 1 = B) of this GEMM: a weight's kept copy, remade if its
// version moved, or the operand reordered into a per-thread scratch buffer.
void* low_precision(int which, const GemmDesc::WeightTag& tag, const WeightKey& view, const memory::desc& lp,
                    const dnnl::reorder& to_lp, memory& src, dnnl::stream& s) {
  const size_t bytes = lp.get_size();
  if (tag.id == 0) {
    void* p = scratch(which, bytes);
    memory dst(lp, engine(), p);
    to_lp.execute(s, src, dst);
    return p;
  }
  WeightCopies& w = weight_copies();
  std::lock_guard lock(w.mu);
  auto [it, fresh] = w.map.try_emplace(view);
  WeightCopy& c = it->second;
  if (fresh) c.buf = cpu_alloc(bytes), c.bytes = bytes;
  if (fresh || c.version != tag.version) {
    memory dst(lp, engine(), c.buf);
    to_lp.execute(s, src, dst);
    c.version = tag.version;
    ++g_weight_conversions;
  }
  return c.buf;
}

}  // namespace

void set_bf16_matmul(bool on) {
  weight_copies().clear();  // kept copies live for one setting: a training batch's scope
  g_bf16 = on;
}
bool bf16_matmul() { return g_bf16; }
uint64_t bf16_weight_conversions() { return g_weight_conversions; }

void set_transposed_a(TransposedA mode) { g_transposed_a = mode; }

bool copies_transposed_a(const GemmDesc& d) {
  if (!d.trans_a || d.batch != 1 || g_bf16) return false;  // bf16 copies A to a dense layout anyway
  switch (g_transposed_a.load()) {
    case TransposedA::copy: return true;
    case TransposedA::in_place: return false;
    case TransposedA::automatic: break;
  }
  // Measured alone with 2 threads on a Zen 3: M1024 K1024 N256 at 77 GFLOP/s in place, 145
  // copied; M512 K2048 N512 109 -> 144; at M 256, or M N >= 2^19, in place is as fast or faster.
  return !avx512() && d.M >= 384 && d.M * d.N < (int64_t(1) << 19);
}

std::string bf16_unavailable() {
  static const std::string why = [] {
    try {
      const memory::desc a({2, 2}, dt::bf16, memory::format_tag::ab), c({2, 2}, dt::f32, memory::format_tag::ab);
      (void)dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, a, c), engine());
      return std::string();
    } catch (const dnnl::error& err) {
      return std::string("oneDNN cannot build a bf16 matmul on this CPU, which needs avx512_bf16 (") + err.what() + ")";
    }
  }();
  return why;
}

void gemm(const GemmDesc& d, const float* a, const float* b, float* c) {
  if (d.M == 0 || d.N == 0) return;
  if (d.K == 0 || (d.batch > 1 && d.stride_c == 0)) return cpu::gemm<float>(d, a, b, c);  // outside matmul's model
  if (cpu::small_batched(d)) return cpu::gemm<float>(d, a, b, c);
  Key k{d.M, d.N, d.K, d.batch, d.lda, d.ldb, d.ldc, d.stride_a, d.stride_b, d.stride_c,
        float(d.alpha), float(d.beta), d.trans_a, d.trans_b, g_bf16.load(), {}};
  if (copies_transposed_a(d)) {
    float* plain = static_cast<float*>(scratch(0, size_t(d.M * d.K) * sizeof(float)));
    cpu::transpose_blocked(d.K, d.M, a, d.lda, plain);
    a = plain;
    k.trans_a = 0, k.lda = d.K;
  }
  Entry* e = nullptr;
  try {
    e = &cache().get(k, [&] { return make(k); });
  } catch (const dnnl::error& err) {
    if (!k.bf16) throw;
    if (g_bf16.exchange(false))
      std::fprintf(stderr, "mnemo: this CPU cannot run oneDNN bf16 matmuls (%s); using f32\n", err.what());
    k.bf16 = 0;
    e = &cache().get(k, [&] { return make(k); });
  }
  dnnl::stream& s = stream();
  memory A(e->a_md, engine(), const_cast<float*>(a)), B(e->b_md, engine(), const_cast<float*>(b));
  memory C(e->c_md, engine(), c);
  if (k.bf16) {
    const WeightKey va{d.tag_a.id, a, k.stride_a == 0 ? 1 : k.batch, k.M, k.K, k.lda, k.stride_a, k.trans_a};
    const WeightKey vb{d.tag_b.id, b, k.stride_b == 0 ? 1 : k.batch, k.K, k.N, k.ldb, k.stride_b, k.trans_b};
    memory Alp(e->a_lp, engine(), low_precision(0, d.tag_a, va, e->a_lp, e->to_lp_a, A, s));
    memory Blp(e->b_lp, engine(), low_precision(1, d.tag_b, vb, e->b_lp, e->to_lp_b, B, s));
    e->prim.execute(s, {{DNNL_ARG_SRC, Alp}, {DNNL_ARG_WEIGHTS, Blp}, {DNNL_ARG_DST, C}});
  } else {
    e->prim.execute(s, {{DNNL_ARG_SRC, A}, {DNNL_ARG_WEIGHTS, B}, {DNNL_ARG_DST, C}});
  }
  s.wait();
}

}  // namespace mnemo::kernels::onednn
