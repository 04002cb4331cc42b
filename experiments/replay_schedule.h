// Where replay with recomputation stores memories on its way back (checkpointing in the
// manner of Griewank's "revolve", applied to segments). Reversing segments [lo, lo + n) with
// the memory entering lo in hand: re-run [lo, lo + m) without a tape to get the memory at
// lo + m, reverse [lo + m, lo + n) while it is stored, drop it, reverse [lo, lo + m).
// `slots` bounds the memory-sized buffers alive at once besides the first memory and the
// batch's final one: the stored memories, a re-run's running memory and the next one it
// computes (two for a re-run of m >= 2 segments), and the memory gradient carried back, which
// exists once the last segment is done. The schedule takes the fewest re-run forwards within
// that bound (tables over n <= segments and the slots, built once per batch).
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

namespace mnemo::experiments {

class ReplaySchedule {
 public:
  ReplaySchedule(int64_t segments, int64_t slots);

  // Fewest untaped re-run forwards that reverse n segments within `slots`, `carrying` a
  // memory gradient (every range but those that end at the batch's last segment); kNever
  // when none fits.
  int64_t reruns(int64_t n, int64_t slots, bool carrying) const;
  // The split m (1 <= m < n) that attains it.
  int64_t split(int64_t n, int64_t slots, bool carrying) const;

  // Fewest slots that replay a batch of n segments.
  static int64_t least_slots(int64_t n) { return n <= 1 ? 0 : n == 2 ? 1 : n <= 4 ? 2 : 3; }
  static constexpr int64_t kNever = int64_t{1} << 60;

 private:
  struct Table {
    std::vector<int64_t> reruns, split;
  };
  int64_t segments_, slots_;
  Table carrying_, first_;  // with a memory gradient alive, and along the last segment's ranges
  std::size_t at(int64_t n, int64_t free) const { return std::size_t(free * (segments_ + 1) + n); }
  // slots left for stored and running memories (beyond slots_ none saves a forward)
  int64_t free_slots(int64_t slots, bool carrying) const { return std::min(slots, slots_) - int64_t(carrying); }
  void fill(Table& t, bool carrying);
  const Table& table(bool carrying) const { return carrying ? carrying_ : first_; }
};

}  // namespace mnemo::experiments
