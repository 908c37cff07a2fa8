"""baselines (see docs/design.md)."""
