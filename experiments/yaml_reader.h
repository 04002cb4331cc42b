// YamlReader: strict, path-aware reads of one YAML map, for the experiment configs. Each
// field is read once, with its default and validator; every error carries file:line:column
// and the dotted key ("runs/a.yaml:4:12: train.steps: must be > 0, got -3"). Not a schema
// language: the structs of experiments/config.h are the schema.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "autograd/error.h"

namespace mnemo::experiments {

/// Optimal-string-alignment distance (insert, delete, substitute, swap neighbours).
size_t edit_distance(const std::string& a, const std::string& b);
/// The candidate closest to `word` within distance 2, or "" when none is.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

// Which file (or --set flag) each node came from. Configs merge nodes of several files
// (base:) and flags into one tree, and a yaml-cpp Mark has a line but no file name.
class YamlSources {
 public:
  void add_file_tree(const YAML::Node& root, const std::string& file);  // also rejects duplicate keys
  void add_flag(const YAML::Node& node, const std::string& flag);
  /// "file:line:col", "--set a.b=1", or `fallback` for nodes made while merging.
  std::string where(const YAML::Node& node, const std::string& fallback) const;

 private:
  struct Entry {
    YAML::Node node;
    std::string origin;
    bool marked;  // a file node: print its line and column
  };
  std::vector<Entry> entries_;
};

// ---- validators: return "" when the value is fine, else what it must be -------------
struct NoCheck {
  template <class T>
  std::string operator()(const T&) const { return {}; }
};
struct Positive {
  template <class T> requires std::is_arithmetic_v<T>
  std::string operator()(T v) const { return v > 0 ? "" : "must be > 0"; }
};
struct NonNegative {
  template <class T> requires std::is_arithmetic_v<T>
  std::string operator()(T v) const { return v >= 0 ? "" : "must be >= 0"; }
};
struct InRange {
  double lo, hi;  // inclusive
  template <class T> requires std::is_arithmetic_v<T>
  std::string operator()(T v) const;
};
struct OneOf {
  std::vector<std::string> allowed;
  std::string operator()(const std::string& v) const;
};
inline constexpr Positive positive{};
inline constexpr NonNegative non_negative{};
inline InRange in_range(double lo, double hi) { return {lo, hi}; }
inline OneOf one_of(std::vector<std::string> allowed) { return {std::move(allowed)}; }

class YamlReader {
 public:
  /// `node` is a map (or null: no keys); `path` is its dotted key ("" at the top).
  YamlReader(YAML::Node node, std::string file, std::string path = "",
             std::shared_ptr<const YamlSources> sources = nullptr);

  /// The value at `key` as T (int64_t and other integers, double, float, bool,
  /// std::string, std::vector of those), or `def` when absent. A validator that takes
  /// an element but not the vector checks each element.
  template <class T, class Check = NoCheck>
  T get(const std::string& key, const T& def, const Check& check = {});

  /// The map at `key` (an empty one when absent), with its path extended.
  YamlReader child(const std::string& key);
  /// Every key of this map, all marked known: for maps whose keys are names (memory_dropout).
  std::vector<std::string> keys();
  bool has(const std::string& key) const;
  /// Throws on the first key no get/child/keys asked for, suggesting a known one.
  void reject_unknown_keys() const;

  std::string key_path(const std::string& key) const;
  /// "file:line:col: dotted.key" (or "--set ...: dotted.key"): how fail() starts its message, for
  /// errors that can only be found later (once the model exists) but should still name the key.
  std::string where(const std::string& key) const;
  /// Located error at `key`'s value, or at this map when the key is absent.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }
  const std::shared_ptr<const YamlSources>& sources() const { return sources_; }

 private:
  YAML::Node lookup(const std::string& key) const;  // invalid when absent
  [[noreturn]] void fail_at(const YAML::Node& at, const std::string& path, const std::string& message) const;
  [[noreturn]] void fail_type(const YAML::Node& at, const std::string& path, const char* expected) const;
  template <class T>
  T read_as(const YAML::Node& n, const std::string& path) const;
  template <class T, class Check>
  void validate(const YAML::Node& n, const std::string& path, const T& v, const Check& check) const;

  YAML::Node node_;
  std::string file_, path_;
  std::shared_ptr<const YamlSources> sources_;
  std::vector<std::string> known_;
};

// ---- implementation of the templates --------------------------------------------------
namespace yaml_detail {
template <class T> struct is_vector : std::false_type {};
template <class T> struct is_vector<std::vector<T>> : std::true_type {};
bool decode(const YAML::Node& n, int64_t& out);
bool decode(const YAML::Node& n, uint64_t& out);
bool decode(const YAML::Node& n, double& out);
bool decode(const YAML::Node& n, bool& out);
std::string describe(const YAML::Node& n);  // the value as written, for "got ..."
std::string format_number(double v);
}  // namespace yaml_detail

template <class T> requires std::is_arithmetic_v<T>
std::string InRange::operator()(T v) const {
  if (v >= lo && v <= hi) return {};
  return "must be in [" + yaml_detail::format_number(lo) + ", " + yaml_detail::format_number(hi) + "]";
}

template <class T>
T YamlReader::read_as(const YAML::Node& n, const std::string& path) const {
  using namespace yaml_detail;
  if constexpr (is_vector<T>::value) {
    if (!n.IsSequence()) fail_type(n, path, "a list");
    T out;
    for (size_t i = 0; i < n.size(); ++i)
      out.push_back(read_as<typename T::value_type>(n[i], path + "[" + std::to_string(i) + "]"));
    return out;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!n.IsScalar()) fail_type(n, path, "a string");
    return n.Scalar();
  } else if constexpr (std::is_same_v<T, bool>) {
    bool v = false;
    if (!n.IsScalar() || !decode(n, v)) fail_type(n, path, "a boolean (true or false)");
    return v;
  } else if constexpr (std::is_integral_v<T>) {
    using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    Wide v = 0;
    const char* what = std::is_signed_v<T> ? "an integer" : "a non-negative integer";
    if (!n.IsScalar() || !decode(n, v)) fail_type(n, path, what);
    if (v < Wide(std::numeric_limits<T>::min()) || v > Wide(std::numeric_limits<T>::max()))
      fail_at(n, path, "out of range for its type, got " + describe(n));
    return T(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    double v = 0;
    if (!n.IsScalar() || !decode(n, v)) fail_type(n, path, "a number");
    if (!std::isfinite(v)) fail_at(n, path, "must be a finite number, got " + describe(n));
    return T(v);
  } else {
    static_assert(std::is_same_v<T, void>, "YamlReader::get: unsupported type");
  }
}

template <class T, class Check>
void YamlReader::validate(const YAML::Node& n, const std::string& path, const T& v, const Check& check) const {
  if constexpr (std::is_invocable_v<const Check&, const T&>) {
    std::string why = check(v);
    if (!why.empty()) fail_at(n, path, why + ", got " + yaml_detail::describe(n));
  } else if constexpr (yaml_detail::is_vector<T>::value) {
    for (size_t i = 0; i < v.size(); ++i)
      validate(n[i], path + "[" + std::to_string(i) + "]", v[i], check);
  } else {
    static_assert(std::is_same_v<T, void>, "YamlReader::get: validator does not take this type");
  }
}

template <class T, class Check>
T YamlReader::get(const std::string& key, const T& def, const Check& check) {
  known_.push_back(key);
  YAML::Node n = lookup(key);
  if (!n) return def;
  T v = read_as<T>(n, key_path(key));
  validate(n, key_path(key), v, check);
  return v;
}

}  // namespace mnemo::experiments
