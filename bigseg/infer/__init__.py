"""infer (see docs/design.md)."""
