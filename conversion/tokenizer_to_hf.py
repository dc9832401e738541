"""Export this project's tokenizer checkpoint back to the original `glm-4-voice-tokenizer` layout.

python -m conversion.tokenizer_to_hf --ckpt SRC --out DST
"""

import argparse

from conversion.tokenizer_checkpoint import export_hf_dir, load_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint written by conversion.tokenizer_to_jax")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    args = parser.parse_args(argv)
    export_hf_dir(args.out, load_checkpoint(args.ckpt))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
