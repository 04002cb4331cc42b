#include "experiments/on_device.h"

namespace mnemo::experiments {

void move_to(nn::Module& model, Device device) {
  for (auto& [name, p] : nn::named_params(model)) {
    p->value = p->value.to(device);
    if (p->grad.defined()) p->grad = p->grad.to(device);
  }
}

Device device_of(const nn::Module& model) {
  // named_params hands out mutable pointers; only the first one's device is read here.
  const NamedParams params = nn::named_params(const_cast<nn::Module&>(model));
  return params.empty() ? Device::cpu : params.front().second->value.device();
}

arch::Memory memory_on(const arch::Memory& memory, Device device) {
  arch::Memory out;
  for (const auto& [name, t] : memory) out.emplace(name, t.to(device));
  return out;
}

data::Batch pinned_batch(const data::Batch& batch) {
  data::Batch out = batch;
  for (std::vector<Tensor>* tensors : {&out.inputs, &out.targets, &out.loss_mask})
    for (Tensor& t : *tensors) t = t.pinned();
  return out;
}

}  // namespace mnemo::experiments
