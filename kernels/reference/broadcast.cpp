// Reference kernels over Strided walks (kernels.h): broadcasting binary ops, where,
// strided copies (permute, expand) and sum_to, their adjoint. Each visits the walk one
// element at a time in row-major order; operand k of element i is at offset off[k].
#include <vector>

#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {

template <class T>
void binary(Binary op, T* out, const T* a, const T* b, const Strided& s) {
  for_each_element(s, [&](int64_t i, const int64_t* off) {
    const T x = a[off[1]], y = b[off[2]];
    switch (op) {
      case Binary::add: out[i] = x + y; break;
      case Binary::sub: out[i] = x - y; break;
      case Binary::mul: out[i] = x * y; break;
      case Binary::div: out[i] = x / y; break;
    }
  });
}

template <class T>
void where(T* out, const uint8_t* cond, const T* a, const T* b, const Strided& s) {
  for_each_element(s, [&](int64_t i, const int64_t* off) { out[i] = cond[off[0]] ? a[off[1]] : b[off[2]]; });
}

template <class T>
void strided_copy(T* out, const T* in, const Strided& s) {
  for_each_element(s, [&](int64_t i, const int64_t* off) { out[i] = in[off[0]]; });
}

// Several input elements land on one output element (its stride is 0 on the summed dims),
// so the sums collect in double, indexed by output offset, and are written once at the end.
template <class T>
void sum_to(T* out, const T* in, const Strided& s) {
  int64_t extent = 1;  // one past the largest output offset
  for (int d = 0; d < s.rank; ++d) {
    if (s.dims[d] == 0) return;
    extent += (s.dims[d] - 1) * s.strides[0][d];
  }
  std::vector<double> sum(size_t(extent), 0.0);
  std::vector<bool> written(size_t(extent), false);
  for_each_element(s, [&](int64_t, const int64_t* off) {
    sum[size_t(off[0])] += double(in[off[1]]);
    written[size_t(off[0])] = true;
  });
  for (int64_t o = 0; o < extent; ++o)
    if (written[size_t(o)]) out[o] = T(sum[size_t(o)]);
}

#define MNEMO_INSTANTIATE(T)                                                               \
  template void binary<T>(Binary, T*, const T*, const T*, const Strided&);                 \
  template void where<T>(T*, const uint8_t*, const T*, const T*, const Strided&);          \
  template void strided_copy<T>(T*, const T*, const Strided&);                             \
  template void sum_to<T>(T*, const T*, const Strided&);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
