"""Convert an original `glm-4-voice-tokenizer` directory into this project's checkpoint.

python -m conversion.tokenizer_to_jax --tokenizer-dir SRC --out DST
"""

import argparse

from conversion.tokenizer_checkpoint import import_hf_dir, save_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer-dir", required=True, help="config.json + preprocessor_config.json + *.safetensors")
    parser.add_argument("--out", required=True, help="output checkpoint directory (written atomically)")
    args = parser.parse_args(argv)
    checkpoint = import_hf_dir(args.tokenizer_dir)
    save_checkpoint(args.out, checkpoint)
    print(f"wrote {args.out} ({checkpoint.model_config})")


if __name__ == "__main__":
    main()
