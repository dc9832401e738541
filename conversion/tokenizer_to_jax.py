"""`python -m conversion.tokenizer_to_jax ...` = `vita-jax-convert tokenizer-to-jax ...` (vita_jax/cli/convert.py)."""

import sys

from vita_jax.cli.convert import main

if __name__ == "__main__":
    main(["tokenizer-to-jax", *sys.argv[1:]])
