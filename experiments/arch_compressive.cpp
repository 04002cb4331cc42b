// Placeholder: registers model.arch: compressive once the architecture lands.
#include "experiments/models.h"
