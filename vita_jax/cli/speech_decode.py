"""Command line: decode GLM-4-Voice audio codes to a 22.05 kHz wav.

    vita-jax-speech-decode --decoder-dir DIR --codes 1,2,3 --out out.wav
    vita-jax-speech-decode --decoder-dir DIR --codes-file codes.txt --out out.wav [--stream]

A codes file holds integers separated by commas and/or whitespace.
"""

import re
import sys

from vita_jax.atomic import allow_replacing, check_replaceable
from vita_jax.cli.errors import CommandParser, UsageError, command
from vita_jax.cli.progress import progress_line


def parse_codes(text, source):
    items = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not items:
        raise UsageError(f"{source}: no audio codes given")
    try:
        return [int(t) for t in items]
    except ValueError as err:
        raise UsageError(f"{source}: audio codes must be integers: {err}") from err


@command
def main(argv):
    ap = CommandParser(description=__doc__)
    ap.add_argument("--decoder-dir", required=True, help="glm-4-voice-decoder directory or a converted checkpoint")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--codes", help="comma-separated audio codes (0..16383)")
    src.add_argument("--codes-file", help="file of audio codes separated by commas or whitespace")
    ap.add_argument("--out", required=True, help="output wav path")
    ap.add_argument("--force", "--overwrite", action="store_true",
                    help="replace an existing --out that is not a wav file")
    ap.add_argument("--seed", type=int, default=42, help="PRNG seed of the CFM noise and the NSF source")
    ap.add_argument("--stream", action="store_true", help="decode in 10-code streaming chunks")
    ap.add_argument("--context", type=int, default=10,
                    help="with --stream: codes of history each chunk is conditioned on (-1: all, as the original)")
    args = ap.parse_args(argv)

    import jax
    import numpy as np

    from vita_jax.audio.speech_decoder import DecoderInputError, load_decoder
    from vita_jax.audio.wav_io import is_wav_file, write_wav

    if args.codes is not None:
        codes = parse_codes(args.codes, "--codes")
    else:
        try:
            with open(args.codes_file, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as err:
            raise ValueError(f"{args.codes_file}: not a text file of audio codes ({err.reason} at byte {err.start})"
                             ) from None
        codes = parse_codes(text, args.codes_file)
    with allow_replacing(args.force):
        check_replaceable(args.out, is_dir=False, replaceable=is_wav_file)  # before the slow part
    dec = load_decoder(args.decoder_dir)
    try:
        dec.check_codes(codes, name="--codes" if args.codes is not None else args.codes_file)
    except DecoderInputError as err:
        raise UsageError(str(err)) from err
    key = jax.random.key(args.seed)
    with progress_line(f"decoding {len(codes)} codes (the first chunk compiles)"):
        if args.stream:
            chunks = [codes[i: i + 10] for i in range(0, len(codes), 10)]
            context = None if args.context < 0 else args.context
            wav = np.concatenate(list(dec.stream(chunks, key=key, context_tokens=context)))
        else:
            wav = dec.token2wav(codes, key=key)
    with allow_replacing(args.force):
        write_wav(args.out, wav, dec.sample_rate)
    print(f"wrote {args.out}: {len(wav)} samples, {len(wav) / dec.sample_rate:.2f} s at {dec.sample_rate} Hz")


if __name__ == "__main__":
    sys.exit(main())
