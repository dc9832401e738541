"""Export this project's decoder checkpoint (or an original directory) to `flow.pt`, `hift.pt` and
`config.yaml` that the original PyTorch modules load with strict=True.

    python -m conversion.decoder_to_pt --ckpt SRC --out DST [--fold-weight-norm]

Weight norm is written as the original `weight_g`/`weight_v` pair unless --fold-weight-norm
asks for plain folded `weight` tensors.
"""

import argparse
import os

from conversion.decoder_checkpoint import PARTS, export_state_dict, read_decoder, write_torch_state_dict
from vita_jax.atomic import atomic_directory
from vita_jax.audio.decoder_config import config_yaml_text


def export(ckpt, out_dir, fold_weight_norm=False):
    cfg, params, yaml_text = read_decoder(ckpt)
    with atomic_directory(out_dir) as tmp:
        for part in PARTS:
            write_torch_state_dict(os.path.join(tmp, f"{part}.pt"), export_state_dict(params[part], fold_weight_norm))
        with open(os.path.join(tmp, "config.yaml"), "w") as f:
            f.write(yaml_text or config_yaml_text(cfg))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="converted checkpoint (or original decoder directory)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--fold-weight-norm", action="store_true",
                    help="write folded `weight` instead of weight_g/weight_v")
    args = ap.parse_args(argv)
    export(args.ckpt, args.out, args.fold_weight_norm)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
