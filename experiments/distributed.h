// Data-parallel training: the processes of one run and what the trainer and the run loop ask
// of them. `mpirun -n N mnemo train X.yaml` starts N processes; each holds the whole model and
// optimizer, draws the same global batch from the same data cursor and keeps its own rows of
// it (process r: rows [r B/N, (r+1) B/N)), so it carries the memories of its own streams.
// Gradients are summed across processes (buckets started while the last backward of a step
// still runs), so every process steps the same update; process 0 writes the run folder.
// One process is the same code with a Communicator whose sums are the identity: the trainer
// reads the same either way. The MPI Communicator is in distributed_mpi.cpp (-Dmpi).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "architectures/segment_model.h"
#include "autograd/error.h"
#include "autograd/param.h"
#include "data/streams.h"
#include "experiments/checkpoint.h"
#include "experiments/evaluate.h"

namespace mnemo::experiments {

// A sum started and not yet waited for (a gradient bucket).
class PendingSum {
 public:
  virtual ~PendingSum() = default;
  virtual bool done() = 0;  // lets the transfer progress; true once the sum is in place
  virtual void wait() = 0;
};

// Collectives over every process of the run. Each call must be made by every process in the
// same order. The MPI one stops the whole run (MPI_Abort, with a message naming `what`) when a
// collective is not complete after its timeout: a process that died or hangs never leaves the
// others waiting forever.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Element-wise sums, the same bits on every process.
  virtual void sum(std::span<double> values, const char* what) = 0;
  virtual std::unique_ptr<PendingSum> start_sum(std::span<float> values, const char* what) = 0;
  virtual int64_t max(int64_t value, const char* what) = 0;
  // Every process's bytes, in rank order, on every process.
  virtual std::vector<std::string> all_gather(const std::string& bytes, const char* what) = 0;
};

// The one process of a run without MPI.
Communicator& single_process();

// The number of processes the launcher started (Open MPI's OMPI_COMM_WORLD_SIZE, else PMI_SIZE),
// 1 when this process was not started by mpirun.
int launcher_world_size();

// A setup error every process agreed on (each saw every process's message): all of them stop
// with it, and only process 0 needs to print it.
struct AgreedError : Error {
  using Error::Error;
};

// Runs `setup` on every process, then compares outcomes: if any process threw, every process
// throws AgreedError naming each failing rank and its message. One process: `setup` alone.
void agree(Communicator& comm, const std::function<void()>& setup, const std::string& what);

// Refuses (AgreedError) when the processes' `text` differ (the resolved configs), quoting the
// first differing line.
void check_same(Communicator& comm, const std::string& text, const std::string& what);

// A line per weight and optimizer tensor (its CRC32), the counters and the data cursor: what
// every process must hold alike after a step (check_same on it catches processes drifting apart).
std::string state_digest(const TrainingState& state);

// ---- shards: this process's rows ----

// Rows [r B/N, (r+1) B/N) of every segment of `batch` (the batch itself when N = 1).
data::Batch local_rows(const data::Batch& batch, const Communicator& comm);
// The counted tokens (positions not masked out) of each segment of the whole batch: the
// denominators every process weights its rows' losses by, so the summed gradient is one process's.
std::vector<int64_t> counted_tokens(const data::Batch& batch);

// Memories by name are split and joined along their batch axis, found by comparing the model's
// initial memory for 1 and 2 streams (a memory without one cannot be split: refused).
class MemoryShards {
 public:
  MemoryShards(const arch::SegmentModel& model, const Communicator& comm);
  // This process's rows of a memory of the whole batch.
  arch::Memory local(const arch::Memory& whole) const;
  // The whole batch's memory from every process's rows (collective).
  arch::Memory whole(Communicator& comm, const arch::Memory& local) const;

 private:
  std::map<std::string, int> axis_;
  int rank_ = 0, size_ = 1;
};

// The evaluation of the whole batch from each process's over its rows: loss, accuracy and token
// counts are summed (by_position buckets are left out: `mnemo eval --tokens` runs in one process).
EvalResult sum_eval(Communicator& comm, const EvalResult& local);

// ---- gradients ----

// Sums every parameter's gradient across processes in buckets of about `bucket_bytes`, in a
// fixed order (the reverse of the parameters' order, roughly the order backward finishes them),
// so every process starts the same sums in the same order. ready(p) is called as the last
// backward of a step completes p's gradient: a bucket whose parameters are all ready starts at
// once and travels while backward goes on. finish() starts what is left and waits. A parameter
// whose gradient no process has stays without one (AdamW then leaves it alone, as in one process).
class GradientSync {
 public:
  GradientSync(Communicator& comm, std::vector<Param*> params, int64_t bucket_bytes = 1 << 20);
  void ready(const Param& p);
  void finish();
  double wait_seconds() const { return wait_seconds_; }  // spent in finish() waiting for sums
  int64_t buckets() const { return int64_t(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<Param*> params;
    std::vector<float> buffer;  // gradients, then one "has a gradient" flag per parameter
    int64_t waiting = 0;        // parameters not ready yet
    std::unique_ptr<PendingSum> pending;
  };
  void launch_ready();
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::map<const Param*, size_t> bucket_of_;
  std::vector<bool> ready_;  // per bucket-ordered parameter index, reset by finish()
  std::map<const Param*, size_t> index_of_;
  size_t next_ = 0;          // the next bucket to start
  double wait_seconds_ = 0;
};

}  // namespace mnemo::experiments
