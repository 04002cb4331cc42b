#include "architectures/compressive.h"
