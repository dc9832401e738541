"""GLM-4-Voice flow encoder: block-causal conformer with relative-position attention.

`BlockConformerEncoder` of the flow model (spec section 3.1): a Linear + LayerNorm input
layer scaled by sqrt(d), then pre-norm layers of Transformer-XL style relative-position
self-attention and a SiLU feed-forward, then a final LayerNorm. Query i may attend to every
valid key j < (i // block + 1) * block, so the outputs of a block never depend on later blocks.
"""

import math

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vita_jax.audio.decoder_config import FlowConfig


def _layer_norm(name):
    return nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name=name)


def relative_position_table(length, dim):
    """[2L-1, dim] sinusoids; row k encodes relative position (L-1) - k (EspnetRelPositionalEncoding)."""
    inv_freq = jnp.exp(jnp.arange(0, dim, 2, dtype=jnp.float32) * jnp.float32(-(math.log(10000.0) / dim)))
    pos = jnp.arange(length - 1, -length, -1, dtype=jnp.float32)[:, None] * inv_freq
    return jnp.stack([jnp.sin(pos), jnp.cos(pos)], axis=-1).reshape(2 * length - 1, dim)


def block_causal_mask(valid, block_size):
    """[B, 1, L, L] bool: key j is valid and lies in query i's block or an earlier one."""
    length = valid.shape[-1]
    i = np.arange(length)[:, None]
    j = np.arange(length)[None, :]
    allowed = j < (i // block_size + 1) * block_size
    return jnp.asarray(allowed)[None, None] & valid[:, None, None, :]


class RelPositionAttention(nn.Module):
    heads: int
    dim: int

    @nn.compact
    def __call__(self, x, pos_emb, allowed):
        b, length, _ = x.shape
        d_k = self.dim // self.heads

        def split(y):
            return y.reshape(y.shape[0], -1, self.heads, d_k)

        q = split(nn.Dense(self.dim, name="linear_q")(x))
        k = split(nn.Dense(self.dim, name="linear_k")(x))
        v = split(nn.Dense(self.dim, name="linear_v")(x))
        p = split(nn.Dense(self.dim, use_bias=False, name="linear_pos")(pos_emb[None]))[0]  # [2L-1, H, d_k]
        bias_u = self.param("pos_bias_u", nn.initializers.xavier_uniform(), (self.heads, d_k))
        bias_v = self.param("pos_bias_v", nn.initializers.xavier_uniform(), (self.heads, d_k))
        ac = jnp.einsum("bihd,bjhd->bhij", q + bias_u, k)
        bd_all = jnp.einsum("bihd,khd->bhik", q + bias_v, p)  # every relative position
        rel_row = (length - 1) - np.arange(length)[:, None] + np.arange(length)[None, :]  # row of r = i - j
        bd = jnp.take_along_axis(bd_all, jnp.asarray(rel_row)[None, None], axis=-1)
        scores = (ac + bd) / jnp.float32(math.sqrt(d_k))
        scores = jnp.where(allowed, scores, jnp.finfo(jnp.float32).min)
        probs = jnp.where(allowed, nn.softmax(scores, axis=-1), 0.0)  # fully masked rows -> 0
        out = jnp.einsum("bhij,bjhd->bihd", probs, v).reshape(b, length, self.dim)
        return nn.Dense(self.dim, name="linear_out")(out)


class ConformerLayer(nn.Module):
    heads: int
    dim: int
    ffn: int

    @nn.compact
    def __call__(self, x, pos_emb, allowed):
        attention = RelPositionAttention(self.heads, self.dim, name="self_attn")
        x = x + attention(_layer_norm("norm_mha")(x), pos_emb, allowed)
        y = _layer_norm("norm_ff")(x)
        y = nn.Dense(self.ffn, name="feed_forward.w_1")(y)
        y = nn.Dense(self.dim, name="feed_forward.w_2")(nn.silu(y))
        return x + y


class FlowEncoder(nn.Module):
    """[B, L, input_size] token embeddings, valid [B, L] bool -> [B, L, encoder_size]."""

    cfg: FlowConfig

    @nn.compact
    def __call__(self, x, valid):
        cfg = self.cfg
        x = nn.Dense(cfg.encoder_size, name="embed.out.0")(x)
        x = _layer_norm("embed.out.1")(x) * jnp.float32(math.sqrt(cfg.encoder_size))
        pos_emb = relative_position_table(x.shape[1], cfg.encoder_size)
        allowed = block_causal_mask(valid, cfg.encoder_block_size)
        for i in range(cfg.encoder_layers):
            x = ConformerLayer(cfg.encoder_heads, cfg.encoder_size, cfg.encoder_ffn, name=f"encoders.{i}")(
                x, pos_emb, allowed
            )
        return _layer_norm("after_norm")(x)
