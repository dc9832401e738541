"""Checkpoint conversion, one subcommand per direction (the `vita-jax-convert` console script;
`python -m conversion.<name>` from the repository root runs the same subcommands).

    vita-jax-convert llm-to-jax       --hf-dir SRC --out DST [--param-dtype bfloat16] [--scan-layers]
    vita-jax-convert llm-to-hf        --ckpt SRC --out DST [--dtype bfloat16] [--max-shard-size 5GB]
    vita-jax-convert tokenizer-to-jax --tokenizer-dir SRC --out DST
    vita-jax-convert tokenizer-to-hf  --ckpt SRC --out DST
    vita-jax-convert decoder-to-jax   --decoder-dir SRC --out DST
    vita-jax-convert decoder-to-pt    --ckpt SRC --out DST [--fold-weight-norm]

An existing --out is replaced (atomically, the old copy removed last) only when it holds a previous
output of the same kind, or with --force; an --out that is or contains the input is refused.
"""

import argparse
import os
import re

from vita_jax.atomic import allow_replacing, check_not_an_input, check_replaceable
from vita_jax.cli.errors import CommandParser, command

UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text):
    """'5GB' / '500MiB' / '1000' -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 5GB, 500MiB, 1000000)")
    return int(float(match.group(1)) * UNITS[match.group(2) or "B"])


def _load_llm(path, **options):
    """load_pretrained, or load_plus for a VITA-Audio-Plus folder / checkpoint."""
    from vita_jax import load_pretrained
    from vita_jax.plus import is_plus_checkpoint, load_plus

    return (load_plus if is_plus_checkpoint(path) else load_pretrained)(path, **options)


def llm_to_jax(args):
    """Hugging Face qwen2 / qwen2_mtp / qwen2_mtp_sensevoice (Plus) directory -> this project's checkpoint."""
    model = _load_llm(args.hf_dir, param_dtype=args.param_dtype, scan_layers=args.scan_layers)
    model.save(args.out)
    cfg = model.config
    return (f"wrote {args.out}: {cfg.num_layers} backbone layers, {cfg.num_mctp_modules} MCTP modules, "
            f"vocab {cfg.vocab_size}, params {cfg.param_dtype}, layout {'scanned' if cfg.scan_layers else 'unrolled'}")


def llm_to_hf(args):
    """This project's checkpoint (or a Hugging Face directory) -> Hugging Face layout: config.json
    (qwen2_mtp with num_nextn_predict_layers when the model has MCTP modules, else qwen2),
    safetensors shards and model.safetensors.index.json when sharded; a Plus model keeps
    qwen2_mtp_sensevoice with its audio weights, am.mvn and config.yaml."""
    model = _load_llm(args.ckpt)
    model.save_pretrained(args.out, dtype=args.dtype, max_shard_bytes=args.max_shard_size)
    return f"wrote {args.out} ({args.dtype})"


def tokenizer_to_jax(args):
    """Original `glm-4-voice-tokenizer` directory -> this project's checkpoint."""
    from vita_jax.convert.tokenizer_checkpoint import import_hf_dir, save_checkpoint

    checkpoint = import_hf_dir(args.tokenizer_dir)
    save_checkpoint(args.out, checkpoint)
    return f"wrote {args.out} ({checkpoint.model_config})"


def tokenizer_to_hf(args):
    """This project's tokenizer checkpoint -> the original `glm-4-voice-tokenizer` layout."""
    from vita_jax.convert.tokenizer_checkpoint import export_hf_dir, load_checkpoint

    export_hf_dir(args.out, load_checkpoint(args.ckpt))
    return f"wrote {args.out}"


def decoder_to_jax(args):
    """Original `glm-4-voice-decoder` directory (config.yaml, flow.pt, hift.pt) -> this project's
    checkpoint (orbax params + metadata with the parsed config and the original YAML)."""
    from vita_jax.convert.decoder_checkpoint import CHECKPOINT_KIND, read_original_decoder
    from vita_jax.param_checkpoint import save_params

    cfg, params, yaml_text = read_original_decoder(args.decoder_dir)
    save_params(args.out, params, CHECKPOINT_KIND, {"config": cfg.to_dict(), "config_yaml": yaml_text,
                                                   "source": args.decoder_dir})
    return f"wrote {args.out}"


def decoder_to_pt(args):
    """This project's decoder checkpoint (or an original directory) -> flow.pt, hift.pt and
    config.yaml that the original PyTorch modules load with strict=True; weight norm stays the
    original weight_g/weight_v pair unless --fold-weight-norm."""
    from vita_jax.atomic import atomic_directory
    from vita_jax.audio.decoder_config import config_yaml_text
    from vita_jax.convert.decoder_checkpoint import PARTS, export_state_dict, read_decoder, write_torch_state_dict

    cfg, params, yaml_text = read_decoder(args.ckpt)

    def is_original_layout(path):
        return all(os.path.isfile(os.path.join(path, name)) for name in ("config.yaml", *(f"{p}.pt" for p in PARTS)))

    with atomic_directory(args.out, replaceable=is_original_layout) as tmp:
        for part in PARTS:
            write_torch_state_dict(os.path.join(tmp, f"{part}.pt"),
                                   export_state_dict(params[part], args.fold_weight_norm))
        with open(os.path.join(tmp, "config.yaml"), "w") as f:
            f.write(yaml_text or config_yaml_text(cfg))
    return f"wrote {args.out}"


def is_previous_output(path):
    """Whether `path` holds an output of one of these converters (the exact kind is checked again
    when the output is written); lets a conversion refuse a wrong --out before the slow part."""
    from vita_jax.convert.hf_checkpoint import is_hf_checkpoint
    from vita_jax.param_checkpoint import is_param_checkpoint

    return is_param_checkpoint(path) or is_hf_checkpoint(path) or os.path.isfile(os.path.join(path, "flow.pt"))


def build_parser():
    parser = CommandParser(prog="vita-jax-convert", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)

    def subcommand(name, run, source_flag):
        sub = commands.add_parser(name, help=run.__doc__.splitlines()[0], description=run.__doc__)
        sub.set_defaults(run=run, source_flag=source_flag)
        sub.add_argument("--force", "--overwrite", action="store_true",
                         help="replace an existing --out even when it is not a previous output of this kind")
        return sub

    sub = subcommand("llm-to-jax", llm_to_jax, "--hf-dir")
    sub.add_argument("--hf-dir", required=True, help="directory with config.json and *.safetensors")
    sub.add_argument("--out", required=True, help="output vita_jax checkpoint directory")
    sub.add_argument("--param-dtype", choices=["float32", "bfloat16", "float16"], default=None,
                     help="parameter dtype (default: as stored in the checkpoint)")
    sub.add_argument("--scan-layers", action="store_true",
                     help="store backbone layers stacked on a leading axis (training layout)")
    sub = subcommand("llm-to-hf", llm_to_hf, "--ckpt")
    sub.add_argument("--ckpt", required=True, help="vita_jax checkpoint (or Hugging Face directory)")
    sub.add_argument("--out", required=True, help="output Hugging Face directory")
    sub.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="bfloat16",
                     help="dtype of the written tensors (default bfloat16, as the release)")
    sub.add_argument("--max-shard-size", type=parse_size, default=parse_size("5GB"),
                     help="largest safetensors shard (default 5GB)")
    sub = subcommand("tokenizer-to-jax", tokenizer_to_jax, "--tokenizer-dir")
    sub.add_argument("--tokenizer-dir", required=True, help="config.json + preprocessor_config.json + *.safetensors")
    sub.add_argument("--out", required=True, help="output checkpoint directory (written atomically)")
    sub = subcommand("tokenizer-to-hf", tokenizer_to_hf, "--ckpt")
    sub.add_argument("--ckpt", required=True, help="checkpoint written by tokenizer-to-jax")
    sub.add_argument("--out", required=True, help="output directory (written atomically)")
    sub = subcommand("decoder-to-jax", decoder_to_jax, "--decoder-dir")
    sub.add_argument("--decoder-dir", required=True, help="config.yaml + flow.pt + hift.pt")
    sub.add_argument("--out", required=True, help="output checkpoint directory")
    sub = subcommand("decoder-to-pt", decoder_to_pt, "--ckpt")
    sub.add_argument("--ckpt", required=True, help="converted checkpoint (or original decoder directory)")
    sub.add_argument("--out", required=True, help="output directory (written atomically)")
    sub.add_argument("--fold-weight-norm", action="store_true",
                     help="write folded `weight` instead of weight_g/weight_v")
    return parser


@command
def main(argv):
    args = build_parser().parse_args(argv)
    source = getattr(args, args.source_flag.lstrip("-").replace("-", "_"))
    check_not_an_input(args.out, [source])
    with allow_replacing(args.force):
        check_replaceable(os.path.abspath(args.out), is_dir=True, replaceable=is_previous_output)
        print(args.run(args))


if __name__ == "__main__":
    main()
