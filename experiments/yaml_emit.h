// put(emitter, key, value): one key of a YAML map, numbers written as the shortest text that
// reads back exactly, string lists quoted (globs start with '*', an alias in YAML).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "experiments/yaml_reader.h"

namespace mnemo::experiments {

template <class T>
void put(YAML::Emitter& e, const char* key, const T& v) {
  e << YAML::Key << key << YAML::Value << v;
}
inline void put(YAML::Emitter& e, const char* key, double v) {
  e << YAML::Key << key << YAML::Value << yaml_detail::format_number(v);
}
inline void put(YAML::Emitter& e, const char* key, const std::vector<int64_t>& v) {
  e << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (int64_t x : v) e << x;
  e << YAML::EndSeq;
}
inline void put(YAML::Emitter& e, const char* key, const std::vector<double>& v) {
  e << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (double x : v) e << yaml_detail::format_number(x);
  e << YAML::EndSeq;
}
inline void put(YAML::Emitter& e, const char* key, const std::vector<std::string>& v) {
  e << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& x : v) e << YAML::DoubleQuoted << x;
  e << YAML::EndSeq;
}
template <class T>
void put(YAML::Emitter& e, const char* key, const std::optional<T>& v) {
  if (v) put(e, key, *v);
  else e << YAML::Key << key << YAML::Value << YAML::Null;
}

}  // namespace mnemo::experiments
