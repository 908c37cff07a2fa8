"""synth (see docs/design.md)."""
