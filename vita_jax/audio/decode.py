"""`python -m vita_jax.audio.decode` kept for existing users: the command is vita_jax/cli/speech_decode.py
(console script `vita-jax-speech-decode`)."""

import sys

from vita_jax.cli.speech_decode import main

if __name__ == "__main__":
    sys.exit(main())
