#include "experiments/replay_schedule.h"

#include <algorithm>

#include "autograd/error.h"

namespace mnemo::experiments {

// Both tables are indexed by the slots free for stored and running memories: `slots` less
// one while a gradient is carried. More slots than segments never save a forward.
ReplaySchedule::ReplaySchedule(int64_t segments, int64_t slots)
    : segments_(segments), slots_(std::min(slots, segments)) {
  MNEMO_CHECK(segments >= 1 && slots >= 0, "[replay] schedule for " << segments << " segments and " << slots << " slots");
  fill(carrying_, true);
  fill(first_, false);  // reads carrying_ for the ranges left of the last segment's
}

void ReplaySchedule::fill(Table& t, bool carrying) {
  t.reruns.assign(size_t((slots_ + 1) * (segments_ + 1)), kNever);
  t.split.assign(t.reruns.size(), 0);
  for (int64_t e = 0; e <= slots_; ++e) t.reruns[at(1, e)] = 0;
  for (int64_t n = 2; n <= segments_; ++n)
    for (int64_t e = 1; e <= slots_; ++e)
      for (int64_t m = 1; m < n; ++m) {
        if (m >= 2 && e < 2) break;  // the running memory and the next
        // [lo + m, lo + n) runs with the stored memory at lo + m; [lo, lo + m) after it, when
        // a gradient is carried in any case.
        const int64_t right = t.reruns[at(n - m, e - 1)];
        const int64_t left = carrying ? t.reruns[at(m, e)] : carrying_.reruns[at(m, e - 1)];
        if (right >= kNever || left >= kNever) continue;
        if (m + right + left < t.reruns[at(n, e)]) t.reruns[at(n, e)] = m + right + left, t.split[at(n, e)] = m;
      }
}

int64_t ReplaySchedule::reruns(int64_t n, int64_t slots, bool carrying) const {
  MNEMO_CHECK(n >= 1 && n <= segments_ && slots >= 0,
              "[replay] reruns(" << n << ", " << slots << ") outside a schedule of " << segments_ << " segments");
  const int64_t free = free_slots(slots, carrying);
  return free < 0 ? kNever : table(carrying).reruns[at(n, free)];
}

int64_t ReplaySchedule::split(int64_t n, int64_t slots, bool carrying) const {
  MNEMO_CHECK(n >= 2 && reruns(n, slots, carrying) < kNever,
              "[replay] no schedule reverses " << n << " segments within " << slots << " memory-sized buffers (a batch of "
                                               << segments_ << " needs " << least_slots(segments_) << ")");
  return table(carrying).split[at(n, free_slots(slots, carrying))];
}

}  // namespace mnemo::experiments
