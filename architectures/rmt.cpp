#include "architectures/rmt.h"
