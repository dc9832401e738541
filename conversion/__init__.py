"""Thin converter command lines for use from the repository root (`python -m conversion.to_hf ...`);
the commands live in vita_jax/cli/convert.py, the key mapping in vita_jax/convert/."""
