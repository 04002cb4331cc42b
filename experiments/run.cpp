#include "experiments/run.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "common/progress.h"
#include "experiments/checkpoint.h"
#include "experiments/distributed.h"
#include "experiments/generate.h"
#include "experiments/tensorboard.h"
#include "experiments/json.h"
#include "experiments/memory_estimate.h"
#include "experiments/models.h"
#include "experiments/on_device.h"
#include "experiments/run_data.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mnemo::experiments {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// SIGINT (Ctrl-C) and SIGTERM ask the loop to checkpoint and stop at the next step boundary;
// the number of the signal is kept so that `mnemo train` exits 128 + signal, as a shell
// expects of a command a signal stopped (`mnemo train ... && next` must not go on).
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "written from a signal handler");
extern "C" void on_stop_signal(int sig) { g_signal = sig; }

std::string signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : std::to_string(sig); }

// "name.tmp.<pid>" or "name.tmp.<pid>.data" (write_file_atomic, SafetensorsWriter): the pid, else 0.
pid_t temporary_owner(const std::string& name) {
  const size_t at = name.rfind(".tmp.");
  if (at == std::string::npos) return 0;
  std::string rest = name.substr(at + 5);
  if (rest.size() > 5 && rest.ends_with(".data")) rest.resize(rest.size() - 5);
  if (rest.empty() || rest.size() > 9 || rest.find_first_not_of("0123456789") != std::string::npos) return 0;
  return pid_t(std::stol(rest));
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

std::string number(double v) {
  if (std::isnan(v)) return "nan";  // not printf's "-nan": the sign of a NaN means nothing here
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// The run folder's text outputs. Lines are flushed as written: a killed run keeps them. On a
// terminal stderr shows a progress bar (common/progress.h) redrawn every step; elsewhere the
// log's step lines, every train.log_every steps.
class RunFiles {
 public:
  // A process other than rank 0 of a data-parallel run writes nothing (`writes` false).
  RunFiles(const fs::path& dir, bool progress, bool writes = true)
      : dir_(dir), tty_(writes && progress && ::isatty(2)), progress_(progress && writes), writes_(writes) {
    if (!writes_) return;
    log_.open(dir / "log.txt", std::ios::app);
    MNEMO_CHECK(log_, "[run] cannot write " << (dir / "log.txt").string());
  }
  ~RunFiles() {
    if (bar_) bar_->finish();
  }

  void append(const char* file, const std::string& line) {
    if (!writes_) return;
    std::ofstream f(dir_ / file, std::ios::app);
    MNEMO_CHECK(f, "[run] cannot write " << (dir_ / file).string());
    f << line << "\n";
  }
  void log(const std::string& line) {  // a permanent line: log file and stderr
    if (!writes_) return;
    log_ << line << "\n" << std::flush;
    if (bar_) bar_->message(line);
    else if (progress_) std::cerr << line << "\n";
  }
  // The bar from step `first` to `total` (a terminal only); tick() after every step.
  void start_bar(int64_t first, int64_t total, int64_t tokens_per_step) {
    if (!tty_) return;
    bar_.emplace(Progress::Options{.label = "train", .unit = "step", .total = total, .start = first,
                                   .rate_scale = double(tokens_per_step), .rate_unit = "tok",
                                   .mode = ProgressMode::terminal});
  }
  void tick(int64_t step, const std::string& note) {
    if (bar_) bar_->update(step, note);
  }
  void record(const std::string& line) {  // log file only
    if (writes_) log_ << line << "\n" << std::flush;
  }
  void progress(const std::string& line) {  // a step line: log file; stderr unless the bar shows
    if (!writes_) return;
    log_ << line << "\n" << std::flush;
    if (progress_ && !bar_) std::cerr << line << "\n";
  }

 private:
  fs::path dir_;
  std::ofstream log_;
  bool tty_, progress_, writes_;
  std::optional<Progress> bar_;
};

// Keeps the rows of a .jsonl file whose "step" is at most `step` (a resumed run redoes the rest).
void truncate_jsonl(const fs::path& file, int64_t step) {
  if (!fs::exists(file)) return;
  std::ifstream in(file);
  std::string line, kept;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    const json::Json j = json::parse(line, file.string() + ":" + std::to_string(number));
    int64_t s = -1;
    for (const auto& [k, v] : j.members)
      if (k == "step") s = std::stoll(v.text);
    if (s <= step) kept += line + "\n";
  }
  write_file_atomic(file.string(), kept);
}

std::string eval_row(int64_t step, int64_t trained_tokens, double train_loss, const EvalResult& e, bool synthetic,
                     double tok_s, double elapsed) {
  json::ObjectWriter w;
  w.add("step", step).add("train_tokens", trained_tokens).add("train_loss", train_loss).add("val_loss", e.loss);
  if (synthetic) w.add("val_accuracy", e.accuracy);
  else w.add("val_bpb", e.bits_per_byte).add("val_accuracy", e.accuracy);
  return w.add("val_tokens", e.tokens).add("tokens_per_s", tok_s).add("elapsed_s", elapsed).str();
}

std::string eval_text(const EvalResult& e, bool synthetic) {
  char buf[128];
  if (synthetic) std::snprintf(buf, sizeof buf, "val loss %.4f, answer accuracy %.4f", e.loss, e.accuracy);
  else std::snprintf(buf, sizeof buf, "val loss %.4f, %.4f bits/byte", e.loss, e.bits_per_byte);
  return buf;
}

void set_threads(int64_t n) {
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads(int(n));
#else
  (void)n;
#endif
}

}  // namespace

std::string default_run_dir(const ExperimentConfig& cfg) { return (fs::path("runs") / cfg.name).string(); }
std::string checkpoint_path(const std::string& dir) { return (fs::path(dir) / "checkpoints" / "last.safetensors").string(); }

ExperimentConfig load_run_config(const std::string& dir, const std::vector<std::string>& overrides) {
  const fs::path file = fs::path(dir) / "config.yaml";
  MNEMO_CHECK(fs::exists(file), "[run] '" << dir << "' is not a run folder: it has no config.yaml");
  return load_config(file.string(), overrides);
}

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * int64_t(::sysconf(_SC_PAGESIZE));
}

int64_t peak_resident_bytes() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return int64_t(u.ru_maxrss) * 1024;
}

RunFolderLock::RunFolderLock(const std::string& dir) {
  std::error_code ec;  // the standard library's words name neither the run nor what to do
  fs::create_directories(dir, ec);
  MNEMO_CHECK(!ec, "[run] cannot create the run folder '" << dir << "': " << ec.message()
                                                          << " (choose another with --out)");
  const std::string file = (fs::path(dir) / "lock").string();
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  MNEMO_CHECK(fd_ >= 0, "[run] cannot open " << file << ": " << std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string holder = n > 0 ? std::string(buf, size_t(n)) : "";
    while (!holder.empty() && std::isspace(static_cast<unsigned char>(holder.back()))) holder.pop_back();
    MNEMO_CHECK(err != EWOULDBLOCK, "[run] '" << dir << "' is in use by process " << (holder.empty() ? "?" : holder));
    MNEMO_CHECK(false, "[run] cannot lock " << file << ": " << std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    const int err = errno;
    ::close(fd_);
    MNEMO_CHECK(false, "[run] cannot write " << file << ": " << std::strerror(err));
  }
  // Holding the lock proves no other mnemo process writes here; a temporary of a live process
  // (a `mnemo eval --dump-logits` aimed into the folder, say) is still left alone.
  for (const fs::path& d : {fs::path(dir), fs::path(dir) / "checkpoints"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(d, ec)) {
      const pid_t owner = temporary_owner(entry.path().filename().string());
      if (owner <= 0 || !entry.is_regular_file() || (owner != ::getpid() && process_alive(owner))) continue;
      if (fs::remove(entry.path(), ec)) removed_.push_back(entry.path().string());
    }
  }
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

namespace {

TrainerOptions trainer_options(const ExperimentConfig& cfg) {
  TrainerOptions t;
  t.bptt.mode = cfg.train.bptt;
  t.bptt.window = cfg.train.window;
  t.bptt.replay_recompute = cfg.train.replay_recompute;
  t.bptt.replay_snapshots = cfg.train.replay_snapshots;
  t.bptt.seed = cfg.seed;
  t.bptt.memory_dropout = cfg.train.memory_dropout;
  t.bptt.bf16 = cfg.train.precision == Precision::bf16;
  t.grad_accum = cfg.train.grad_accum;
  t.clip = cfg.train.clip;
  t.schedule = schedule_of(cfg.train, cfg.data.segments);
  t.step_every_segment = cfg.train.optimizer.step_every == StepEvery::segment;
  t.stateful = cfg.data.stateful;  // random crops restart every batch (and load refuses them stateful)
  t.seed = cfg.seed;
  return t;
}

// SIGINT and SIGTERM set g_signal for as long as the loop runs; the previous handlers come
// back however the loop ends.
class InterruptGuard {
 public:
  InterruptGuard() : previous_int_(std::signal(SIGINT, on_stop_signal)), previous_term_(std::signal(SIGTERM, on_stop_signal)) {
    g_signal = 0;
  }
  ~InterruptGuard() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};


// One run of `mnemo train`: set up (or resume) in the constructor, then loop(), then finish().
class Run {
 public:
  Run(const ExperimentConfig& cfg_in, const RunOptions& o, Communicator& comm)
      : cfg_(fitting(without_sweep(cfg_in))),
        o_(o),
        comm_(comm),
        lock_(comm.rank() == 0 ? std::make_unique<RunFolderLock>(folder_of(cfg_, o)) : nullptr),
        dir_(prepare_folder(cfg_, o, res_, comm.rank() == 0)),
        model_(built_on(build_model(cfg_), cfg_.device, comm)),
        shards_(*model_, comm),
        data_(local_eval(make_run_data(cfg_), comm)),
        opt_(nn::named_params(*model_), adamw_config(cfg_.train.optimizer)),
        trainer_(*model_, *data_.train, opt_, trainer_options(cfg_), comm),
        files_(dir_, o.progress, writes()) {
    nn::train(*model_);
    if (lock_)
      for (const std::string& f : lock_->removed_temporaries())
        files_.log("removed " + f + ", left by an interrupted write");
    if (o.resume) resume();
    else start();
  }

  // Steps until train.steps or a stop: logs, evaluations, samples and checkpoints on their schedule.
  void loop() {
    InterruptGuard guard;
    const int64_t first = trainer_.steps();
    const auto loop_start = Clock::now();
    files_.start_bar(first, cfg_.train.steps, data_.tokens_per_batch * cfg_.train.grad_accum);
    while (trainer_.steps() < cfg_.train.steps) {
      const auto t0 = Clock::now();
      const StepMetrics m = trainer_.step();
      res_.train_seconds += seconds_since(t0);
      tokens_ += data_.tokens_per_batch * cfg_.train.grad_accum;
      res_.tokens_per_s = double(tokens_) / res_.train_seconds;
      const int64_t step = trainer_.steps();
      const bool last = step == cfg_.train.steps;
      if (m.skipped) on_non_finite(m);  // throws under on_nonfinite: stop, before any checkpoint
      else consecutive_skips_ = 0;
      log_step(m, first, loop_start);
      files_.tick(step, "loss " + number(m.loss) + " | RSS " + std::to_string(resident_bytes() >> 20) + " MiB");
      const auto e0 = Clock::now();
      if ((cfg_.train.eval_every > 0 && step % cfg_.train.eval_every == 0) || last) evaluate_now(m.loss);
      if (cfg_.eval.generate_every > 0 && (step % cfg_.eval.generate_every == 0 || last) && writes()) sample();
      eval_seconds_ += seconds_since(e0);
      if (o_.after_step) o_.after_step(step);
      res_.interrupted_by = int(comm_.max(g_signal, "agreeing on a stop"));  // every process stops at the same step
      const bool stop = res_.interrupted_by != 0 || (o_.stop_after > 0 && step >= o_.stop_after);
      if ((cfg_.train.checkpoint_every > 0 && step % cfg_.train.checkpoint_every == 0) || last || stop) save();
      if (stop) {
        files_.log((res_.interrupted_by ? "interrupted by " + signal_name(res_.interrupted_by) : std::string("stopped")) +
                   " at step " + std::to_string(step) + "; continue with: mnemo train --resume " + res_.dir);
        break;
      }
    }
    res_.loop_seconds = seconds_since(loop_start) - eval_seconds_;
  }

  // The result; a finished run also writes summary.json.
  RunResult finish() {
    res_.steps = trainer_.steps();
    res_.finished = res_.steps >= cfg_.train.steps;
    if (!res_.finished || !writes()) return res_;
    const EvalResult& e = res_.final_eval;
    json::ObjectWriter w;
    w.add("name", cfg_.name).add("arch", cfg_.model.arch).add("params", nn::param_count(*model_));
    w.add("steps", res_.steps);
    w.add("final_val_loss", e.loss).add("final_val_accuracy", e.accuracy);
    if (!data_.synthetic) w.add("final_val_bpb", e.bits_per_byte).add("best_val_bpb", best_loss_ / std::log(2.0));
    w.add("best_val_loss", best_loss_).add("best_val_accuracy", res_.best_eval.accuracy).add("best_step", res_.best_step);
    w.add("tokens_per_s", res_.tokens_per_s).add("train_seconds", train_seconds_before_ + res_.train_seconds);
    w.add("peak_rss_mib", double(peak_resident_bytes()) / double(1 << 20));
    if (comm_.size() > 1) {  // data-parallel: how long rank 0 waited for gradient sums after the backward
      w.add("processes", int64_t(comm_.size())).add("allreduce_wait_seconds", trainer_.sync_wait_seconds());
      files_.log("gradient sums: " + number(trainer_.sync_wait_seconds()) + " s waited after the backward, of " +
                 number(res_.train_seconds) + " s training, over " + std::to_string(comm_.size()) + " processes");
    }
    write_file_atomic((dir_ / "summary.json").string(), w.str() + "\n");
    files_.log("done: " + eval_text(e, data_.synthetic) + "; " + format_count(res_.tokens_per_s) +
               " tok/s; results in " + res_.dir);
    return res_;
  }

 private:
  // Refused before the folder is touched when even a lower bound of its memory cannot fit.
  static ExperimentConfig fitting(ExperimentConfig cfg) {
    check_memory_fits(cfg, available_memory_bytes());
    return cfg;
  }

  // This process's rows of every held-out batch: evaluation runs split and its sums are added.
  static RunData local_eval(RunData d, const Communicator& comm) {
    for (data::Batch& b : d.eval) b = local_rows(b, comm);
    return d;
  }

  bool writes() const { return comm_.rank() == 0; }

  // Built and initialised on the CPU (the same weights on every device), then moved once.
  static std::unique_ptr<arch::SegmentModel> built_on(std::unique_ptr<arch::SegmentModel> model, Device device,
                                                      const Communicator& comm) {
    MNEMO_CHECK(device == Device::cpu || comm.size() == 1,
                "[run] device: cuda runs in one process; data-parallel training (" << comm.size()
                                                                                  << " processes) runs on the CPU");
    move_to(*model, device);
    return model;
  }

  static ExperimentConfig without_sweep(ExperimentConfig cfg) {
    cfg.sweep.clear();  // a run is one point of a sweep
    return cfg;
  }

  static std::string folder_of(const ExperimentConfig& cfg, const RunOptions& o) {
    return o.dir.empty() ? default_run_dir(cfg) : o.dir;
  }

  // The run folder, refused when it holds a run and this is no resume (or holds none and
  // this is one), with the resolved config written in it.
  static fs::path prepare_folder(const ExperimentConfig& cfg, const RunOptions& o, RunResult& res, bool writes) {
    res.dir = folder_of(cfg, o);
    const std::string ckpt = checkpoint_path(res.dir);
    if (o.resume) {
      MNEMO_CHECK(fs::exists(ckpt), "[run] cannot resume '" << res.dir << "': no checkpoint at " << ckpt);
    } else {
      MNEMO_CHECK(!fs::exists(ckpt), "[run] '" << res.dir << "' already holds a run (" << ckpt
                                               << "); resume it with --resume or choose another folder with --out");
    }
    const fs::path dir(res.dir);
    set_threads(cfg.train.threads);
    if (!writes) return dir;  // rank 0 of a data-parallel run writes the folder
    fs::create_directories(dir / "checkpoints");
    write_file_atomic((dir / "config.yaml").string(), to_yaml(cfg));
    return dir;
  }

  void start() {
    if (!writes()) return;
    for (const char* f : {"metrics.jsonl", "train.jsonl", "samples.txt"}) fs::remove(dir_ / f);
    files_.log("run " + res_.dir + ": " + cfg_.model.arch + ", " + format_count(double(nn::param_count(*model_))) +
               " parameters, " + std::to_string(cfg_.train.steps) + " steps of " +
               std::to_string(data_.tokens_per_batch * cfg_.train.grad_accum) + " tokens");
  }

  void resume() {
    const TrainingState st = load_checkpoint(checkpoint_path(res_.dir));
    // A run stopped between its last checkpoint and summary.json (a sweep point killed
    // there) only lacks the summary: resuming writes it. One with a summary is finished.
    const bool summary_missing = st.step >= cfg_.train.steps && !fs::exists(dir_ / "summary.json");
    MNEMO_CHECK(st.step < cfg_.train.steps || summary_missing,
                "[run] run '" << res_.dir << "' is already finished at step " << st.step
                              << " (raise train.steps with --set to continue)");
    const auto n = st.extra.find("processes");  // absent: one process
    const int64_t ranks = n != st.extra.end() ? std::stoll(n->second) : 1;
    MNEMO_CHECK(ranks == comm_.size(),
                "[run] run '" << res_.dir << "' was checkpointed by " << ranks << " process" << (ranks > 1 ? "es" : "")
                              << " and this is " << comm_.size() << ": resume it with mpirun -n " << ranks
                              << " (the gradient sums of another count round differently, so it would not continue bit "
                                 "for bit)");
    restore(*model_, opt_, st);
    trainer_.set_steps(st.step);
    trainer_.set_skipped_updates(st.skipped_updates);
    last_checkpoint_step_ = st.step;
    trainer_.set_memory(memory_on(shards_.local(st.memory), cfg_.device));
    data_.train->set_cursor(st.data_cursor);
    if (auto it = st.extra.find("best_val_loss"); it != st.extra.end()) best_loss_ = std::stod(it->second);
    if (auto it = st.extra.find("best_step"); it != st.extra.end()) res_.best_step = std::stoll(it->second);
    if (auto it = st.extra.find("train_seconds"); it != st.extra.end()) train_seconds_before_ = std::stod(it->second);
    if (writes())
      for (const char* f : {"metrics.jsonl", "train.jsonl"}) truncate_jsonl(dir_ / f, st.step);
    files_.log("resumed " + res_.dir + " at step " + std::to_string(st.step));
    if (summary_missing) {  // the summary's results: the final evaluation again (no tape, no new row)
      nn::eval(*model_);
      res_.final_eval = sum_eval(comm_, evaluate(*model_, data_.eval));
      nn::train(*model_);
      if (res_.best_step == st.step) res_.best_eval = res_.final_eval;
    }
  }

  void log_step(const StepMetrics& m, int64_t first, Clock::time_point loop_start) {
    window_loss_ += m.loss, ++window_steps_;
    const int64_t step = trainer_.steps();
    if (step % cfg_.train.log_every != 0 && step != cfg_.train.steps) return;
    if (!writes()) return;
    files_.append("train.jsonl", json::ObjectWriter()
                                     .add("step", step).add("loss", m.loss).add("aux_loss", m.aux_loss)
                                     .add("grad_norm", m.grad_norm).add("lr", m.lr)
                                     .add("tokens_per_s", res_.tokens_per_s).str());
    tb_log_step(step, m);
    const double per_step = (seconds_since(loop_start) - eval_seconds_) / double(step - first);
    char line[256];
    std::snprintf(line, sizeof line, "step %ld/%ld | loss %.4f | %s tok/s | ETA %s | RSS %ld MiB%s", long(step),
                  long(cfg_.train.steps), window_loss_ / double(window_steps_), format_count(res_.tokens_per_s).c_str(),
                  format_duration(per_step * double(cfg_.train.steps - step)).c_str(), long(resident_bytes() >> 20),
                  m.skipped ? " | skipped: non-finite loss or gradient" : "");
    files_.progress(line);
    window_loss_ = 0, window_steps_ = 0;
  }

  void evaluate_now(double train_loss) {
    nn::eval(*model_);
    const EvalResult e = sum_eval(comm_, evaluate(*model_, data_.eval));
    nn::train(*model_);
    res_.final_eval = e;
    if (e.loss < best_loss_) best_loss_ = e.loss, res_.best_step = trainer_.steps();
    if (res_.best_step == trainer_.steps()) res_.best_eval = e;
    files_.append("metrics.jsonl", eval_row(trainer_.steps(), trainer_.steps() * data_.tokens_per_batch * cfg_.train.grad_accum, train_loss,
                                            e, data_.synthetic, res_.tokens_per_s,
                                            train_seconds_before_ + res_.train_seconds));
    tb_log_eval(trainer_.steps(), e);
    files_.log("step " + std::to_string(trainer_.steps()) + ": " + eval_text(e, data_.synthetic));
  }

  void sample() {
    const data::Batch& b = data_.eval.at(0);
    const int64_t n = std::min<int64_t>(b.seg_len(), 64);
    std::vector<int32_t> prompt(b.inputs[0].data<int32_t>(), b.inputs[0].data<int32_t>() + n);
    nn::eval(*model_);
    const auto tokens = generate(*model_, cfg_.data.segment_len, prompt,
                                 {.length = cfg_.eval.generate_len, .temperature = cfg_.eval.temperature,
                                  .top_k = cfg_.eval.top_k, .seed = cfg_.seed + uint64_t(trainer_.steps())});
    nn::train(*model_);
    files_.append("samples.txt", "--- step " + std::to_string(trainer_.steps()) + "\n" + printable(prompt) + "|" +
                                     printable(tokens));
    tb_->text(trainer_.steps(), "samples", printable(prompt) + "|" + printable(tokens));
  }

  void tb_log_step(int64_t step, const StepMetrics& m) {
    tb_->scalar(step, "train/loss", m.loss), tb_->scalar(step, "train/grad_norm", m.grad_norm);
    tb_->scalar(step, "train/lr", m.lr), tb_->scalar(step, "train/tokens_per_s", res_.tokens_per_s);
    if (m.aux_loss != 0) tb_->scalar(step, "train/aux_loss", m.aux_loss);
  }

  void tb_log_eval(int64_t step, const EvalResult& e) {
    if (!tb_) return;
    tb_->scalar(step, "val/loss", e.loss), tb_->scalar(step, "val/accuracy", e.accuracy);
    if (!data_.synthetic) tb_->scalar(step, "val/bpb", e.bits_per_byte);
  }

  void save() {
    const auto t0 = Clock::now();
    // every process's memories, joined in stream order: the file of one process with the whole batch
    TrainingState st = capture(*model_, opt_, shards_.whole(comm_, trainer_.memory()), 0, data_.train->cursor());
    st.step = trainer_.steps();
    if (comm_.size() > 1) {
      st.extra["processes"] = std::to_string(comm_.size());
      check_same(comm_, state_digest(st), "weights, optimizer state and data cursor after step " + std::to_string(st.step));
    }
    st.updates_per_step = trainer_.updates_per_step(cfg_.data.segments);
    st.skipped_updates = trainer_.skipped_updates();
    st.extra["best_val_loss"] = std::to_string(best_loss_);
    st.extra["best_step"] = std::to_string(res_.best_step);
    st.extra["train_seconds"] = std::to_string(train_seconds_before_ + res_.train_seconds);
    if (writes()) save_checkpoint(checkpoint_path(res_.dir), st);
    res_.checkpoint_seconds += seconds_since(t0);
    ++res_.checkpoints;
    last_checkpoint_step_ = st.step;
  }

  // The step was not applied (Trainer): go on under `skip` while the streak is short enough,
  // else stop the run here, before this step can reach a checkpoint.
  void on_non_finite(const StepMetrics& m) {
    ++consecutive_skips_;
    const int64_t step = trainer_.steps();
    std::string what = "step " + std::to_string(step) + ": non-finite ";
    if (!std::isfinite(m.loss)) what += "loss (" + number(m.loss) + "), gradient norm " + number(m.grad_norm);
    else if (!std::isfinite(m.aux_loss)) what += "aux loss (" + number(m.aux_loss) + "), gradient norm " + number(m.grad_norm);
    else what += "gradient norm (" + number(m.grad_norm) + ")";
    const bool skip = cfg_.train.on_nonfinite == OnNonFinite::skip;
    if (skip && consecutive_skips_ <= cfg_.train.max_skips) {
      ++res_.skipped_steps;
      files_.log(what + ": skipped (" + std::to_string(consecutive_skips_) + " in a row; train.max_skips " +
                 std::to_string(cfg_.train.max_skips) + ")");
      return;
    }
    std::string msg = "[run] " + what;
    if (skip)
      msg += "; " + std::to_string(consecutive_skips_) + " non-finite steps in a row, more than train.max_skips = " +
             std::to_string(cfg_.train.max_skips);
    msg += "; the step was not applied and nothing was saved after it; ";
    msg += last_checkpoint_step_ >= 0 ? "the last good checkpoint is step " + std::to_string(last_checkpoint_step_) +
                                            " (" + checkpoint_path(res_.dir) + ")"
                                      : std::string("no checkpoint was written yet");
    if (!skip) msg += " (train.on_nonfinite: skip would drop such steps)";
    files_.record(msg);  // stderr gets it once, as the error that ends the command
    throw Error(msg);
  }

  // Declaration order is construction order: the folder before the model, the model before the trainer.
  RunResult res_;
  const ExperimentConfig cfg_;
  const RunOptions o_;
  Communicator& comm_;  // the processes of a data-parallel run (one otherwise)
  const std::unique_ptr<RunFolderLock> lock_;  // rank 0's, before anything in the folder is read or written
  const fs::path dir_;
  std::unique_ptr<arch::SegmentModel> model_;
  const MemoryShards shards_;  // this process's streams' rows of a memory
  RunData data_;
  AdamW opt_;
  Trainer trainer_;
  RunFiles files_;
  // runs/NAME/tb: the same numbers for TensorBoard (rank 0's)
  const std::unique_ptr<TensorBoardWriter> tb_ = writes() ? std::make_unique<TensorBoardWriter>((dir_ / "tb").string()) : nullptr;
  double best_loss_ = INFINITY, train_seconds_before_ = 0, eval_seconds_ = 0, window_loss_ = 0;
  int64_t window_steps_ = 0, tokens_ = 0;
  int64_t consecutive_skips_ = 0, last_checkpoint_step_ = -1;
};

// Every process holds the same config (check_same): a batch N does not split is refused by all
// of them alike, at data.batch_size's location.
void check_splits(const ExperimentConfig& cfg, const Communicator& comm) {
  const int64_t N = comm.size();
  if (N == 1 || cfg.data.batch_size % N == 0) return;
  const auto at = cfg.data.at.at.find("batch_size");
  throw AgreedError((at != cfg.data.at.at.end() ? at->second + ": " : std::string("data.batch_size: ")) + "a batch of " +
                    std::to_string(cfg.data.batch_size) + " streams does not split over " + std::to_string(N) +
                    " processes (mpirun -n " + std::to_string(N) + "): make data.batch_size a multiple of the "
                    "process count");
}

}  // namespace

RunResult train_run(const ExperimentConfig& cfg, const RunOptions& o, Communicator& comm) {
  // the folder, model, data, optimizer and trainer; resumed from the checkpoint with --resume.
  // Data-parallel: every process sets up, then all stop if any failed (never one left waiting).
  std::unique_ptr<Run> run;
  check_same(comm, to_yaml(cfg), "resolved config");
  check_splits(cfg, comm);
  agree(comm, [&] { run = std::make_unique<Run>(cfg, o, comm); }, "setting up the run");
  run->loop();  // steps, logs, evaluations, samples and checkpoints until done or stopped
  return run->finish();
}

}  // namespace mnemo::experiments
