// The Communicator over MPI (built with -Dmpi, Open MPI on Debian). MPI has no timeout of its
// own: every collective here is the non-blocking one polled against a deadline
// (MNEMO_MPI_TIMEOUT seconds, default 300), after which the process prints which collective
// got no answer and calls MPI_Abort, which stops every process of the run.
#pragma once

#include <memory>

#include "experiments/distributed.h"

namespace mnemo::experiments {

// MPI from construction (MPI_Init_thread, funneled: only the main thread calls MPI) to
// destruction (MPI_Finalize). One per process, made by `mnemo train` when mpirun started it.
class MpiSession {
 public:
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  Communicator& world() { return *world_; }
  // Prints `message` and stops every process (an error after setup: the others may be inside
  // a collective this process will never join).
  [[noreturn]] void abort(const std::string& message, int code = 1);

 private:
  std::unique_ptr<Communicator> world_;
};

}  // namespace mnemo::experiments
