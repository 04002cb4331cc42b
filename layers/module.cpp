#include "layers/module.h"

#include <sstream>

#include "autograd/error.h"

namespace mnemo::nn {

void ParamVisitor::sub(const std::string& name, Module& m) {
  const std::string saved = prefix_;
  prefix_ += name + ".";
  on_module(prefix_, m);
  m.visit(*this);
  prefix_ = saved;
}

namespace {

template <class F>
struct Lambda : ParamVisitor {
  F f;
  explicit Lambda(F fn) : f(std::move(fn)) {}
  void on_param(const std::string& name, Param& p) override { f(name, p); }
};

template <class F>
void for_each_param(Module& m, F f) {
  Lambda<F> v(std::move(f));
  m.visit(v);
}

}  // namespace

NamedParams named_params(Module& m) {
  NamedParams out;
  for_each_param(m, [&](const std::string& name, Param& p) { out.emplace_back(name, &p); });
  return out;
}

std::vector<Param*> params(Module& m) {
  std::vector<Param*> out;
  for_each_param(m, [&](const std::string&, Param& p) { out.push_back(&p); });
  return out;
}

int64_t param_count(Module& m) {
  int64_t n = 0;
  for_each_param(m, [&](const std::string&, Param& p) { n += p.value.numel(); });
  return n;
}

void train(Module& m, bool on) {
  struct Setter : ParamVisitor {
    bool on;
    void on_param(const std::string&, Param&) override {}
    void on_module(const std::string&, Module& mod) override { mod.training = on; }
  } s;
  s.on = on;
  m.training = on;
  m.visit(s);
}

Param& find_param(Module& m, const std::string& name) {
  Param* found = nullptr;
  std::ostringstream near;
  for_each_param(m, [&](const std::string& n, Param& p) {
    if (n == name) found = &p;
    else if (n.substr(0, n.rfind('.') + 1) == name.substr(0, name.rfind('.') + 1)) near << " " << n;
  });
  MNEMO_CHECK(found, "[module] no parameter '" << name << "'" << (near.str().empty() ? "" : "; near:") << near.str());
  return *found;
}

}  // namespace mnemo::nn
