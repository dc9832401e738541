"""`python -m conversion.decoder_to_jax ...` = `vita-jax-convert decoder-to-jax ...` (vita_jax/cli/convert.py)."""

import sys

from vita_jax.cli.convert import main

if __name__ == "__main__":
    main(["decoder-to-jax", *sys.argv[1:]])
