// YamlReader and YamlSources: located, strict reads of YAML maps (see yaml_reader.h).
// Locations come from yaml-cpp Marks (0-based) printed 1-based, as editors expect.
#include "experiments/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <set>

namespace mnemo::experiments {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, sub});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])  // "lr_min" vs "lrm_in"
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = 3;  // farther than 2 edits is a different word, not a typo
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

// ---- YamlSources ------------------------------------------------------------------------

void YamlSources::add_file_tree(const YAML::Node& root, const std::string& file) {
  entries_.push_back({root, file, true});
  if (root.IsSequence()) {
    for (const auto& item : root) add_file_tree(item, file);
  } else if (root.IsMap()) {
    std::set<std::string> seen;
    for (const auto& kv : root) {
      entries_.push_back({kv.first, file, true});
      // yaml-cpp keeps both copies of a repeated key; a config must say a thing once
      if (kv.first.IsScalar())
        MNEMO_CHECK(seen.insert(kv.first.Scalar()).second,
                    where(kv.first, file) << ": " << kv.first.Scalar() << ": duplicate key");
      add_file_tree(kv.second, file);
    }
  }
}

void YamlSources::add_flag(const YAML::Node& node, const std::string& flag) {
  entries_.push_back({node, flag, false});
  if (node.IsSequence() || node.IsMap())
    for (const auto& item : node) {
      if (node.IsMap()) add_flag(item.first, flag), add_flag(item.second, flag);
      else add_flag(item, flag);
    }
}

std::string YamlSources::where(const YAML::Node& node, const std::string& fallback) const {
  if (!node.IsDefined()) return fallback;
  // newest first: a --set replaces a file's value in place, so the old entry matches too
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (!it->node.is(node)) continue;
    if (!it->marked || node.Mark().is_null()) return it->origin;
    return it->origin + ":" + std::to_string(node.Mark().line + 1) + ":" + std::to_string(node.Mark().column + 1);
  }
  return fallback;
}

// ---- validators and scalars -------------------------------------------------------------

std::string OneOf::operator()(const std::string& v) const {
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return {};
  std::string out = "must be one of ";
  for (size_t i = 0; i < allowed.size(); ++i) out += (i ? ", " : "") + allowed[i];
  std::string near = closest(v, allowed);
  if (!near.empty()) out += " (did you mean " + near + "?)";
  return out;
}

namespace yaml_detail {

bool decode(const YAML::Node& n, int64_t& out) { return YAML::convert<int64_t>::decode(n, out); }
bool decode(const YAML::Node& n, uint64_t& out) { return YAML::convert<uint64_t>::decode(n, out); }
bool decode(const YAML::Node& n, double& out) { return YAML::convert<double>::decode(n, out); }
bool decode(const YAML::Node& n, bool& out) { return YAML::convert<bool>::decode(n, out); }

std::string describe(const YAML::Node& n) {
  if (n.IsNull()) return "null";
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;  // one line: the global formats win over the node's block style
  e.SetSeqFormat(YAML::Flow), e.SetMapFormat(YAML::Flow);
  e << n;
  return n.IsMap() ? std::string("a map ") + e.c_str() : std::string(e.c_str());
}

std::string format_number(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
  return std::string(buf, res.ptr);
}

}  // namespace yaml_detail

// ---- YamlReader ---------------------------------------------------------------------------

YamlReader::YamlReader(YAML::Node node, std::string file, std::string path,
                       std::shared_ptr<const YamlSources> sources)
    : node_(std::move(node)), file_(std::move(file)), path_(std::move(path)), sources_(std::move(sources)) {
  if (!sources_) {
    auto own = std::make_shared<YamlSources>();
    if (node_.IsDefined()) own->add_file_tree(node_, file_);
    sources_ = own;
  }
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap())
    fail_type(node_, path_.empty() ? "(top level)" : path_, "a map");
}

std::string YamlReader::key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

YAML::Node YamlReader::lookup(const std::string& key) const {
  if (!node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  const YAML::Node& map = node_;  // const: operator[] must not insert
  return map[key];
}

bool YamlReader::has(const std::string& key) const { return lookup(key).IsDefined(); }

YamlReader YamlReader::child(const std::string& key) {
  known_.push_back(key);
  YAML::Node n = lookup(key);  // an invalid node: assigning to it would throw
  return YamlReader(n ? n : YAML::Node(YAML::NodeType::Map), file_, key_path(key), sources_);
}

std::vector<std::string> YamlReader::keys() {
  std::vector<std::string> out;
  if (!node_.IsMap()) return out;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) fail_type(kv.first, path_, "a plain key");
    out.push_back(kv.first.Scalar());
  }
  known_.insert(known_.end(), out.begin(), out.end());
  return out;
}

void YamlReader::reject_unknown_keys() const {
  if (!node_.IsMap()) return;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) fail_type(kv.first, path_, "a plain key");
    const std::string& k = kv.first.Scalar();
    if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
    std::string near = closest(k, known_);
    fail_at(kv.first, key_path(k), near.empty() ? "unknown key" : "unknown key (did you mean " + near + "?)");
  }
}

void YamlReader::fail(const std::string& key, const std::string& message) const {
  MNEMO_FAIL(where(key) << ": " << message);
}

std::string YamlReader::where(const std::string& key) const {
  YAML::Node n = lookup(key);
  return sources_->where(n ? n : node_, file_) + ": " + key_path(key);
}

void YamlReader::fail_at(const YAML::Node& at, const std::string& path, const std::string& message) const {
  MNEMO_FAIL(sources_->where(at, file_) << ": " << path << ": " << message);
}

void YamlReader::fail_type(const YAML::Node& at, const std::string& path, const char* expected) const {
  fail_at(at, path, std::string("expected ") + expected + ", got " + yaml_detail::describe(at));
}

}  // namespace mnemo::experiments
