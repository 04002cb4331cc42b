// Moving a run to its device: a model is built and initialised on the CPU (so its weights
// are the same bits on every device) and moved once; carried memories follow it.
#pragma once

#include "architectures/segment_model.h"
#include "data/streams.h"
#include "layers/module.h"

namespace mnemo::experiments {

// Every parameter's value (and gradient, when defined) copied to `device`; nothing when
// already there. Optimizer state made afterwards is created on the same device.
void move_to(nn::Module& model, Device device);

// The device of the model's parameters (cpu for a model without any).
Device device_of(const nn::Module& model);

// Each memory on `device` (a copy where it is elsewhere).
arch::Memory memory_on(const arch::Memory& memory, Device device);

// The batch with every tensor (inputs, targets, loss masks) copied into pinned host memory,
// for a model on Device::cuda: its copies to the device are then asynchronous DMAs on a GPU
// (kernels/emulated/device.h). A CPU run uses its batches as they are.
data::Batch pinned_batch(const data::Batch& batch);

}  // namespace mnemo::experiments
