// Learning-rate schedules; the formulas are spelled out in schedule.h.
#include "autograd/optim/schedule.h"

#include <cmath>
#include <numbers>

#include "autograd/error.h"

namespace mnemo {

void Schedule::validate() const {
  MNEMO_CHECK(base_lr >= 0, "[schedule] base_lr must be >= 0, got " << base_lr);
  MNEMO_CHECK(warmup_steps >= 0, "[schedule] warmup_steps must be >= 0, got " << warmup_steps);
  if (kind != Kind::warmup_cosine) return;
  MNEMO_CHECK(total_steps > warmup_steps, "[schedule] warmup_cosine needs total_steps > warmup_steps, got "
                                              << total_steps << " and " << warmup_steps);
  MNEMO_CHECK(min_lr >= 0 && min_lr <= base_lr,
              "[schedule] min_lr must be in [0, base_lr = " << base_lr << "], got " << min_lr);
}

double Schedule::lr_at(int64_t step) const {
  validate();
  MNEMO_CHECK(step >= 0, "[schedule] step must be >= 0, got " << step);
  if (step < warmup_steps) return base_lr * double(step + 1) / double(warmup_steps);
  if (kind == Kind::constant) return base_lr;
  if (step >= total_steps) return min_lr;
  const double progress = double(step - warmup_steps) / double(total_steps - warmup_steps);
  return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace mnemo
