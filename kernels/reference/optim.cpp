// Reference optimizer updates, in PyTorch's order of operations (torch.optim.AdamW and SGD),
// computed in double whatever T is and rounded once per stored value.
#include <cmath>

#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {

// w <- w (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
// w <- w - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
template <class T>
void adamw_step(T* w, const T* g, T* m, T* v, int64_t n, const AdamWHyper& h) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) {
    const double gi = double(g[i]);
    const double mi = h.beta1 * double(m[i]) + (1 - h.beta1) * gi;
    const double vi = h.beta2 * double(v[i]) + (1 - h.beta2) * gi * gi;
    m[i] = T(mi);
    v[i] = T(vi);
    const double decayed = double(w[i]) * (1 - h.lr * h.weight_decay);
    w[i] = T(decayed - h.lr / h.bias_correction1 * mi / (std::sqrt(vi) / std::sqrt(h.bias_correction2) + h.eps));
  }
}

// d = g + wd w;  buf <- first step ? d : momentum buf + (1 - dampening) d;
// d <- nesterov ? d + momentum buf : buf;  w <- w - lr d   (no buffer without momentum)
template <class T>
void sgd_step(T* w, const T* g, T* buf, int64_t n, const SgdHyper& h) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) {
    double d = double(g[i]) + h.weight_decay * double(w[i]);
    if (h.momentum != 0) {
      const double b = h.first_step ? d : h.momentum * double(buf[i]) + (1 - h.dampening) * d;
      buf[i] = T(b);
      d = h.nesterov ? d + h.momentum * b : b;
    }
    w[i] = T(double(w[i]) - h.lr * d);
  }
}

template void adamw_step<float>(float*, const float*, float*, float*, int64_t, const AdamWHyper&);
template void adamw_step<double>(double*, const double*, double*, double*, int64_t, const AdamWHyper&);
template void sgd_step<float>(float*, const float*, float*, int64_t, const SgdHyper&);
template void sgd_step<double>(double*, const double*, double*, int64_t, const SgdHyper&);

}  // namespace mnemo::kernels::ref
