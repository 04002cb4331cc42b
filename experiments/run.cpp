#include "experiments/run.h"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "experiments/checkpoint.h"
#include "experiments/generate.h"
#include "experiments/json.h"
#include "experiments/models.h"
#include "experiments/run_data.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mnemo::experiments {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Ctrl-C asks the loop to checkpoint and stop at the next step boundary.
std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted = true; }

std::string format_duration(double s) {
  char buf[32];
  const int64_t t = int64_t(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", long(t / 3600), long(t / 60 % 60));
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", long(t / 60), long(t % 60));
  return buf;
}

std::string format_count(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

// The run folder's text outputs. Lines are flushed as written: a killed run keeps them.
class RunFiles {
 public:
  RunFiles(const fs::path& dir, bool progress) : dir_(dir), tty_(progress && ::isatty(2)), progress_(progress) {
    log_.open(dir / "log.txt", std::ios::app);
    MNEMO_CHECK(log_, "[run] cannot write " << (dir / "log.txt").string());
  }
  ~RunFiles() { end_progress(); }

  void append(const char* file, const std::string& line) {
    std::ofstream f(dir_ / file, std::ios::app);
    MNEMO_CHECK(f, "[run] cannot write " << (dir_ / file).string());
    f << line << "\n";
  }
  void log(const std::string& line) {  // a permanent line: log file and stderr
    log_ << line << "\n" << std::flush;
    end_progress();
    if (progress_) std::cerr << line << "\n";
  }
  void progress(const std::string& line) {  // rewritten in place on a terminal
    log_ << line << "\n" << std::flush;
    if (!progress_) return;
    if (tty_) {
      std::cerr << "\r\033[K" << line << std::flush;
      open_line_ = true;
    } else {
      std::cerr << line << "\n";
    }
  }

 private:
  void end_progress() {
    if (open_line_) std::cerr << "\n";
    open_line_ = false;
  }
  fs::path dir_;
  std::ofstream log_;
  bool tty_, progress_, open_line_ = false;
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

std::string eval_row(int64_t step, double train_loss, const EvalResult& e, bool synthetic, double tok_s,
                     double elapsed) {
  json::ObjectWriter w;
  w.add("step", step).add("train_loss", train_loss).add("val_loss", e.loss);
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

ExperimentConfig load_run_config(const std::string& dir) {
  const fs::path file = fs::path(dir) / "config.yaml";
  MNEMO_CHECK(fs::exists(file), "[run] '" << dir << "' is not a run folder: it has no config.yaml");
  return load_config(file.string());
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

RunResult train_run(const ExperimentConfig& cfg_in, const RunOptions& o) {
  ExperimentConfig cfg = cfg_in;
  cfg.sweep.clear();  // a run is one point of a sweep
  RunResult res;
  res.dir = o.dir.empty() ? default_run_dir(cfg) : o.dir;
  const fs::path dir(res.dir);
  const std::string ckpt = checkpoint_path(res.dir);
  if (o.resume) {
    MNEMO_CHECK(fs::exists(ckpt), "[run] cannot resume '" << res.dir << "': no checkpoint at " << ckpt);
  } else {
    MNEMO_CHECK(!fs::exists(ckpt), "[run] '" << res.dir << "' already holds a run (" << ckpt
                                             << "); resume it with --resume or choose another folder with --out");
  }
  fs::create_directories(dir / "checkpoints");
  write_file_atomic((dir / "config.yaml").string(), to_yaml(cfg));
  set_threads(cfg.train.threads);

  std::unique_ptr<arch::SegmentModel> model = build_model(cfg);
  nn::train(*model);
  RunData data = make_run_data(cfg);
  AdamW opt(nn::named_params(*model), adamw_config(cfg.train.optimizer));
  TrainerOptions topts;
  topts.bptt.mode = cfg.train.bptt;
  topts.bptt.window = cfg.train.window;
  topts.bptt.replay_recompute = cfg.train.replay_recompute;
  topts.bptt.replay_snapshots = cfg.train.replay_snapshots;
  topts.bptt.seed = cfg.seed;
  topts.bptt.memory_dropout = cfg.train.memory_dropout;
  topts.grad_accum = cfg.train.grad_accum;
  topts.clip = cfg.train.clip;
  topts.schedule = schedule_of(cfg.train, cfg.data.segments);
  topts.step_every_segment = cfg.train.optimizer.step_every == StepEvery::segment;
  topts.stateful = cfg.data.stateful && !cfg.data.random_crops;
  topts.seed = cfg.seed;
  Trainer trainer(*model, *data.train, opt, topts);
  RunFiles files(dir, o.progress);

  double best_loss = INFINITY, train_seconds_before = 0;
  if (o.resume) {
    const TrainingState st = load_checkpoint(ckpt);
    restore(*model, opt, st);
    trainer.set_steps(st.step);
    trainer.set_memory(st.memory);
    data.train->set_cursor(st.data_cursor);
    if (auto it = st.extra.find("best_val_loss"); it != st.extra.end()) best_loss = std::stod(it->second);
    if (auto it = st.extra.find("best_step"); it != st.extra.end()) res.best_step = std::stoll(it->second);
    if (auto it = st.extra.find("train_seconds"); it != st.extra.end()) train_seconds_before = std::stod(it->second);
    for (const char* f : {"metrics.jsonl", "train.jsonl"}) truncate_jsonl(dir / f, st.step);
    files.log("resumed " + res.dir + " at step " + std::to_string(st.step));
  } else {
    for (const char* f : {"metrics.jsonl", "train.jsonl", "samples.txt"}) fs::remove(dir / f);
    int64_t n_params = 0;
    for (Param* p : nn::params(*model)) n_params += p->value.numel();
    files.log("run " + res.dir + ": " + cfg.model.arch + ", " + format_count(double(n_params)) + " parameters, " +
              std::to_string(cfg.train.steps) + " steps of " + std::to_string(data.tokens_per_batch * cfg.train.grad_accum) +
              " tokens");
  }

  auto save = [&] {
    const auto t0 = Clock::now();
    TrainingState st = capture(*model, opt, trainer.memory(), 0, data.train->cursor());
    st.step = trainer.steps();
    st.extra["best_val_loss"] = std::to_string(best_loss);
    st.extra["best_step"] = std::to_string(res.best_step);
    st.extra["train_seconds"] = std::to_string(train_seconds_before + res.train_seconds);
    save_checkpoint(ckpt, st);
    res.checkpoint_seconds += seconds_since(t0);
    ++res.checkpoints;
  };
  auto run_eval = [&](double train_loss) {
    nn::eval(*model);
    const EvalResult e = evaluate(*model, data.eval);
    nn::train(*model);
    res.final_eval = e;
    if (e.loss < best_loss) best_loss = e.loss, res.best_step = trainer.steps();
    if (res.best_step == trainer.steps()) res.best_eval = e;
    files.append("metrics.jsonl", eval_row(trainer.steps(), train_loss, e, data.synthetic, res.tokens_per_s,
                                           train_seconds_before + res.train_seconds));
    files.log("step " + std::to_string(trainer.steps()) + ": " + eval_text(e, data.synthetic));
  };
  auto sample = [&] {
    const data::Batch& b = data.eval.at(0);
    const int64_t n = std::min<int64_t>(b.seg_len(), 64);
    std::vector<int32_t> prompt(b.inputs[0].data<int32_t>(), b.inputs[0].data<int32_t>() + n);
    nn::eval(*model);
    const auto tokens = generate(*model, cfg.data.segment_len, prompt,
                                 {.length = cfg.eval.generate_len, .temperature = cfg.eval.temperature,
                                  .top_k = cfg.eval.top_k, .seed = cfg.seed + uint64_t(trainer.steps())});
    nn::train(*model);
    files.append("samples.txt", "--- step " + std::to_string(trainer.steps()) + "\n" + printable(prompt) + "|" +
                                    printable(tokens));
  };

  g_interrupted = false;
  auto previous = std::signal(SIGINT, on_sigint);
  const int64_t first = trainer.steps();
  const auto loop_start = Clock::now();
  double eval_seconds = 0, window_loss = 0;
  int64_t window_steps = 0, tokens = 0;
  try {
    while (trainer.steps() < cfg.train.steps) {
      const auto t0 = Clock::now();
      const StepMetrics m = trainer.step();
      res.train_seconds += seconds_since(t0);
      tokens += data.tokens_per_batch * cfg.train.grad_accum;
      res.tokens_per_s = double(tokens) / res.train_seconds;
      window_loss += m.loss, ++window_steps;
      const int64_t step = trainer.steps();
      if (step % cfg.train.log_every == 0 || step == cfg.train.steps) {
        files.append("train.jsonl", json::ObjectWriter()
                                        .add("step", step).add("loss", m.loss).add("aux_loss", m.aux_loss)
                                        .add("grad_norm", m.grad_norm).add("lr", m.lr)
                                        .add("tokens_per_s", res.tokens_per_s).str());
        const double per_step = (seconds_since(loop_start) - eval_seconds) / double(step - first);
        char line[256];
        std::snprintf(line, sizeof line, "step %ld/%ld | loss %.4f | %s tok/s | ETA %s | RSS %ld MiB%s", long(step),
                      long(cfg.train.steps), window_loss / double(window_steps), format_count(res.tokens_per_s).c_str(),
                      format_duration(per_step * double(cfg.train.steps - step)).c_str(),
                      long(resident_bytes() >> 20), m.skipped ? " | skipped: non-finite gradient" : "");
        files.progress(line);
        window_loss = 0, window_steps = 0;
      }
      const auto e0 = Clock::now();
      const bool last = step == cfg.train.steps;
      if ((cfg.train.eval_every > 0 && step % cfg.train.eval_every == 0) || last) run_eval(m.loss);
      if (cfg.eval.generate_every > 0 && (step % cfg.eval.generate_every == 0 || last)) sample();
      eval_seconds += seconds_since(e0);
      const bool stop = g_interrupted || (o.stop_after > 0 && step >= o.stop_after);
      if ((cfg.train.checkpoint_every > 0 && step % cfg.train.checkpoint_every == 0) || last || stop) save();
      if (stop) {
        files.log(std::string(g_interrupted ? "interrupted" : "stopped") + " at step " + std::to_string(step) +
                  "; continue with: mnemo train --resume " + res.dir);
        break;
      }
    }
  } catch (...) {
    std::signal(SIGINT, previous);
    throw;
  }
  std::signal(SIGINT, previous);
  res.loop_seconds = seconds_since(loop_start) - eval_seconds;
  res.steps = trainer.steps();
  res.finished = res.steps >= cfg.train.steps;
  if (res.finished) {
    json::ObjectWriter w;
    w.add("name", cfg.name).add("arch", cfg.model.arch).add("steps", res.steps);
    w.add("final_val_loss", res.final_eval.loss).add("final_val_accuracy", res.final_eval.accuracy);
    if (!data.synthetic) w.add("final_val_bpb", res.final_eval.bits_per_byte).add("best_val_bpb", best_loss / std::log(2.0));
    w.add("best_val_loss", best_loss).add("best_val_accuracy", res.best_eval.accuracy).add("best_step", res.best_step);
    w.add("tokens_per_s", res.tokens_per_s).add("train_seconds", train_seconds_before + res.train_seconds);
    w.add("peak_rss_mib", double(peak_resident_bytes()) / double(1 << 20));
    write_file_atomic((dir / "summary.json").string(), w.str() + "\n");
    files.log("done: " + eval_text(res.final_eval, data.synthetic) + "; " + format_count(res.tokens_per_s) +
              " tok/s; results in " + res.dir);
  }
  return res;
}

}  // namespace mnemo::experiments
