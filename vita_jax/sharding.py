"""Device mesh and the one table mapping logical axis names to mesh axes.

Parameters carry logical names (embed, heads, kv_heads, head_dim, mlp, vocab, layers, ...);
`LOGICAL_AXIS_RULES` maps them onto the mesh axes (data, fsdp, tensor). The same code runs on
1 CPU, 8 fake CPU devices, GPUs or a TPU pod: only the mesh shape changes.
"""

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

LOGICAL_AXIS_RULES = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("concat_embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    ("loss_tokens", "tensor"),  # the fused loss's token chunks (train/fused_cross_entropy.py)
    ("loss_grad_embed", ("fsdp", "tensor")),  # its lm_head gradient while accumulated (vocabulary whole)
    ("norm", None),
    ("layers", None),
)


def make_mesh(data=1, fsdp=-1, tensor=1, devices=None):
    """A (data, fsdp, tensor) mesh; one axis may be -1 to take the remaining devices."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    shape = [data, fsdp, tensor]
    if shape.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got data={data} fsdp={fsdp} tensor={tensor}")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if devices.size % known:
            raise ValueError(f"{devices.size} devices do not divide into mesh axes of product {known}")
        shape[shape.index(-1)] = devices.size // known
    if int(np.prod(shape)) != devices.size:
        raise ValueError(f"mesh data={shape[0]} x fsdp={shape[1]} x tensor={shape[2]} needs "
                         f"{int(np.prod(shape))} devices, {devices.size} available")
    return Mesh(devices.reshape(shape), MESH_AXES)


def logical_param_specs(module, *init_args):
    """Logical PartitionSpecs of `module`'s parameters, from an abstract (shape-only) init."""
    abstract = jax.eval_shape(module.init, jax.random.key(0), *init_args)
    return nn.get_partition_spec(abstract)["params"]


def param_shardings(logical_specs, mesh, abstract_params=None, rules=LOGICAL_AXIS_RULES):
    """NamedShardings for a parameter tree; checks divisibility when shapes are given."""
    shardings = nn.logical_to_mesh_sharding(logical_specs, mesh, rules)
    if abstract_params is not None:
        jax.tree_util.tree_map_with_path(_check_divisible, abstract_params, shardings)
    return shardings


def _check_divisible(path, leaf, sharding):
    for dim, axes in zip(leaf.shape, sharding.spec):
        names = axes if isinstance(axes, tuple) else (axes,)
        size = int(np.prod([sharding.mesh.shape[a] for a in names if a is not None]))
        if dim % size:
            raise ValueError(f"parameter {jax.tree_util.keystr(path)} of shape {leaf.shape}: dimension {dim} "
                             f"is not divisible by mesh axes {axes} of size {size}")


def batch_sharding(mesh):
    """Rows split over (data, fsdp); sequence replicated."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None))


def activation_sharding(mesh):
    """Activations [B, T, E]: rows split like the batch, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None, None))


@contextlib.contextmanager
def activation_rules(mesh):
    """While tracing inside: `mesh` is the current (abstract) mesh, so the model's `constrain` calls
    pin their activations' layouts on it."""
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
        yield


def constrain(x, logical_axes, rules=LOGICAL_AXIS_RULES):
    """Pin activation `x` to the mesh layout of its logical axes (None = whole) under activation_rules;
    unchanged outside it (one device, decoding, tests)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, nn.logical_to_mesh_axes(logical_axes, rules)))


def shard_model_params(model, mesh, rules=LOGICAL_AXIS_RULES):
    """model.params placed on `mesh` by the logical-axis rules (returns the new tree)."""
    return jax.device_put(model.params, model_param_shardings(model.module, mesh, model.params, rules))


def replicated(mesh):
    return NamedSharding(mesh, PartitionSpec())


def model_param_shardings(module, mesh, abstract_params, rules=LOGICAL_AXIS_RULES):
    """NamedShardings of `module`'s parameters on `mesh` (divisibility checked)."""
    specs = logical_param_specs(module, jnp.zeros((1, 2), jnp.int32))
    return param_shardings(specs, mesh, abstract_params, rules)


def opt_state_shardings(abstract_opt_state, abstract_params, shardings, mesh):
    """Optimizer-state shardings: a leaf whose key path ends with a parameter's path (and has its
    shape, e.g. Adam's mu / nu) follows that parameter; everything else is replicated."""
    by_path = {tuple(path): (leaf.shape, sharding) for (path, leaf), sharding in zip(
        jax.tree_util.tree_flatten_with_path(abstract_params)[0], jax.tree.leaves(shardings))}

    def pick(path, leaf):
        for start in range(len(path)):
            shape, sharding = by_path.get(tuple(path[start:]), (None, None))
            if shape == leaf.shape:
                return sharding
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)


def put_global(tree, shardings):
    """Host arrays (identical on every process) placed as global arrays; multi-host safe."""
    def put(x, sharding):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree, shardings)


def global_batch(local_batch, mesh):
    """This process's rows {field: [local_rows, ...]} -> global arrays with rows over (data, fsdp)."""
    def put(x):
        spec = PartitionSpec(("data", "fsdp"), *([None] * (x.ndim - 1)))
        return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), x)

    return {k: put(v) for k, v in local_batch.items()}
