"""Command lines of the package (console scripts `vita-jax-*`; thin scripts at the repository root call them)."""
