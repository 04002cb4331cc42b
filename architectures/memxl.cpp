#include "architectures/memxl.h"
