#include "experiments/distributed_mpi.h"

// the C API alone: the deprecated C++ bindings warn under -Wextra
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace mnemo::experiments {
namespace {

using Clock = std::chrono::steady_clock;

double timeout_seconds() {
  const char* v = std::getenv("MNEMO_MPI_TIMEOUT");
  if (!v || !*v) return 300;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  MNEMO_CHECK(end && *end == '\0' && s > 0, "[distributed] MNEMO_MPI_TIMEOUT must be a number of seconds > 0, got '"
                                                << v << "'");
  return s;
}

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

[[noreturn]] void abort_run(const std::string& message, int code) {
  std::cerr << "mnemo: error: " << message << std::endl;
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return
}

// Polls `req` until it completes or the deadline passes. A waiting process yields its core
// (after a short spin) instead of spinning on it: ranks often share the cores with the others.
void wait_for(MPI_Request& req, const char* what, double timeout) {
  const auto start = Clock::now();
  for (int64_t polls = 0;; ++polls) {
    int done = 0;
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (polls < 1000) {
      std::this_thread::yield();
      continue;
    }
    if (std::chrono::duration<double>(Clock::now() - start).count() > timeout)
      abort_run("[distributed] rank " + std::to_string(world_rank()) + ": " + what + " got no answer from the other "
                "processes in " + std::to_string(int64_t(timeout)) + " s (a process died or hangs; MNEMO_MPI_TIMEOUT "
                "sets the limit): stopping every process", 1);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

class MpiSum : public PendingSum {
 public:
  MpiSum(std::span<float> v, const char* what, double timeout) : what_(what), timeout_(timeout) {
    MPI_Iallreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req_);
  }
  ~MpiSum() override {
    if (!finished_) wait();  // never leave a request behind
  }
  bool done() override {
    if (finished_) return true;
    int flag = 0;
    MPI_Test(&req_, &flag, MPI_STATUS_IGNORE);
    return finished_ = flag != 0;
  }
  void wait() override {
    if (!finished_) wait_for(req_, what_, timeout_);
    finished_ = true;
  }

 private:
  MPI_Request req_ = MPI_REQUEST_NULL;
  const char* what_;
  double timeout_;
  bool finished_ = false;
};

class MpiWorld : public Communicator {
 public:
  MpiWorld() : timeout_(timeout_seconds()) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void sum(std::span<double> v, const char* what) override {
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req);
    wait_for(req, what, timeout_);
  }

  std::unique_ptr<PendingSum> start_sum(std::span<float> v, const char* what) override {
    return std::make_unique<MpiSum>(v, what, timeout_);
  }

  int64_t max(int64_t value, const char* what) override {
    MPI_Request req;
    MPI_Iallreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD, &req);
    wait_for(req, what, timeout_);
    return value;
  }

  std::vector<std::string> all_gather(const std::string& bytes, const char* what) override {
    std::vector<int> sizes(size_t(size_), 0);
    int mine = int(bytes.size());
    MPI_Request req;
    MPI_Iallgather(&mine, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD, &req);
    wait_for(req, what, timeout_);
    std::vector<int> offsets(size_t(size_), 0);
    int64_t total = 0;
    for (size_t r = 0; r < sizes.size(); ++r) offsets[r] = int(total), total += sizes[r];
    MNEMO_CHECK(total < (int64_t(1) << 31), "[distributed] " << what << ": " << total << " bytes to gather, over 2 GiB");
    std::string all(size_t(total), '\0');
    MPI_Iallgatherv(bytes.data(), mine, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, MPI_COMM_WORLD,
                    &req);
    wait_for(req, what, timeout_);
    std::vector<std::string> out;
    for (size_t r = 0; r < sizes.size(); ++r) out.push_back(all.substr(size_t(offsets[r]), size_t(sizes[r])));
    return out;
  }

 private:
  int rank_ = 0, size_ = 1;
  double timeout_;
};

}  // namespace

MpiSession::MpiSession() {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  try {
    world_ = std::make_unique<MpiWorld>();
  } catch (...) {  // a bad MNEMO_MPI_TIMEOUT: the same on every process
    MPI_Finalize();
    throw;
  }
}

MpiSession::~MpiSession() {
  world_.reset();
  MPI_Finalize();
}

void MpiSession::abort(const std::string& message, int code) { abort_run(message, code); }

}  // namespace mnemo::experiments
