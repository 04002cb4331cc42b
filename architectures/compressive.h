// Placeholder: the compressive architecture (issue for SPEC.md) is being written.
#pragma once
