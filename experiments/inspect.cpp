#include "experiments/inspect.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "experiments/gnuplot.h"
#include "autograd/attention_recorder.h"
#include "experiments/checkpoint.h"

namespace mnemo::experiments {
namespace {

namespace fs = std::filesystem;

// Passes segments through to evaluate() and keeps the last one for the observer.
class Remembering : public SegmentSource {
 public:
  explicit Remembering(SegmentSource& source) : source_(source) {}
  std::optional<EvalSegment> next() override { return last = source_.next(); }
  std::optional<EvalSegment> last;

 private:
  SegmentSource& source_;
};

// The first `limit` segments of a source (0: all).
class FirstSegments : public SegmentSource {
 public:
  FirstSegments(SegmentSource& source, int64_t limit) : source_(source), left_(limit > 0 ? limit : -1) {}
  std::optional<EvalSegment> next() override {
    if (left_ == 0) return std::nullopt;
    if (left_ > 0) --left_;
    return source_.next();
  }

 private:
  SegmentSource& source_;
  int64_t left_;
};

void check_calls(const std::vector<arch::AttentionLayout>& layout, const std::vector<Tensor>& probs, int64_t segment) {
  MNEMO_CHECK(!layout.empty(), "[inspect] the model declares no attention layout (SegmentModel::attention_layout)");
  MNEMO_CHECK(layout.size() == probs.size(), "[inspect] segment " << segment << ": the model declares " << layout.size()
                                                                  << " attention calls, " << probs.size()
                                                                  << " were recorded");
  for (size_t c = 0; c < layout.size(); ++c) {
    const arch::AttentionLayout& l = layout[c];
    int64_t keys = 0;
    for (const arch::KeyRegion& r : l.keys) keys += r.size;
    MNEMO_CHECK(keys == probs[c].dim(3) && l.row0 >= 0 && l.rows >= 0 && l.row0 + l.rows <= probs[c].dim(2),
                "[inspect] segment " << segment << ", call " << c << " (" << l.name << "): declared " << keys
                                     << " keys and token rows [" << l.row0 << ", " << l.row0 + l.rows
                                     << "), recorded probabilities " << probs[c].shape());
  }
}

// The query rows a call's masses average over: its token rows, or every row (state queries).
std::pair<int64_t, int64_t> query_rows(const arch::AttentionLayout& l, const Tensor& p) {
  return l.rows > 0 ? std::pair{l.row0, l.rows} : std::pair{int64_t(0), p.dim(2)};
}

std::string file_part(const std::string& name) {
  std::string s;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') s += c;
    else if (c == ' ' && !s.empty() && s.back() != '_') s += '_';
  }
  while (!s.empty() && s.back() == '_') s.pop_back();
  return s;
}

std::string quoted(std::string s) {  // inside gnuplot's single quotes
  for (char& c : s)
    if (c == '\'') c = '`';
  return "'" + s + "'";
}

// The segment's own columns ("segment", "segment.write") and the learned null slot are not memory.
bool is_memory(const std::string& region) { return !region.starts_with("segment") && region != "null"; }

struct Cell {
  double x, y, v;
};

// A heatmap of cells (x, y integers) as coloured unit boxes; y rows labelled.
void heatmap(const std::string& png, const std::string& title, const std::string& xlabel, const std::string& ylabel,
             const std::vector<Cell>& cells, const std::vector<std::string>& ylabels, bool unit_range) {
  std::ostringstream s;
  s << "set terminal pngcairo size 1100," << std::max<size_t>(420, 160 + 18 * ylabels.size()) << " noenhanced\n";
  s << "set output " << quoted(png) << "\nset title " << quoted(title) << "\n";
  s << "set xlabel " << quoted(xlabel) << "\nset ylabel " << quoted(ylabel) << "\n";
  s << "set palette rgbformulae 30,31,32\nset cbrange " << (unit_range ? "[0:1]" : "[0:*]") << "\n";
  double x0 = 1e300, x1 = -1e300;
  for (const Cell& c : cells) x0 = std::min(x0, c.x), x1 = std::max(x1, c.x);
  if (x1 - x0 <= 40) s << "set xtics 1\n";
  s << "set xrange [" << x0 - 0.5 << ":" << x1 + 0.5 << "]\nset yrange [" << double(ylabels.size()) - 0.5
    << ":-0.5]\n";
  if (!ylabels.empty()) {
    s << "set ytics (";
    const size_t step = std::max<size_t>(1, ylabels.size() / 48);
    for (size_t i = 0; i < ylabels.size(); i += step) s << (i ? ", " : "") << quoted(ylabels[i]) << " " << i;
    s << ")\n";
  }
  s << "$d << EOD\n";
  for (const Cell& c : cells) s << c.x << " " << c.y << " " << c.v << "\n";
  s << "EOD\nplot $d using 1:2:(0.5):(0.5):3 with boxxyerror fill solid 1.0 noborder lc palette notitle\n";
  FILE* gp = ::popen("gnuplot 2>&1", "w");
  MNEMO_CHECK(gp, "[inspect] cannot start gnuplot");
  const std::string script = s.str();
  std::fwrite(script.data(), 1, script.size(), gp);
  const int rc = ::pclose(gp);
  MNEMO_CHECK(rc == 0 && fs::exists(png), "[inspect] gnuplot failed (exit " << rc << ") writing " << png);
}

}  // namespace

EvalResult record_attention(const arch::SegmentModel& model, SegmentSource& source, const AttentionObserver& observe) {
  Remembering segments(source);
  AttentionRecorder recorder;
  RecordAttention on(recorder);
  arch::Memory entering;
  return evaluate(model, segments, [&](const SegmentReport& r) {
    const EvalSegment& seg = *segments.last;
    if (r.index == 0 || seg.reset_memory) entering = model.initial_memory(seg.tokens.dim(0));
    const std::vector<Tensor> probs = recorder.take();
    const std::vector<arch::AttentionLayout> layout = model.attention_layout(entering, seg.tokens.dim(1));
    check_calls(layout, probs, r.index);
    if (observe) observe({.index = r.index, .segment = seg, .layout = layout, .probs = probs, .memory_in = entering,
                          .memory_out = r.memory});
    entering = r.memory;
  });
}

std::vector<RegionMass> region_masses(const arch::AttentionLayout& l, const Tensor& p) {
  const int64_t B = p.dim(0), H = p.dim(1), Tq = p.dim(2), Tk = p.dim(3);
  const auto [row0, rows] = query_rows(l, p);
  const double* P = p.data<double>();
  std::vector<RegionMass> out;
  int64_t j0 = 0;
  for (const arch::KeyRegion& r : l.keys) {
    for (int64_t h = 0; h < H; ++h) {
      double sum = 0;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = row0; i < row0 + rows; ++i)
          for (int64_t j = j0; j < j0 + r.size; ++j) sum += P[((b * H + h) * Tq + i) * Tk + j];
      out.push_back({.region = r.name, .head = h, .mass = rows > 0 && B > 0 ? sum / double(B * rows) : 0.0});
    }
    j0 += r.size;
  }
  return out;
}

std::vector<double> key_masses(const arch::AttentionLayout& l, const Tensor& p) {
  const int64_t B = p.dim(0), H = p.dim(1), Tq = p.dim(2), Tk = p.dim(3);
  const auto [row0, rows] = query_rows(l, p);
  const double* P = p.data<double>();
  std::vector<double> out(size_t(Tk), 0.0);
  const double n = double(B * H * rows);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = row0; i < row0 + rows; ++i)
        for (int64_t j = 0; j < Tk; ++j) out[size_t(j)] += P[((b * H + h) * Tq + i) * Tk + j] / n;
  return out;
}

std::vector<double> slot_norms(const Tensor& t) {
  const int64_t rank = t.rank();
  const int64_t D = rank >= 1 ? t.dim(-1) : 1, S = rank >= 2 ? t.dim(-2) : 1;
  const int64_t outer = S * D > 0 ? t.numel() / (S * D) : 0;
  std::vector<double> v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i)
    v[size_t(i)] = t.dtype() == DType::f64 ? t.data<double>()[i] : double(t.data<float>()[i]);
  std::vector<double> out(size_t(S), 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t s = 0; s < S; ++s) {
      double sq = 0;
      for (int64_t c = 0; c < D; ++c) sq += v[size_t((o * S + s) * D + c)] * v[size_t((o * S + s) * D + c)];
      out[size_t(s)] += std::sqrt(sq) / double(outer);
    }
  return out;
}

InspectOutput inspect(const arch::SegmentModel& model, SegmentSource& source, const InspectOptions& o) {
  fs::create_directories(o.dir);
  std::ostringstream regions_csv, keys_csv, norms_csv;
  regions_csv << "segment,call,name,head,region,mass\n";
  keys_csv << "segment,call,name,key,region,mass\n";
  norms_csv << "segment,memory,slot,norm\n";
  // For the heatmaps: per (call name, head) row and region, per call name, per memory.
  std::vector<std::string> row_names;                          // "name h<head>", first-seen order
  std::map<std::string, size_t> row_of;
  std::map<std::string, std::map<std::pair<int64_t, size_t>, std::pair<double, int>>> mass;  // region -> (seg, row)
  std::vector<std::string> call_names;
  std::map<std::string, std::vector<Cell>> key_cells, norm_cells;
  std::map<std::string, std::vector<std::string>> key_labels;  // per call name, its key columns' regions
  std::set<std::string> memory_regions, present;  // memory kinds read; every region that held a key
  std::set<std::pair<std::string, std::string>> held;  // (call name, region) that held a key

  InspectOutput out;
  FirstSegments first(source, o.max_segments);
  record_attention(model, first, [&](const SegmentAttention& s) {
      std::set<std::string> named;  // the first call of each name in this segment draws its keys
      for (size_t c = 0; c < s.layout.size(); ++c) {
        const arch::AttentionLayout& l = s.layout[c];
        const std::string name = l.name.empty() ? "call " + std::to_string(c) : l.name;
        for (const RegionMass& m : region_masses(l, s.probs[c])) {
          regions_csv << s.index << "," << c << "," << name << "," << m.head << "," << m.region << "," << m.mass
                      << "\n";
          const std::string row = name + " h" + std::to_string(m.head);
          if (!row_of.count(row)) row_of[row] = row_names.size(), row_names.push_back(row);
          auto& cell = mass[m.region][{s.index, row_of[row]}];
          cell.first += m.mass, cell.second += 1;  // averaged over calls of one name (BRT's blocks)
        }
        for (const arch::KeyRegion& r : l.keys)
          if (r.size > 0) {
            present.insert(r.name), held.insert({name, r.name});
            if (is_memory(r.name)) memory_regions.insert(r.name);
          }
        const std::vector<double> k = key_masses(l, s.probs[c]);
        std::vector<std::string> label;
        for (const arch::KeyRegion& r : l.keys) label.insert(label.end(), size_t(r.size), r.name);
        for (size_t j = 0; j < k.size(); ++j)
          keys_csv << s.index << "," << c << "," << name << "," << j << "," << label[j] << "," << k[j] << "\n";
        if (named.insert(name).second) {
          if (!key_labels.count(name)) call_names.push_back(name);
          if (label.size() >= key_labels[name].size()) key_labels[name] = label;  // the widest layout
          for (size_t j = 0; j < k.size(); ++j)  // right-aligned: x = j - Tk, shifted below
            key_cells[name].push_back({double(j) - double(k.size()), double(s.index), k[j]});
        }
      }
      for (const auto& [name, t] : s.memory_out) {
        const std::vector<double> n = slot_norms(t);
        for (size_t j = 0; j < n.size(); ++j) {
          norms_csv << s.index << "," << name << "," << j << "," << n[j] << "\n";
          norm_cells[name].push_back({double(s.index), double(j), n[j]});
        }
      }
      out.segments = s.index + 1;
  });
  MNEMO_CHECK(out.segments > 0, "[inspect] the input has no segments");
  const fs::path dir(o.dir);
  for (const auto& [file, text] : {std::pair{"region_mass.csv", &regions_csv}, std::pair{"key_mass.csv", &keys_csv},
                                   std::pair{"memory_norms.csv", &norms_csv}}) {
    write_file_atomic((dir / file).string(), text->str());
    out.files.push_back((dir / file).string());
  }
  out.memory_regions.assign(memory_regions.begin(), memory_regions.end());
  for (size_t row = 0; row < row_names.size(); ++row) {  // mean over segments, per call and head
    const std::string& rn = row_names[row];
    const std::string call = rn.substr(0, rn.rfind(" h"));
    for (const std::string& region : out.memory_regions) {
      if (!held.count({call, region})) continue;  // e.g. a layer without memory
      double sum = 0;
      int n = 0;
      for (const auto& [at, cell] : mass[region])
        if (at.second == row) sum += cell.first / cell.second, ++n;
      if (n == 0) continue;
      auto it = std::find_if(out.summary.begin(), out.summary.end(),
                             [&](const InspectSummary& s) { return s.call == call && s.region == region; });
      if (it == out.summary.end()) it = out.summary.insert(out.summary.end(), {.call = call, .region = region});
      it->mean += sum / n, it->max_head = std::max(it->max_head, sum / n);
      it->heads += 1;
    }
  }
  for (InspectSummary& s : out.summary) s.mean /= s.heads;
  if (!o.png) {
    out.no_png = "PNGs not asked for";
    return out;
  }
  if (out.no_png = gnuplot_missing(); !out.no_png.empty()) return out;
  for (const auto& [region, cells] : mass) {
    if (!present.count(region)) continue;  // declared, never held a key
    std::vector<Cell> c;
    for (const auto& [at, sum] : cells) c.push_back({double(at.first), double(at.second), sum.first / sum.second});
    const std::string png = (dir / ("mass_" + file_part(region) + ".png")).string();
    heatmap(png, "attention mass on " + region + " (mean over token queries and streams)", "segment",
            "attention call, head", c, row_names, true);
    out.files.push_back(png);
  }
  for (const std::string& name : call_names) {
    const std::vector<std::string>& label = key_labels[name];
    const std::string title = name + ": mean attention per key column (over heads, token queries, streams)";
    std::string xlabel = "key column, right-aligned (widest layout:";
    for (size_t j = 0; j < label.size(); ++j)
      if (j == 0 || label[j] != label[j - 1]) xlabel += " " + label[j] + " from " + std::to_string(j);
    xlabel += ")";
    const std::string png = (dir / ("keys_" + file_part(name) + ".png")).string();
    std::vector<Cell> c;
    for (const Cell& k : key_cells[name]) c.push_back({k.x + double(label.size()), k.y, k.v});
    std::vector<std::string> seg_labels;
    for (int64_t s = 0; s < out.segments; ++s) seg_labels.push_back("segment " + std::to_string(s));
    heatmap(png, title, xlabel, "segment", c, seg_labels, false);
    out.files.push_back(png);
  }
  for (const auto& [name, cells] : norm_cells) {
    int64_t slots = 0;
    for (const Cell& c : cells) slots = std::max<int64_t>(slots, int64_t(c.y) + 1);
    std::vector<std::string> labels;
    for (int64_t j = 0; j < slots; ++j) labels.push_back("slot " + std::to_string(j));
    const std::string png = (dir / ("norms_" + file_part(name) + ".png")).string();
    heatmap(png, "memory '" + name + "': L2 norm per slot after each segment", "segment", "slot", cells, labels, false);
    out.files.push_back(png);
  }
  return out;
}

}  // namespace mnemo::experiments
