"""Training from the repository root: `python train.py ...` = the `vita-jax-train` console script.
The command lives in vita_jax/cli/train.py."""

import sys

from vita_jax.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
