// Placeholder: the memxl architecture (issue for SPEC.md) is being written.
#pragma once
