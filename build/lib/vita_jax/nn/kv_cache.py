"""Static KV caches: zero-filled buffers of a fixed number of slots plus a per-row fill length.

Backbone cache: {"layers": per-layer {"k","v"} (a tuple, or one dict with a leading layer
axis when layers are scanned), "length": [B] int32}. Module cache: {"layer": {"k","v"},
"length": [B]}; slot j of module k holds pair j. Buffers are [B, slots, kv_heads, head_dim].
"""

import jax
import jax.numpy as jnp

from vita_jax.nn.dtypes import as_dtype


def _kv(config, batch, slots, dtype, leading=()):
    shape = (*leading, batch, slots, config.num_kv_heads, config.head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def init_backbone_cache(config, batch, slots, dtype=None):
    dtype = dtype or as_dtype(config.dtype)
    if config.scan_layers:
        layers = _kv(config, batch, slots, dtype, leading=(config.num_layers,))
    else:
        layers = tuple(_kv(config, batch, slots, dtype) for _ in range(config.num_layers))
    return {"layers": layers, "length": jnp.zeros((batch,), jnp.int32)}


def init_mctp_cache(config, batch, slots, dtype=None):
    return {"layer": _kv(config, batch, slots, dtype or as_dtype(config.dtype)),
            "length": jnp.zeros((batch,), jnp.int32)}


def cache_slots(kv_buffers):
    """Number of slots of a cache's "layers" or "layer" entry (every buffer has them on axis -3)."""
    return jax.tree.leaves(kv_buffers)[0].shape[-3]
