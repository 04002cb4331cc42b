// Placeholder: registers model.arch: rmt once the architecture lands.
#include "experiments/models.h"
