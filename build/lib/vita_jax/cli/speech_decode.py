"""Command line: decode GLM-4-Voice audio codes to a 22.05 kHz wav.

    vita-jax-speech-decode --decoder-dir DIR --codes 1,2,3 --out out.wav
    vita-jax-speech-decode --decoder-dir DIR --codes-file codes.txt --out out.wav [--stream]

A codes file holds integers separated by commas and/or whitespace.
"""

import argparse
import re
import sys

import jax


def parse_codes(text, source):
    items = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    try:
        return [int(t) for t in items]
    except ValueError as err:
        raise SystemExit(f"{source}: audio codes must be integers: {err}") from err


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decoder-dir", required=True, help="glm-4-voice-decoder directory or a converted checkpoint")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--codes", help="comma-separated audio codes (0..16383)")
    src.add_argument("--codes-file", help="file of audio codes separated by commas or whitespace")
    ap.add_argument("--out", required=True, help="output wav path")
    ap.add_argument("--seed", type=int, default=42, help="PRNG seed of the CFM noise and the NSF source")
    ap.add_argument("--stream", action="store_true", help="decode in 10-code streaming chunks")
    ap.add_argument("--context", type=int, default=10,
                    help="with --stream: codes of history each chunk is conditioned on (-1: all, as the original)")
    args = ap.parse_args(argv)

    import numpy as np

    from vita_jax.audio.speech_decoder import DecoderInputError, load_decoder
    from vita_jax.audio.wav_io import write_wav

    if args.codes is not None:
        codes = parse_codes(args.codes, "--codes")
    else:
        with open(args.codes_file) as f:
            codes = parse_codes(f.read(), args.codes_file)
    dec = load_decoder(args.decoder_dir)
    key = jax.random.key(args.seed)
    try:
        if args.stream:
            dec.check_codes(codes)
            chunks = [codes[i: i + 10] for i in range(0, len(codes), 10)]
            context = None if args.context < 0 else args.context
            wav = np.concatenate(list(dec.stream(chunks, key=key, context_tokens=context)))
        else:
            wav = dec.token2wav(codes, key=key)
    except DecoderInputError as err:
        raise SystemExit(f"error: {err}") from err
    write_wav(args.out, wav, dec.sample_rate)
    print(f"wrote {args.out}: {len(wav)} samples, {len(wav) / dec.sample_rate:.2f} s at {dec.sample_rate} Hz")


if __name__ == "__main__":
    sys.exit(main())
