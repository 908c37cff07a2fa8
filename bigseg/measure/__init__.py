"""measure (see docs/design.md)."""
