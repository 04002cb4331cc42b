// Placeholder: registers model.arch: memxl once the architecture lands.
#include "experiments/models.h"
