"""`python -m conversion.tokenizer_to_hf ...` = `vita-jax-convert tokenizer-to-hf ...` (vita_jax/cli/convert.py)."""

import sys

from vita_jax.cli.convert import main

if __name__ == "__main__":
    main(["tokenizer-to-hf", *sys.argv[1:]])
