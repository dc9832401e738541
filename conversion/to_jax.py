"""`python -m conversion.to_jax ...` = `vita-jax-convert llm-to-jax ...` (vita_jax/cli/convert.py)."""

import sys

from vita_jax.cli.convert import main

if __name__ == "__main__":
    main(["llm-to-jax", *sys.argv[1:]])
