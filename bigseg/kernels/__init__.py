"""kernels (see docs/design.md)."""
