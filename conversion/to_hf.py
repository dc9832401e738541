"""`python -m conversion.to_hf ...` = `vita-jax-convert llm-to-hf ...` (vita_jax/cli/convert.py)."""

import sys

from vita_jax.cli.convert import main

if __name__ == "__main__":
    main(["llm-to-hf", *sys.argv[1:]])
