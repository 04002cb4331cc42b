// Placeholder: the rmt architecture (issue for SPEC.md) is being written.
#pragma once
