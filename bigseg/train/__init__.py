"""train (see docs/design.md)."""
