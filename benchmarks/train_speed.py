"""Training throughput (tokens/s, MFU estimate) on this machine.

    python benchmarks/train_speed.py --preset tiny
    python benchmarks/train_speed.py --preset qwen2.5-0.5b --num-mctp-modules 1 --seq-len 256 --batch 1

Random packed rows through the real jitted train step (1 device, float32); MFU is model FLOPs
per second over the measured matmul peak of this machine (a large jitted float32 matmul).
Memory of a stage's step on a TPU slice or a simulated mesh: benchmarks/train_memory.py.
"""

import argparse
import importlib
import time



def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", help="configs/model.py preset")
    p.add_argument("--stage", default="stage4_sft", help="configs/<stage>.py: trainable groups, LRs, K")
    p.add_argument("--num-mctp-modules", type=int, default=None, help="override the stage's K")
    p.add_argument("--batch", type=int, default=4, help="rows per step")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    p.add_argument("--dtype", default="float32", help="compute dtype")
    p.add_argument("--attention", default="auto", help="attention implementation (vita_jax/nn/attention.py)")
    p.add_argument("--remat", default="none", help="remat_policy (vita_jax/nn/remat.py)")
    p.add_argument("--loss-chunk", type=int, default=0, help="token chunk of the fused loss (0 = whole length)")
    return p.parse_args()


def run_config(args):
    cfg = importlib.import_module(f"vita_jax.configs.{args.stage}").get_config()
    from vita_jax.configs.model import get_config as model_config

    k = cfg.model.num_mctp_modules if args.num_mctp_modules is None else args.num_mctp_modules
    cfg.model = model_config(args.preset).replace(
        num_mctp_modules=k, scan_layers=True, dtype=args.dtype, attention=args.attention,
        remat_policy=args.remat).to_dict()
    cfg.train.loss_chunk = args.loss_chunk
    return cfg


def setup(cfg, mesh):
    """(module, tx, labels, state, state shardings, loss config): random parameters of the stage's
    model on `mesh`, as train.py starts them."""
    from vita_jax.nn.vita_audio import VitaAudio
    from vita_jax.train.model_init import initial_params
    from vita_jax.train.optimizer import make_optimizer
    from vita_jax.train.param_groups import param_labels
    from vita_jax.train.train_state import init_train_state
    from vita_jax.train.train_step import LossConfig

    model_cfg, params, _ = initial_params(cfg, 0, mesh)
    labels = param_labels(params, tuple(cfg.optim.trainable))
    tx = make_optimizer(cfg.optim, cfg.train.steps, labels)
    state, state_sh = init_train_state(params, tx, mesh)
    return VitaAudio(model_cfg), tx, labels, state, state_sh, LossConfig.of_run(cfg, model_cfg)


def matmul_peak_flops(n=2048, reps=10):
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(reps):
        out = f(a)
    out.block_until_ready()
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def speed(args):
    import jax

    from vita_jax.sharding import global_batch, make_mesh
    from vita_jax.train.metrics import train_flops_per_token
    from vita_jax.train.random_batch import random_packed_batch
    from vita_jax.train.train_state import jit_train_step

    cfg = run_config(args)
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    module, tx, labels, state, state_sh, loss_cfg = setup(cfg, mesh)
    step = jit_train_step(module, tx, labels, loss_cfg, state_sh, mesh)
    batch = global_batch(random_packed_batch(cfg.model.vocab_size, args.batch, args.seq_len), mesh)
    start = time.perf_counter()
    state, metrics = step(state, batch)
    float(metrics["loss"])
    compile_s = time.perf_counter() - start
    tokens, start = 0, time.perf_counter()
    for _ in range(args.steps):
        state, metrics = step(state, batch)
        tokens += int(metrics["tokens"])
    float(metrics["loss"])
    elapsed = time.perf_counter() - start
    peak = matmul_peak_flops()
    flops = train_flops_per_token(cfg.model, args.seq_len, cfg.model.num_mctp_modules, loss_cfg.train_backbone)
    tps = tokens / elapsed
    print(f"{args.preset} {args.stage} K={cfg.model.num_mctp_modules} batch={args.batch}x{args.seq_len} "
          f"(attention {args.attention}, remat {args.remat}, loss chunk {args.loss_chunk}): "
          f"{tps:.1f} tokens/s, {elapsed / args.steps * 1e3:.0f} ms/step (first step incl. compile {compile_s:.1f} s), "
          f"{flops * tps / 1e9:.1f} model GFLOP/s, matmul peak {peak / 1e9:.1f} GFLOP/s, MFU {flops * tps / peak:.1%}")


if __name__ == "__main__":
    speed(parse_args())
