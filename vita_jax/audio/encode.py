"""`python -m vita_jax.audio.encode` kept for existing users: the command is vita_jax/cli/speech_encode.py
(console script `vita-jax-speech-encode`)."""

import sys

from vita_jax.cli.speech_encode import main

if __name__ == "__main__":
    sys.exit(main())
