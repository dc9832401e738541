"""Export a vita_jax checkpoint (or re-export a Hugging Face one) in the Hugging Face layout.

    python -m conversion.to_hf --ckpt SRC --out DST [--dtype bfloat16] [--max-shard-size 5GB]

Writes config.json (model_type qwen2_mtp with num_nextn_predict_layers when the model has MCTP
modules, else qwen2), safetensors shards and model.safetensors.index.json when sharded.
"""

import argparse
import re

from vita_jax import load_pretrained

UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text):
    """'5GB' / '500MiB' / '1000' -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 5GB, 500MiB, 1000000)")
    return int(float(match.group(1)) * UNITS[match.group(2) or "B"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="vita_jax checkpoint (or Hugging Face directory)")
    parser.add_argument("--out", required=True, help="output Hugging Face directory")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="bfloat16",
                        help="dtype of the written tensors (default bfloat16, as the release)")
    parser.add_argument("--max-shard-size", type=parse_size, default=parse_size("5GB"),
                        help="largest safetensors shard (default 5GB)")
    args = parser.parse_args(argv)
    model = load_pretrained(args.ckpt)
    model.save_pretrained(args.out, dtype=args.dtype, max_shard_bytes=args.max_shard_size)
    print(f"wrote {args.out} ({args.dtype})")


if __name__ == "__main__":
    main()
