"""Import a Hugging Face qwen2 / qwen2_mtp checkpoint into a vita_jax checkpoint.

    python -m conversion.to_jax --hf-dir SRC --out DST [--param-dtype bfloat16] [--scan-layers]
"""

import argparse

from vita_jax import load_pretrained


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hf-dir", required=True, help="directory with config.json and *.safetensors")
    parser.add_argument("--out", required=True, help="output vita_jax checkpoint directory")
    parser.add_argument("--param-dtype", choices=["float32", "bfloat16", "float16"], default=None,
                        help="parameter dtype (default: as stored in the checkpoint)")
    parser.add_argument("--scan-layers", action="store_true",
                        help="store backbone layers stacked on a leading axis (training layout)")
    args = parser.parse_args(argv)
    model = load_pretrained(args.hf_dir, param_dtype=args.param_dtype, scan_layers=args.scan_layers)
    model.save(args.out)
    cfg = model.config
    print(f"wrote {args.out}: {cfg.num_layers} backbone layers, {cfg.num_mctp_modules} MCTP modules, "
          f"vocab {cfg.vocab_size}, params {cfg.param_dtype}, layout "
          f"{'scanned' if cfg.scan_layers else 'unrolled'}")


if __name__ == "__main__":
    main()
