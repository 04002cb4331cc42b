// Learning-rate schedules as pure functions of the step index (0-based: the lr for the
// update that makes steps() == step + 1), so a resumed run needs only its step count.
#pragma once

#include <cstdint>

namespace mnemo {

// With W = warmup_steps, T = total_steps, s = step:
//   s < W (both kinds)   lr = base_lr * (s + 1) / W      linear warm-up; the first step is
//                                                         never 0, the last one reaches base_lr
//   constant, s >= W     lr = base_lr
//   warmup_cosine:
//     W <= s < T         lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2
//     s >= T             lr = min_lr
// so lr(W) = base_lr and the cosine reaches min_lr exactly at s = T.
struct Schedule {
  enum class Kind { constant, warmup_cosine } kind = Kind::constant;
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // warmup_cosine only; must exceed warmup_steps
  double min_lr = 0;        // warmup_cosine only; at most base_lr

  double lr_at(int64_t step) const;  // validates first: a bad schedule throws on any step
  void validate() const;
};

}  // namespace mnemo
