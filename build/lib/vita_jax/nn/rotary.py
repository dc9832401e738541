"""Rotary position embedding, rotate-half layout (as Qwen2 / Hugging Face)."""

import jax.numpy as jnp


def rotary_tables(positions, head_dim, theta):
    """cos and sin tables [B, T, head_dim] (float32) for integer `positions` [B, T]."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq
    angles = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(x, cos, sin):
    """Rotate `x` [B, T, heads, head_dim] by the tables [B, T, head_dim]; computed in float32."""
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * cos[:, :, None, :] + rotated * sin[:, :, None, :]).astype(x.dtype)
