// Whether the CUDA backend can run in this process, asked by code that is built with or
// without it (the experiment config's `device:` key): built in every build, plain C++.
#pragma once

#include <string>

namespace mnemo::kernels::cuda {

// Why CUDA cannot run here, "" when it can: a build without the backend (-Dcuda=enabled),
// or no device (with the driver's reason).
std::string cuda_unavailable();

}  // namespace mnemo::kernels::cuda
