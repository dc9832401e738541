"""Shared test helpers: tiny checkpoints and configs, decode references, training steps (no test file imports another)."""
