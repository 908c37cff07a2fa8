"""filters (see docs/design.md)."""
