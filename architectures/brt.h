// Placeholder: the brt architecture (issue for SPEC.md) is being written.
#pragma once
