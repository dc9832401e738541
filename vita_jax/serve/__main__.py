"""`python -m vita_jax.serve`: see vita_jax/serve/cli.py."""

from vita_jax.serve.cli import main

main()
