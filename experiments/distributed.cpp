#include "experiments/distributed.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <zlib.h>

#include "experiments/bptt.h"  // masked_targets, kIgnoreIndex

namespace mnemo::experiments {
namespace {

class DoneSum : public PendingSum {
 public:
  bool done() override { return true; }
  void wait() override {}
};

class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum(std::span<double>, const char*) override {}
  std::unique_ptr<PendingSum> start_sum(std::span<float>, const char*) override { return std::make_unique<DoneSum>(); }
  int64_t max(int64_t value, const char*) override { return value; }
  std::vector<std::string> all_gather(const std::string& bytes, const char*) override { return {bytes}; }
};

// Rows [begin, begin + n) along `axis` of t (any dtype), as a new tensor.
Tensor take_rows(const Tensor& t, int axis, int64_t begin, int64_t n) {
  std::vector<int64_t> dims(t.shape().dims().begin(), t.shape().dims().end());
  int64_t outer = 1, inner = int64_t(dtype_size(t.dtype()));
  for (int i = 0; i < axis; ++i) outer *= dims[size_t(i)];
  for (int i = axis + 1; i < t.rank(); ++i) inner *= dims[size_t(i)];
  const int64_t all = dims[size_t(axis)];
  dims[size_t(axis)] = n;
  Tensor out = Tensor::empty(Shape(std::span<const int64_t>(dims)), t.dtype());
  const auto* src = static_cast<const char*>(t.raw());
  auto* dst = static_cast<char*>(out.raw());
  for (int64_t o = 0; o < outer; ++o)
    if (n * inner > 0) std::memcpy(dst + o * n * inner, src + (o * all + begin) * inner, size_t(n * inner));
  return out;
}

// The parts joined along `axis` (every other dimension equal).
Tensor join_rows(const std::vector<Tensor>& parts, int axis) {
  std::vector<int64_t> dims(parts[0].shape().dims().begin(), parts[0].shape().dims().end());
  int64_t outer = 1, inner = int64_t(dtype_size(parts[0].dtype())), all = 0;
  for (int i = 0; i < axis; ++i) outer *= dims[size_t(i)];
  for (int i = axis + 1; i < parts[0].rank(); ++i) inner *= dims[size_t(i)];
  for (const Tensor& p : parts) all += p.dim(axis);
  dims[size_t(axis)] = all;
  Tensor out = Tensor::empty(Shape(std::span<const int64_t>(dims)), parts[0].dtype());
  auto* dst = static_cast<char*>(out.raw());
  for (int64_t o = 0; o < outer; ++o) {
    int64_t at = 0;
    for (const Tensor& p : parts) {
      const int64_t n = p.dim(axis);
      if (n * inner > 0)
        std::memcpy(dst + (o * all + at) * inner, static_cast<const char*>(p.raw()) + o * n * inner, size_t(n * inner));
      at += n;
    }
  }
  return out;
}

}  // namespace

Communicator& single_process() {
  static SingleProcess one;
  return one;
}

int launcher_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(var); v && *v) return std::max(1, std::atoi(v));
  return 1;
}

void agree(Communicator& comm, const std::function<void()>& setup, const std::string& what) {
  if (comm.size() == 1) return setup();
  std::string error;
  try {
    setup();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "an error without a message";
  }
  const std::vector<std::string> all = comm.all_gather(error, what.c_str());
  std::map<std::string, std::vector<size_t>> ranks_of;  // a message, once, with every rank that gave it
  for (size_t r = 0; r < all.size(); ++r)
    if (!all[r].empty()) ranks_of[all[r]].push_back(r);
  if (ranks_of.empty()) return;
  std::string msg = "[distributed] " + what + " failed on ";
  bool first = true;
  for (const auto& [text, ranks] : ranks_of) {
    msg += first ? "" : "; ";
    msg += ranks.size() > 1 ? "ranks " : "rank ";
    for (size_t i = 0; i < ranks.size(); ++i) msg += (i ? ", " : "") + std::to_string(ranks[i]);
    msg += " of " + std::to_string(all.size()) + ": " + text;
    first = false;
  }
  throw AgreedError(msg);
}

void check_same(Communicator& comm, const std::string& text, const std::string& what) {
  if (comm.size() == 1) return;
  const std::vector<std::string> all = comm.all_gather(text, what.c_str());
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    std::istringstream a(all[0]), b(all[r]);
    std::string la, lb;
    for (int line = 1;; ++line) {
      const bool ga = bool(std::getline(a, la)), gb = bool(std::getline(b, lb));
      if (ga && gb && la == lb) continue;
      throw AgreedError("[distributed] the " + what + " of rank " + std::to_string(r) + " differs from rank 0's at line " +
                        std::to_string(line) + ": '" + (gb ? lb : "<end>") + "' against '" + (ga ? la : "<end>") +
                        "' (every process must run the same experiment)");
    }
  }
}

std::string state_digest(const TrainingState& st) {
  std::ostringstream os;
  const auto crc = [](const Tensor& t) {
    return ::crc32(0L, static_cast<const Bytef*>(t.raw()), uInt(t.nbytes()));
  };
  for (const auto& [name, t] : st.weights) os << name << " " << crc(t) << "\n";
  for (const auto& [name, t] : st.optimizer) os << name << " " << crc(t) << "\n";
  for (const auto& [name, n] : st.optimizer_counters) os << name << " " << n << "\n";
  os << "data cursor";
  for (int64_t c : st.data_cursor) os << " " << c;
  os << "\n";
  return os.str();
}

std::vector<int64_t> counted_tokens(const data::Batch& batch) {
  std::vector<int64_t> counts;
  for (int64_t s = 0; s < batch.segments(); ++s) {
    const Tensor t = masked_targets(batch, s);
    int64_t n = 0;
    for (int64_t i = 0; i < t.numel(); ++i) n += t.data<int32_t>()[i] != kIgnoreIndex;
    counts.push_back(n);
  }
  return counts;
}

data::Batch local_rows(const data::Batch& batch, const Communicator& comm) {
  if (comm.size() == 1) return batch;
  const int64_t B = batch.batch_size(), N = comm.size();
  MNEMO_CHECK(B % N == 0, "[distributed] a batch of " << B << " streams does not split over " << N << " processes");
  const int64_t n = B / N, begin = comm.rank() * n;
  data::Batch out;
  out.reset_memory = batch.reset_memory;
  for (const Tensor& t : batch.inputs) out.inputs.push_back(take_rows(t, 0, begin, n));
  for (const Tensor& t : batch.targets) out.targets.push_back(take_rows(t, 0, begin, n));
  for (const Tensor& t : batch.loss_mask) out.loss_mask.push_back(t.defined() ? take_rows(t, 0, begin, n) : t);
  return out;
}

MemoryShards::MemoryShards(const arch::SegmentModel& model, const Communicator& comm)
    : rank_(comm.rank()), size_(comm.size()) {
  if (size_ == 1) return;
  const arch::Memory one = model.initial_memory(1), two = model.initial_memory(2);
  for (const auto& [name, t] : one) {
    const Tensor& u = two.at(name);
    int axis = -1;
    for (int i = 0; i < t.rank() && t.rank() == u.rank(); ++i)
      if (t.dim(i) == 1 && u.dim(i) == 2) axis = i;
    MNEMO_CHECK(axis >= 0, "[distributed] memory '" << name << "' (" << t.shape() << " for one stream, " << u.shape()
                                                    << " for two) has no batch axis, so it cannot be split over "
                                                    << size_ << " processes");
    axis_[name] = axis;
  }
}

arch::Memory MemoryShards::local(const arch::Memory& whole) const {
  if (size_ == 1 || whole.empty()) return whole;
  arch::Memory out;
  for (const auto& [name, t] : whole) {
    const auto it = axis_.find(name);
    MNEMO_CHECK(it != axis_.end(), "[distributed] the checkpoint has memory '" << name << "' the model does not");
    const int64_t B = t.dim(it->second);
    MNEMO_CHECK(B % size_ == 0, "[distributed] memory '" << name << "' holds " << B << " streams, not a multiple of "
                                                         << size_ << " processes");
    out.emplace(name, take_rows(t, it->second, rank_ * (B / size_), B / size_));
  }
  return out;
}

arch::Memory MemoryShards::whole(Communicator& comm, const arch::Memory& local) const {
  if (size_ == 1) return local;
  NamedTensors mine(local.begin(), local.end());
  const std::vector<std::string> all = comm.all_gather(encode_safetensors(mine, {}), "gathering the memories");
  std::vector<Safetensors> parts;
  for (size_t r = 0; r < all.size(); ++r) parts.push_back(decode_safetensors(all[r], "rank " + std::to_string(r) + "'s memories"));
  arch::Memory out;
  for (const auto& [name, t] : local) {
    std::vector<Tensor> rows;
    for (const Safetensors& p : parts) {
      const auto it = p.tensors.find(name);
      MNEMO_CHECK(it != p.tensors.end(), "[distributed] a process has no memory '" << name << "'");
      rows.push_back(it->second);
    }
    out.emplace(name, join_rows(rows, axis_.at(name)));
  }
  return out;
}

EvalResult sum_eval(Communicator& comm, const EvalResult& local) {
  if (comm.size() == 1) return local;
  // nats, correct answers, tokens; counts below 2^53 stay exact in double
  std::vector<double> v{local.loss * double(local.tokens), std::round(local.accuracy * double(local.tokens)),
                        double(local.tokens)};
  comm.sum(v, "summing the evaluation");
  EvalResult out;
  out.tokens = int64_t(v[2]);
  if (out.tokens > 0) {
    out.loss = v[0] / v[2];
    out.bits_per_byte = out.loss / std::log(2.0);
    out.accuracy = v[1] / v[2];
  }
  return out;
}

GradientSync::GradientSync(Communicator& comm, std::vector<Param*> params, int64_t bucket_bytes) : comm_(comm) {
  std::reverse(params.begin(), params.end());  // backward finishes the last layers first
  for (Param* p : params) {
    if (buckets_.empty() || int64_t(buckets_.back().buffer.size()) * 4 >= bucket_bytes) buckets_.emplace_back();
    Bucket& b = buckets_.back();
    b.params.push_back(p);
    b.buffer.resize(b.buffer.size() + size_t(p->value.numel()));
    bucket_of_[p] = buckets_.size() - 1;
    const size_t index = index_of_.size();
    index_of_[p] = index;
  }
  for (Bucket& b : buckets_) {
    b.buffer.resize(b.buffer.size() + b.params.size());  // the flags
    b.waiting = int64_t(b.params.size());
  }
  ready_.assign(params.size(), false);
}

void GradientSync::ready(const Param& p) {
  const auto it = index_of_.find(&p);
  if (it == index_of_.end() || ready_[it->second]) return;
  ready_[it->second] = true;
  --buckets_[bucket_of_.at(&p)].waiting;
  launch_ready();
  for (size_t b = 0; b < next_; ++b)  // MPI moves data only inside its calls
    if (buckets_[b].pending) buckets_[b].pending->done();
}

// Buckets start strictly in order, so every process issues the same sums in the same order
// whatever the timing.
void GradientSync::launch_ready() {
  while (next_ < buckets_.size() && buckets_[next_].waiting == 0) {
    Bucket& b = buckets_[next_++];
    float* at = b.buffer.data();
    float* flag = b.buffer.data() + (b.buffer.size() - b.params.size());
    for (size_t i = 0; i < b.params.size(); ++i) {
      const Param& p = *b.params[i];
      const size_t n = size_t(p.value.numel());
      if (p.grad.defined()) {
        MNEMO_CHECK(p.grad.dtype() == DType::f32, "[distributed] gradients are summed in f32, got " << p.grad.dtype());
        std::memcpy(at, p.grad.data<float>(), n * sizeof(float));
      } else {
        std::fill(at, at + n, 0.0f);
      }
      flag[i] = p.grad.defined() ? 1.0f : 0.0f;
      at += n;
    }
    b.pending = comm_.start_sum(b.buffer, "summing gradients");
  }
}

void GradientSync::finish() {
  for (Bucket& b : buckets_) b.waiting = 0;
  launch_ready();
  const auto t0 = std::chrono::steady_clock::now();
  for (Bucket& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
    const float* at = b.buffer.data();
    const float* flag = b.buffer.data() + (b.buffer.size() - b.params.size());
    for (size_t i = 0; i < b.params.size(); ++i) {
      Param& p = *b.params[i];
      const size_t n = size_t(p.value.numel());
      if (flag[i] > 0) {
        if (!p.grad.defined()) p.grad = p.value.zeros_like();
        std::memcpy(p.grad.data<float>(), at, n * sizeof(float));
      }
      at += n;
    }
  }
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  next_ = 0;
  std::fill(ready_.begin(), ready_.end(), false);
  for (Bucket& b : buckets_) b.waiting = int64_t(b.params.size());
}

}  // namespace mnemo::experiments
