"""ops (see docs/design.md)."""
