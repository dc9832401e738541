"""Grouped-query self-attention with q/k/v biases, rotary embedding and an optional static KV cache.

Masks are boolean [B, 1, T_query, T_key] (True = may attend) and are built once per
forward by the helpers below, then shared by every layer.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vita_jax.nn.rotary import apply_rotary


def packed_causal_mask(segment_ids):
    """Training mask: causal, inside the same segment, never onto segment 0 (padding)."""
    length = segment_ids.shape[1]
    causal = jnp.tril(jnp.ones((length, length), dtype=bool))
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    real_key = (segment_ids != 0)[:, None, :]
    return (causal[None] & same & real_key)[:, None]


def cache_causal_mask(cache_length, chunk_length, cache_size):
    """Decoding mask for a chunk written at slots cache_length[b] + i: query i sees slots <= that."""
    query_slot = cache_length[:, None] + jnp.arange(chunk_length)[None, :]
    return (jnp.arange(cache_size)[None, None, :] <= query_slot[:, :, None])[:, None]


def write_to_cache(cache, new, start):
    """Write `new` [B, C, ...] into `cache` [B, S, ...] at per-row offsets `start` [B]."""
    def write_row(row_cache, row_new, row_start):
        return jax.lax.dynamic_update_slice_in_dim(row_cache, row_new.astype(row_cache.dtype), row_start, axis=0)

    return jax.vmap(write_row)(cache, new, start)


class Attention(nn.Module):
    num_heads: int
    num_kv_heads: int
    head_dim: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, cos, sin, mask, kv_cache=None, cache_length=None):
        """x [B, T, E]; returns (output [B, T, E], updated kv_cache or None).

        With `kv_cache` ({"k", "v"}: [B, S, kv_heads, head_dim]) the new keys/values are
        written at slots cache_length[b] + 0..T-1 and attention runs over all S slots.
        """
        def projection(heads, axes, name, bias=True, axis=-1, features=None):
            return nn.DenseGeneral(
                features=features or (heads, self.head_dim), axis=axis, use_bias=bias, dtype=self.dtype,
                param_dtype=self.param_dtype, name=name,
                kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
            )

        q = projection(self.num_heads, ("embed", "heads", "head_dim"), "q_proj")(x)
        k = projection(self.num_kv_heads, ("embed", "kv_heads", "head_dim"), "k_proj")(x)
        v = projection(self.num_kv_heads, ("embed", "kv_heads", "head_dim"), "v_proj")(x)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)

        new_cache = None
        if kv_cache is not None:
            new_cache = {"k": write_to_cache(kv_cache["k"], k, cache_length),
                         "v": write_to_cache(kv_cache["v"], v, cache_length)}
            k, v = new_cache["k"].astype(self.dtype), new_cache["v"].astype(self.dtype)

        batch, length = q.shape[:2]
        groups = self.num_heads // self.num_kv_heads
        q = q.reshape(batch, length, self.num_kv_heads, groups, self.head_dim)
        scores = jnp.einsum("btkgd,bskd->bkgts", q, k, preferred_element_type=jnp.float32)
        scores = scores * (self.head_dim ** -0.5)
        scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        out = jnp.einsum("bkgts,bskd->btkgd", probs, v).reshape(batch, length, self.num_heads, self.head_dim)
        out = projection(None, ("heads", "head_dim", "embed"), "o_proj", bias=False, axis=(-2, -1),
                         features=x.shape[-1])(out)
        return out, new_cache
