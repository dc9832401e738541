"""Will a stage's training step fit? Compile it ahead of time and read the compiler's memory analysis.

    report = check_stage(cfg, topology="v5e:4x4")   # TPU compiler (needs libtpu, no TPU)
    report = check_stage(cfg)                        # this process's devices (e.g. fake CPU devices)

The step is the real one (train_step.make_train_step) over abstract parameters, optimizer state
and batch with the mesh's shardings: nothing is allocated. On a TPU topology the compiler refuses
a step that does not fit in HBM; the report then carries its message and fits=False.
"""

import dataclasses
import importlib.util
import re
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from vita_jax.model_config import ModelConfig
from vita_jax.nn.attention import resolve_attention
from vita_jax.nn.vita_audio import VitaAudio
from vita_jax.sharding import make_mesh, model_param_shardings, opt_state_shardings, replicated
from vita_jax.train.fused_cross_entropy import check_token_chunk
from vita_jax.train.optimizer import make_optimizer
from vita_jax.train.param_groups import param_labels
from vita_jax.train.train_step import BATCH_FIELDS, LossConfig, make_train_step

GIB = 2 ** 30
# HBM a program may use per device, as libtpu reports it ("exceeds available HBM (15.75G)").
HBM_BYTES = {"TPU v5 lite": 15.75 * GIB, "TPU v5": 95.74 * GIB, "TPU v4": 15.25 * GIB, "TPU v6 lite": 31.25 * GIB}


@dataclasses.dataclass
class MemoryReport:
    devices: int
    device_kind: str
    mesh: tuple  # (data, fsdp, tensor)
    attention: str = ""  # the implementation "auto" resolved to on the target
    argument_bytes: int = 0
    output_bytes: int = 0
    alias_bytes: int = 0
    temp_bytes: int = 0
    peak_bytes: int = 0
    hbm_bytes: int = 0  # 0: unknown (CPU devices)
    flops: float = 0.0
    fits: bool = False
    compile_s: float = 0.0
    error: str = ""  # the compiler's refusal

    def summary(self):
        if self.error:
            return f"does NOT fit: {self.error}"
        hbm = f" of {self.hbm_bytes / GIB:.2f} GiB HBM ({'fits' if self.fits else 'does NOT fit'})" if self.hbm_bytes else ""
        return (f"per device: arguments {self.argument_bytes / GIB:.2f} GiB, outputs {self.output_bytes / GIB:.2f} GiB "
                f"(aliased {self.alias_bytes / GIB:.2f}), temporaries {self.temp_bytes / GIB:.2f} GiB, peak "
                f"{self.peak_bytes / GIB:.2f} GiB{hbm}; {self.flops / 1e12:.1f} TFLOP per step per device "
                f"(compiled in {self.compile_s:.0f} s)")


def topology_devices(name):
    """The devices of a TPU topology ("v5e:4x4", "v5p:2x2x4", ...) for ahead-of-time compiles."""
    if not re.fullmatch(r"v\d+[a-z]*:\d+(x\d+)+", name):
        raise ValueError(f"topology {name!r} is not of the form VERSION:AxB[xC], e.g. v5e:4x4 or v5p:2x2x4")
    if importlib.util.find_spec("libtpu") is None:
        raise RuntimeError(f"topology {name!r} needs libtpu to compile for TPU (no TPU needed): "
                           f"pip install 'jax[tpu]==0.10.2' in a separate environment")
    from jax.experimental import topologies

    try:
        return topologies.get_topology_desc(platform="tpu", topology_name=name).devices
    except Exception as err:  # libtpu's own wording: "Invalid TPU external name: TPU v9x"
        raise ValueError(f"topology {name!r} is unknown to libtpu: {str(err).splitlines()[0]}") from None


def abstract_setup(cfg, model_cfg, mesh):
    """(module, tx, labels, abstract state with shardings, state shardings, loss config) of the run
    config `cfg` with the model config `model_cfg`."""
    module = VitaAudio(model_cfg)

    def init(rng):
        return nn.meta.unbox(module.init(rng, jnp.zeros((1, 2), jnp.int32))["params"])

    params = jax.eval_shape(init, jax.random.key(0))
    shardings = model_param_shardings(module, mesh, params)
    labels = param_labels(params, tuple(cfg.optim.trainable))
    tx = make_optimizer(cfg.optim, cfg.train.steps, labels)
    opt_state = jax.eval_shape(tx.init, params)
    state_sh = {"step": replicated(mesh), "params": shardings,
                "opt_state": opt_state_shardings(opt_state, params, shardings, mesh)}
    shapes = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": params, "opt_state": opt_state}
    state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, state_sh)
    return module, tx, labels, state, state_sh, LossConfig.of_run(cfg, model_cfg)


def check_stage(cfg, topology="", devices=None, dump_dir=""):
    """MemoryReport of one training step of the run config `cfg` (model, optim, train, data.seq_len,
    mesh) compiled for `topology` (or `devices`, default this process's). `dump_dir`: the compiler
    writes its HLO and buffer assignment there (*memory-usage-report.txt: the largest allocations)."""
    check_token_chunk(cfg.train.loss_chunk, cfg.data.seq_len)
    if topology:
        devices = topology_devices(topology)
    devices = list(jax.devices() if devices is None else devices)
    mesh = make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor, devices=devices)
    # "auto" attention picks by the target's platform, not this process's backend
    model_cfg = ModelConfig.from_dict(cfg.model).replace(
        attention=resolve_attention(cfg.model.attention, devices[0].platform))
    module, tx, labels, state, state_sh, loss_cfg = abstract_setup(cfg, model_cfg, mesh)
    rows, seq = cfg.train.global_batch_size, cfg.data.seq_len
    row_split = mesh.shape["data"] * mesh.shape["fsdp"]
    if rows % row_split:
        raise ValueError(f"global batch of {rows} rows does not split over data x fsdp = {row_split} devices; "
                         f"choose a mesh whose data x fsdp divides {rows} (e.g. a tensor axis) or more rows")
    row_sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None))
    batch = {k: jax.ShapeDtypeStruct((rows, seq), jnp.int32, sharding=row_sharding) for k in BATCH_FIELDS}
    step = jax.jit(make_train_step(module, tx, labels, loss_cfg, cfg.train.microbatches, mesh),
                   out_shardings=(state_sh, replicated(mesh)), donate_argnums=0)
    kind = devices[0].device_kind
    report = MemoryReport(devices=len(devices), device_kind=kind, mesh=tuple(mesh.shape.values()),
                          attention=model_cfg.attention,
                          hbm_bytes=int(HBM_BYTES.get(kind, 0)))
    start = time.perf_counter()
    try:
        options = {"xla_dump_to": dump_dir, "xla_dump_hlo_as_text": True} if dump_dir else None
        compiled = step.lower(state, batch).compile(compiler_options=options)
    except Exception as err:  # the TPU compiler refuses a step that does not fit
        if "HBM" not in str(err) and "RESOURCE_EXHAUSTED" not in str(err):
            raise
        report.error = " ".join(str(err).split())[:600]
        report.compile_s = time.perf_counter() - start
        return report
    report.compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    report.argument_bytes, report.output_bytes = mem.argument_size_in_bytes, mem.output_size_in_bytes
    report.alias_bytes, report.temp_bytes = mem.alias_size_in_bytes, mem.temp_size_in_bytes
    report.peak_bytes = report.argument_bytes + report.output_bytes - report.alias_bytes + report.temp_bytes
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    report.flops = float((cost or {}).get("flops", 0.0))
    report.fits = not report.hbm_bytes or report.peak_bytes <= report.hbm_bytes
    return report
