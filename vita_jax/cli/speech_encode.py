"""Tokenize audio files into GLM-4-Voice codes, batched over files (pre-tokenizing a data set).

vita-jax-speech-encode (or python -m vita_jax.audio.encode) --tokenizer-dir DIR [--json] [--output FILE] FILE...
Prints one line per file: `FILE<TAB>code code ...`, or with --json a JSON object per line
{"file": FILE, "codes": [...]}. A file that cannot be read is reported on stderr and the
others are still tokenized; the exit status is 1 when any file failed.
"""

import contextlib
import json
import sys

from tqdm import tqdm

from vita_jax.atomic import allow_replacing, atomic_file, check_not_an_input, check_replaceable
from vita_jax.audio.speech_tokenizer import load_tokenizer
from vita_jax.cli.errors import CommandParser, command

FILES_PER_CALL = 256  # files loaded and featurized at once; bounds host memory


def format_line(path, codes, as_json):
    if as_json:
        return json.dumps({"file": path, "codes": codes})
    return f"{path}\t{' '.join(map(str, codes))}"


def tokenize_files(tokenizer, files, out, as_json):
    """Write one line per readable file to `out`; return the list of (file, error) failures."""
    failures = []

    def on_error(path, err):
        tqdm.write(f"error: {err}", file=sys.stderr)
        failures.append((path, err))

    with tqdm(total=len(files), unit="file", desc="tokenizing", file=sys.stderr) as progress:
        for start in range(0, len(files), FILES_PER_CALL):
            chunk = files[start : start + FILES_PER_CALL]
            codes = tokenizer.encode_batch(chunk, on_error=on_error, progress=progress)
            for path, file_codes in zip(chunk, codes):
                if file_codes is not None:
                    out.write(format_line(path, file_codes, as_json) + "\n")
    return failures


def is_codes_listing(path):
    """True when `path` starts like a listing this command writes (`FILE<TAB>codes` or a JSON line)."""
    with open(path, "rb") as f:
        first = f.readline()
    return b"\t" in first or first.startswith(b'{"file": ')


@command
def main(argv):
    parser = CommandParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer-dir", required=True, help="original tokenizer directory or converted checkpoint")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--output", help="write the lines to this file (atomically) instead of stdout")
    parser.add_argument("--force", "--overwrite", action="store_true",
                        help="replace an existing --output that is not a listing written by this command")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    if args.output:
        check_not_an_input(args.output, args.files, flag="--output")
        with allow_replacing(args.force):
            check_replaceable(args.output, is_dir=False, replaceable=is_codes_listing)  # before the slow part
    tokenizer = load_tokenizer(args.tokenizer_dir)
    with contextlib.ExitStack() as stack:
        if args.output:
            stack.enter_context(allow_replacing(args.force))
            out = stack.enter_context(atomic_file(args.output, mode="w", replaceable=is_codes_listing))
        else:
            out = sys.stdout
        failures = tokenize_files(tokenizer, args.files, out, args.json)
    print(f"tokenized {len(args.files) - len(failures)} of {len(args.files)} files", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
