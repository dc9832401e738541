"""Per-device memory of a stage's training step, from the compiler: will it fit before you rent the pod?

    # TPU compiler (pip install "jax[tpu]==0.10.2" in a separate environment; no TPU needed)
    python benchmarks/train_memory.py --topology v5e:4x4 --stage stage4_sft
    python benchmarks/train_memory.py --topology v5e:4x4,v5p:2x2x4 --stage stage1_alignment,stage4_sft --json mem.json
    # fake CPU devices (XLA:CPU's buffer assignment; no HBM limit)
    python benchmarks/train_memory.py --cpu-devices 16 --stage stage4_sft --layers 2

Every configuration in the product of --topology x --stage x --seq-len is compiled (one after the
other) with the stage's own model settings (remat policy, attention, dtypes, K) unless overridden.
Prints per device: arguments (parameters, optimizer state, batch), outputs, temporaries, peak,
the chip's HBM, fits or not, and the compiler's FLOP count. --json FILE writes one object per
configuration with at least fits, peak_bytes and hbm_bytes.
"""

import argparse
import dataclasses
import json
import os


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--topology", help="TPU topologies, comma-separated: v5e:4x4, v5e:8x8, v5p:2x2x4, v4:2x2x4, v6e:4x4")
    where.add_argument("--cpu-devices", type=int, help="compile for N fake CPU devices instead")
    p.add_argument("--stage", default="stage4_sft", help="stage names, comma-separated (vita_jax/configs)")
    p.add_argument("--preset", default="vita-audio-7b", help="model geometry (vita_jax/configs/model.py)")
    p.add_argument("--mesh", default="1,-1,1", help="data,fsdp,tensor (one may be -1: the remaining devices)")
    p.add_argument("--seq-len", default="", help="sequence lengths, comma-separated (default: the stage's)")
    p.add_argument("--batch", type=int, default=0, help="global batch rows (default: the stage's)")
    p.add_argument("--remat", default="", help="remat_policy (default: the stage's)")
    p.add_argument("--attention", default="", help="attention implementation (default: the stage's, auto)")
    p.add_argument("--loss-chunk", type=int, default=-1, help="token chunk of the fused loss (default: the stage's)")
    p.add_argument("--num-mctp-modules", type=int, default=None, help="override the stage's K")
    p.add_argument("--layers", type=int, default=0, help="backbone layers (default: the preset's; fewer = quick tries)")
    p.add_argument("--json", default="", help="write the reports to this file")
    p.add_argument("--dump", default="", help="the compiler's HLO and buffer assignment go to DIR/<configuration> "
                                              "(*memory-usage-report.txt: where the temporaries go)")
    return p.parse_args()


def stage_config(args, stage, seq_len):
    """The stage's run config with the requested overrides (its own model settings otherwise)."""
    import importlib

    from vita_jax.configs.model import get_config as model_config
    from vita_jax.model_config import ModelConfig

    cfg = importlib.import_module(f"vita_jax.configs.{stage}").get_config()
    model = {**cfg.model.to_dict(), **{k: v for k, v in model_config(args.preset).to_dict().items()
                                       if k in ("vocab_size", "hidden_size", "intermediate_size", "num_layers",
                                                "num_heads", "num_kv_heads", "head_dim", "rope_theta")}}
    overrides = {"remat_policy": args.remat, "attention": args.attention, "num_layers": args.layers,
                 "num_mctp_modules": args.num_mctp_modules}
    model.update({k: v for k, v in overrides.items() if v not in ("", 0, None)})
    cfg.model = ModelConfig.from_dict(model).to_dict()  # checked here, a plain section of the run config
    cfg.data.seq_len = seq_len or cfg.data.seq_len
    cfg.train.global_batch_size = args.batch or cfg.train.global_batch_size
    if args.loss_chunk >= 0:
        cfg.train.loss_chunk = args.loss_chunk
    cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor = (int(x) for x in args.mesh.split(","))
    return cfg


def main(args):
    if args.cpu_devices:
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.cpu_devices}"
    from vita_jax.train.compile_check import check_stage, topology_devices

    topologies = args.topology.split(",") if args.topology else [""]
    for name in topologies:  # every name checked before the first (long) compile
        if name:
            topology_devices(name)
    seq_lens = [int(s) for s in args.seq_len.split(",") if s] or [0]
    records = []
    for topology in topologies:
        for stage in args.stage.split(","):
            for seq_len in seq_lens:
                cfg = stage_config(args, stage, seq_len)
                dump = os.path.join(args.dump, f"{topology or 'cpu'}-{stage}-{cfg.data.seq_len}") if args.dump else ""
                report = check_stage(cfg, topology, dump_dir=dump)
                m = cfg.model
                print(f"{stage} {args.preset} ({m.num_layers} layers, K={m.num_mctp_modules}, remat {m.remat_policy}, "
                      f"attention {report.attention}, loss chunk {cfg.train.loss_chunk}) batch "
                      f"{cfg.train.global_batch_size}x{cfg.data.seq_len} on {topology or f'{args.cpu_devices} CPU devices'} "
                      f"[{report.devices} x {report.device_kind}, mesh data,fsdp,tensor={report.mesh}]:\n  "
                      f"{report.summary()}", flush=True)
                records.append({"topology": topology or f"cpu:{args.cpu_devices}", "stage": stage, "preset": args.preset,
                                "seq_len": cfg.data.seq_len, "global_batch": cfg.train.global_batch_size,
                                "num_layers": m.num_layers, "num_mctp_modules": m.num_mctp_modules,
                                "remat_policy": m.remat_policy,
                                "loss_chunk": cfg.train.loss_chunk, **dataclasses.asdict(report)})
                if args.json:
                    with open(args.json, "w") as f:
                        json.dump(records, f, indent=1)


if __name__ == "__main__":
    main(parse_args())
