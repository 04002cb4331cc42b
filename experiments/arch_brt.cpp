// Placeholder: registers model.arch: brt once the architecture lands.
#include "experiments/models.h"
