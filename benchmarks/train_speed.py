"""Training throughput (tokens/s, MFU estimate) on this machine, and the per-device memory of a
training step on a simulated mesh (ahead-of-time compile over fake CPU devices).

    python benchmarks/train_speed.py --preset tiny
    python benchmarks/train_speed.py --preset qwen2.5-0.5b --num-mctp-modules 1 --seq-len 256 --batch 1
    python benchmarks/train_speed.py --memory --preset vita-audio-7b --stage stage4_sft --mesh 1,16,1

Speed: random packed rows through the real jitted train step (1 device, float32); MFU is model
FLOPs per second over the measured matmul peak of this machine (a large jitted float32 matmul).
Memory: XLA's memory analysis of the compiled sharded step (parameters, optimizer state, batch,
temporaries per device) for the stage's config; on TPU/GPU the numbers differ somewhat (other
fusion and layouts) but the sharded state dominates.
"""

import argparse
import importlib
import os
import time



def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", help="configs/model.py preset")
    p.add_argument("--stage", default="stage4_sft", help="configs/<stage>.py: trainable groups, LRs, K")
    p.add_argument("--num-mctp-modules", type=int, default=None, help="override the stage's K")
    p.add_argument("--batch", type=int, default=4, help="rows per step (speed); global batch (memory: config's)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    p.add_argument("--memory", action="store_true", help="AOT-compile on a simulated mesh and report memory")
    p.add_argument("--mesh", default="1,16,1", help="data,fsdp,tensor of the simulated mesh (--memory)")
    p.add_argument("--dtype", default=None, help="compute dtype (default float32 for speed, bfloat16 for memory)")
    return p.parse_args()


def run_config(args):
    cfg = importlib.import_module(f"vita_jax.configs.{args.stage}").get_config()
    from vita_jax.configs.model import get_config as model_config

    k = cfg.model.num_mctp_modules if args.num_mctp_modules is None else args.num_mctp_modules
    cfg.model = model_config(args.preset).replace(
        num_mctp_modules=k, scan_layers=True, dtype=args.dtype or ("bfloat16" if args.memory else "float32")).to_dict()
    return cfg


def setup(cfg, mesh, abstract):
    """(module, tx, labels, state or abstract state, state shardings, loss config)."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from vita_jax.model_config import ModelConfig
    from vita_jax.nn.vita_audio import VitaAudio
    from vita_jax.sharding import model_param_shardings, opt_state_shardings, replicated
    from vita_jax.train.optimizer import make_optimizer
    from vita_jax.train.param_groups import param_labels
    from vita_jax.train.train_state import init_train_state
    from vita_jax.train.train_step import LossConfig

    module = VitaAudio(ModelConfig.from_dict(cfg.model))

    def init(rng):
        return nn.meta.unbox(module.init(rng, jnp.zeros((1, 2), jnp.int32))["params"])

    abstract_params = jax.eval_shape(init, jax.random.key(0))
    shardings = model_param_shardings(module, mesh, abstract_params)
    labels = param_labels(abstract_params, tuple(cfg.optim.trainable))
    tx = make_optimizer(cfg.optim, cfg.train.steps, labels)
    loss_cfg = LossConfig.of(cfg.model, tuple(cfg.optim.trainable), cfg.train.mtp_loss_weight)
    if abstract:
        opt_sh = opt_state_shardings(jax.eval_shape(tx.init, abstract_params), abstract_params, shardings, mesh)
        state_sh = {"step": replicated(mesh), "params": shardings, "opt_state": opt_sh}
        shapes = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": abstract_params,
                  "opt_state": jax.eval_shape(tx.init, abstract_params)}
        state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, state_sh)
        return module, tx, labels, state, state_sh, loss_cfg
    params = jax.jit(init, out_shardings=shardings)(jax.random.key(0))
    state, state_sh = init_train_state(params, tx, mesh)
    return module, tx, labels, state, state_sh, loss_cfg


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

    from tests.train_helpers import packed_batch
    from vita_jax.sharding import global_batch, make_mesh
    from vita_jax.train.metrics import train_flops_per_token
    from vita_jax.train.train_state import jit_train_step

    cfg = run_config(args)
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    module, tx, labels, state, state_sh, loss_cfg = setup(cfg, mesh, abstract=False)
    step = jit_train_step(module, tx, labels, loss_cfg, state_sh, mesh)
    batch = global_batch(packed_batch(cfg.model.vocab_size, args.batch, args.seq_len), mesh)
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
    print(f"{args.preset} {args.stage} K={cfg.model.num_mctp_modules} batch={args.batch}x{args.seq_len}: "
          f"{tps:.1f} tokens/s, {elapsed / args.steps * 1e3:.0f} ms/step (first step incl. compile {compile_s:.1f} s), "
          f"{flops * tps / 1e9:.1f} model GFLOP/s, matmul peak {peak / 1e9:.1f} GFLOP/s, MFU {flops * tps / peak:.1%}")


def peak_bytes(mem):
    return mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes + mem.temp_size_in_bytes


def memory(args):
    data, fsdp, tensor = (int(x) for x in args.mesh.split(","))
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={data * fsdp * tensor}"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from vita_jax.sharding import make_mesh
    from vita_jax.train.train_step import BATCH_FIELDS, make_train_step

    cfg = run_config(args)
    mesh = make_mesh(data, fsdp, tensor)
    module, tx, labels, state, state_sh, loss_cfg = setup(cfg, mesh, abstract=True)
    rows, seq = cfg.train.global_batch_size, cfg.data.seq_len
    row_sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None))
    batch = {k: jax.ShapeDtypeStruct((rows, seq), jnp.int32, sharding=row_sharding) for k in BATCH_FIELDS}
    start = time.perf_counter()
    step = jax.jit(make_train_step(module, tx, labels, loss_cfg, cfg.train.microbatches, mesh),
                   out_shardings=(state_sh, NamedSharding(mesh, PartitionSpec())), donate_argnums=0)
    compiled = step.lower(state, batch).compile()
    mem = compiled.memory_analysis()
    n_params = sum(x.size for x in jax.tree.leaves(state["params"]))
    gib = 2 ** 30
    print(f"{args.preset} {args.stage} K={cfg.model.num_mctp_modules}, {n_params / 1e9:.2f} B parameters "
          f"(param dtype {cfg.model.param_dtype}, compute {cfg.model.dtype}), global batch {rows}x{seq}, "
          f"mesh data={data} fsdp={fsdp} tensor={tensor} (compiled in {time.perf_counter() - start:.0f} s)")
    print(f"per device: arguments {mem.argument_size_in_bytes / gib:.2f} GiB, outputs "
          f"{mem.output_size_in_bytes / gib:.2f} GiB (aliased {mem.alias_size_in_bytes / gib:.2f} GiB), "
          f"temporaries {mem.temp_size_in_bytes / gib:.2f} GiB, peak ~"
          f"{peak_bytes(mem) / gib:.2f} GiB")


if __name__ == "__main__":
    arguments = parse_args()
    memory(arguments) if arguments.memory else speed(arguments)
