"""Convert an original `glm-4-voice-decoder` directory (config.yaml, flow.pt, hift.pt) to this
project's checkpoint (orbax params + metadata with the parsed config and the original YAML).

    python -m conversion.decoder_to_jax --decoder-dir SRC --out DST
"""

import argparse

from conversion.decoder_checkpoint import CHECKPOINT_KIND, read_original_decoder
from vita_jax.param_checkpoint import save_params


def convert(decoder_dir, out_dir):
    cfg, params, yaml_text = read_original_decoder(decoder_dir)
    save_params(out_dir, params, CHECKPOINT_KIND, {"config": cfg.to_dict(), "config_yaml": yaml_text,
                                                  "source": decoder_dir})
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decoder-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    convert(args.decoder_dir, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
