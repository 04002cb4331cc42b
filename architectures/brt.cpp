#include "architectures/brt.h"
