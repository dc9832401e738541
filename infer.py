"""Inference from the repository root: `python infer.py ...` = the `vita-jax-infer` console script.
The command lives in vita_jax/cli/infer.py."""

import sys

from vita_jax.cli.infer import main

if __name__ == "__main__":
    sys.exit(main())
