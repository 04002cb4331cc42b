// What keeps a run folder trustworthy: one writer at a time (the folder lock, released by a
// killed holder too) and stale temporaries removed; a diverged step never applied and never
// checkpointed (train.on_nonfinite: stop and skip); SIGINT/SIGTERM checkpoint and report the
// signal; a finished run refuses --resume until train.steps is raised.
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "experiments/checkpoint.h"
#include "experiments/memory_estimate.h"
#include "experiments/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/read_text.h"

using namespace mnemo;
using namespace mnemo::experiments;
namespace fs = std::filesystem;

namespace {

// A tiny Transformer-XL on the copy task; `train` is the body of the train: block.
ExperimentConfig tiny(const test::TempDir& tmp, const std::string& train) {
  const std::string path = tmp / "tiny.yaml";
  std::ofstream(path) << "name: tiny\nseed: 7\n"
                         "data: {kind: synthetic, task: copy, copy_len: 3, segments: 2, segment_len: 8, batch_size: 2}\n"
                         "model: {arch: transformer_xl, dim: 16, depth: 1, heads: 2, transformer_xl: {mem_len: 8}}\n"
                         "train: {threads: 1, log_every: 1, eval_every: 0, "
                      << train << "}\neval: {batches: 1}\n";
  return load_config(path);
}

// Runs f, which must throw mnemo::Error; returns its message.
template <class F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  BOOST_FAIL("no mnemo::Error thrown");
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

bool all_finite(const NamedTensors& v) {
  for (const auto& [name, t] : v)
    for (double x : t.to_vector())
      if (!std::isfinite(x)) return false;
  return true;
}

using mnemo::test::read_text;

}  // namespace

BOOST_AUTO_TEST_SUITE(run_guards)

BOOST_AUTO_TEST_CASE(a_locked_folder_is_refused_naming_the_holder) {
  test::TempDir tmp("mnemo-lock");
  const ExperimentConfig cfg = tiny(tmp, "steps: 2");
  const std::string dir = tmp / "r";
  {
    // flock locks belong to an open file description, so this holder conflicts with the run's
    // own open() of the lock file although both are in this process.
    const RunFolderLock holder(dir);
    const std::string msg = error_of([&] { train_run(cfg, {.dir = dir, .progress = false}); });
    BOOST_TEST(contains(msg, "[run] '" + dir + "' is in use by process " + std::to_string(::getpid())), msg);
    BOOST_TEST(!fs::exists(checkpoint_path(dir)));  // refused before anything was written
  }
  BOOST_TEST(train_run(cfg, {.dir = dir, .progress = false}).finished);  // released with its holder
}

BOOST_AUTO_TEST_CASE(a_holder_killed_with_sigkill_releases_the_lock) {
  test::TempDir tmp("mnemo-lock-kill");
  const std::string dir = tmp / "r";
  int ready[2];
  BOOST_REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {  // holds the folder until killed
    const RunFolderLock lock(dir);
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  char c = 0;
  BOOST_REQUIRE(::read(ready[0], &c, 1) == 1);
  const std::string msg = error_of([&] { RunFolderLock second(dir); });
  BOOST_TEST(contains(msg, "is in use by process " + std::to_string(child)), msg);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]), ::close(ready[1]);
  BOOST_CHECK_NO_THROW(RunFolderLock again(dir));  // the kernel dropped the dead holder's lock
}

BOOST_AUTO_TEST_CASE(temporaries_of_dead_writers_are_removed_and_live_ones_kept) {
  test::TempDir tmp("mnemo-stale");
  const std::string dir = tmp / "r";
  fs::create_directories(fs::path(dir) / "checkpoints");
  const pid_t dead = ::fork();  // a pid that was a process and no longer is
  BOOST_REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string ckpt = checkpoint_path(dir);
  const std::string stale = ckpt + ".tmp." + std::to_string(dead), stale_data = stale + ".data";
  const std::string live = (fs::path(dir) / "config.yaml").string() + ".tmp." + std::to_string(::getppid());
  for (const std::string& f : {stale, stale_data, live}) std::ofstream(f) << "partial";
  {
    const RunFolderLock lock(dir);
    BOOST_TEST(lock.removed_temporaries().size() == 2u);
  }
  BOOST_TEST(!fs::exists(stale));
  BOOST_TEST(!fs::exists(stale_data));
  BOOST_TEST(fs::exists(live));  // its writer may still be writing
}

// An absurd learning rate: step 1 is finite and moves every weight by ~1e30; step 2's forward
// overflows float, so its loss is NaN.
const std::string kDiverges = "steps: 6, checkpoint_every: 1, clip: 0, optimizer: {lr: 1.0e30}";

BOOST_AUTO_TEST_CASE(on_nonfinite_stop_fails_at_the_bad_step_and_keeps_the_last_good_checkpoint) {
  test::TempDir tmp("mnemo-nan-stop");
  const ExperimentConfig cfg = tiny(tmp, kDiverges);
  BOOST_TEST((cfg.train.on_nonfinite == OnNonFinite::stop));  // the default
  const std::string dir = tmp / "r";
  const std::string msg = error_of([&] { train_run(cfg, {.dir = dir, .progress = false}); });
  BOOST_TEST(contains(msg, "[run] step 2: non-finite loss (nan"), msg);
  BOOST_TEST(contains(msg, "the last good checkpoint is step 1"), msg);
  const TrainingState st = load_checkpoint(checkpoint_path(dir));  // loads: finite, checksums good
  BOOST_TEST(st.step == 1);
  BOOST_TEST(all_finite(st.weights));
  BOOST_TEST(all_finite(st.optimizer));
  BOOST_TEST(contains(read_text(fs::path(dir) / "log.txt"), "non-finite loss"));
  BOOST_TEST(!fs::exists(fs::path(dir) / "summary.json"));
}

BOOST_AUTO_TEST_CASE(on_nonfinite_skip_goes_on_and_stops_after_max_skips_in_a_row) {
  test::TempDir tmp("mnemo-nan-skip");
  {  // every step after the first diverges: 5 skipped, the run still finishes, weights finite
    const ExperimentConfig cfg = tiny(tmp, kDiverges + ", on_nonfinite: skip, max_skips: 10");
    const RunResult r = train_run(cfg, {.dir = tmp / "a", .progress = false});
    BOOST_TEST(r.finished);
    BOOST_TEST(r.skipped_steps == 5);
    const TrainingState st = load_checkpoint(checkpoint_path(tmp / "a"));
    BOOST_TEST(st.step == 6);
    BOOST_TEST(st.skipped_updates == 5);  // so AdamW's count (1) agrees with step 6
    BOOST_TEST(all_finite(st.weights));
    BOOST_TEST(contains(read_text(fs::path(tmp / "a") / "log.txt"), "step 2: non-finite loss"));
    BOOST_TEST(load_run_config(tmp / "a").train.max_skips == 10);  // written in config.yaml
  }
  {  // a third non-finite step in a row with max_skips 2 ends the run
    const ExperimentConfig cfg = tiny(tmp, kDiverges + ", on_nonfinite: skip, max_skips: 2");
    const std::string msg = error_of([&] { train_run(cfg, {.dir = tmp / "b", .progress = false}); });
    BOOST_TEST(contains(msg, "[run] step 4: non-finite loss"), msg);
    BOOST_TEST(contains(msg, "3 non-finite steps in a row, more than train.max_skips = 2"), msg);
    BOOST_TEST(contains(msg, "the last good checkpoint is step 3"), msg);
    BOOST_TEST(load_checkpoint(checkpoint_path(tmp / "b")).step == 3);
  }
  {  // an update per segment: the skipped ones are counted per update, so the checkpoint's step
     // and AdamW's count still agree on load (2 updates per step, all but the first skipped)
    const std::string per_segment = "steps: 3, checkpoint_every: 1, clip: 0, on_nonfinite: skip, "
                                    "optimizer: {lr: 1.0e30, step_every: segment}";
    const RunResult r = train_run(tiny(tmp, per_segment), {.dir = tmp / "c", .progress = false});
    BOOST_TEST(r.finished);
    const TrainingState st = load_checkpoint(checkpoint_path(tmp / "c"));
    BOOST_TEST(st.updates_per_step == 2);
    BOOST_TEST(st.skipped_updates == 5);
    BOOST_TEST(st.optimizer_counters.at("adamw.steps") == 1);
  }
  // max_skips means nothing under stop, so setting it there is a mistake worth reporting.
  BOOST_CHECK_THROW(tiny(tmp, "max_skips: 3"), Error);
}

BOOST_AUTO_TEST_CASE(sigterm_and_sigint_checkpoint_and_report_the_signal) {
  test::TempDir tmp("mnemo-signal");
  const ExperimentConfig cfg = tiny(tmp, "steps: 20, checkpoint_every: 100");
  for (const int sig : {SIGTERM, SIGINT}) {
    BOOST_TEST_CONTEXT("signal " << sig) {
      const std::string dir = tmp / ("r" + std::to_string(sig));
      const RunResult r = train_run(cfg, {.dir = dir, .progress = false, .after_step = [sig](int64_t step) {
                                            if (step == 3) std::raise(sig);
                                          }});
      BOOST_TEST(r.interrupted_by == sig);
      BOOST_TEST(!r.finished);
      BOOST_TEST(r.steps == 3);
      BOOST_TEST(load_checkpoint(checkpoint_path(dir)).step == 3);  // checkpointed although not due
      BOOST_TEST(contains(read_text(fs::path(dir) / "log.txt"), "interrupted by SIG"));
      // The default disposition is back once the run returns: the signal kills again.
      struct sigaction now {};
      ::sigaction(sig, nullptr, &now);
      BOOST_TEST((now.sa_handler == SIG_DFL));
      const RunResult rest = train_run(load_run_config(dir), {.dir = dir, .resume = true, .progress = false});
      BOOST_TEST(rest.finished);
      BOOST_TEST(rest.interrupted_by == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(resuming_a_finished_run_is_refused_until_steps_are_raised) {
  test::TempDir tmp("mnemo-finished");
  const ExperimentConfig cfg = tiny(tmp, "steps: 3");
  const std::string dir = tmp / "r";
  train_run(cfg, {.dir = dir, .progress = false});
  const std::string msg = error_of([&] { train_run(load_run_config(dir), {.dir = dir, .resume = true, .progress = false}); });
  BOOST_TEST(contains(msg, "run '" + dir + "' is already finished at step 3 (raise train.steps with --set to continue)"),
             msg);
  const ExperimentConfig longer = load_config((fs::path(dir) / "config.yaml").string(), {"train.steps=5"});
  const RunResult r = train_run(longer, {.dir = dir, .resume = true, .progress = false});
  BOOST_TEST(r.finished);
  BOOST_TEST(r.steps == 5);
  BOOST_TEST(load_run_config(dir).train.steps == 5);
}

BOOST_AUTO_TEST_CASE(a_run_stopped_before_its_summary_resumes_to_write_it) {
  // A sweep point killed between its last checkpoint and summary.json: --resume writes the
  // summary (from the final evaluation again) instead of refusing a "finished" run.
  test::TempDir tmp("mnemo-nosummary");
  const ExperimentConfig cfg = tiny(tmp, "steps: 3");
  const std::string dir = tmp / "r";
  const RunResult first = train_run(cfg, {.dir = dir, .progress = false});
  fs::remove(fs::path(dir) / "summary.json");
  const RunResult again = train_run(load_run_config(dir), {.dir = dir, .resume = true, .progress = false});
  BOOST_TEST(again.finished);
  BOOST_TEST(again.steps == 3);
  BOOST_TEST(fs::exists(fs::path(dir) / "summary.json"));
  BOOST_TEST(again.final_eval.loss == first.final_eval.loss);
  BOOST_TEST(again.final_eval.tokens == first.final_eval.tokens);
}

BOOST_AUTO_TEST_CASE(a_run_that_cannot_fit_in_memory_is_refused_before_anything_is_allocated) {
  test::TempDir tmp("mnemo-memory");
  ExperimentConfig big = tiny(tmp, "steps: 3");
  big.model.dim = 65536, big.model.depth = 4096, big.model.heads = 1;
  const MemoryEstimate e = training_memory_lower_bound(big);
  BOOST_TEST(e.params > 7e13);  // 4 x 4096 x 65536^2 attention weights, at least
  const std::string dir = tmp / "big";
  const std::string msg = error_of([&] { train_run(big, {.dir = dir, .progress = false}); });
  BOOST_TEST(contains(msg, "needs at least"), msg);
  BOOST_TEST(contains(msg, "MNEMO_SKIP_MEMORY_CHECK=1"), msg);
  BOOST_TEST(!fs::exists(dir));  // refused before the folder was made
  // the bound is a lower bound: the tiny run it does not refuse trains, and a known
  // machine size decides (1 KiB cannot hold it, 1 TiB can)
  const ExperimentConfig small = tiny(tmp, "steps: 3");
  BOOST_CHECK_THROW(check_memory_fits(small, 1024), Error);
  BOOST_CHECK_NO_THROW(check_memory_fits(small, int64_t(1) << 40));
  BOOST_CHECK_NO_THROW(check_memory_fits(big, -1));  // unknown available memory: no check
  BOOST_TEST(train_run(small, {.dir = tmp / "small", .progress = false}).finished);
}

BOOST_AUTO_TEST_SUITE_END()
