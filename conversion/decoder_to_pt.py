"""`python -m conversion.decoder_to_pt ...` = `vita-jax-convert decoder-to-pt ...` (vita_jax/cli/convert.py)."""

import sys

from vita_jax.cli.convert import main

if __name__ == "__main__":
    main(["decoder-to-pt", *sys.argv[1:]])
