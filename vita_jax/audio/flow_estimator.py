"""The CFM velocity estimator: Matcha-TTS `ConditionalDecoder`, a 1-D U-Net with transformer blocks.

Layout is channels-last [B, T, C] throughout (spec section 4.1 describes it in [B, C, T]).
`mask` [B, T, 1] marks valid frames. For an all-valid batch the result equals the original;
with padding, GroupNorm statistics and attention keys are restricted to valid frames so a
padded sequence gives the same valid frames as the unpadded one (the original's additive
0/1 attention mask only cancels in the unpadded case, which is the one it is used in).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from vita_jax.audio.decoder_config import FlowConfig
from vita_jax.audio.decoder_layers import Conv1d, ConvTranspose1d, GroupNorm, mish
from vita_jax.audio.head_attention import PER_HEAD_ABOVE, normalized_after, over_heads
from vita_jax.round_up import round_up


def timestep_features(t, dim, scale=1000.0):
    """Sinusoidal embedding [B, dim] of t [B]: sin and cos of scale * t * exp(-i ln(1e4)/(dim/2-1))."""
    half = dim // 2
    freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * jnp.float32(-(math.log(10000.0) / (half - 1))))
    arg = (jnp.float32(scale) * t)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], axis=-1)


QUERY_BLOCK = 1024  # most queries per step within one head


def dense_attention(q, k, v, key_bias):
    """softmax(q k^T / sqrt(d) + key_bias) v on head-major [B, H, T, D] (key_bias [B, 1, 1, T] or None)."""
    scores = jnp.einsum("bhid,bhjd->bhij", q, k) * jnp.float32(1.0 / math.sqrt(q.shape[-1]))
    if key_bias is not None:
        scores = scores + key_bias
    return jnp.einsum("bhij,bhjd->bhid", jax.nn.softmax(scores, axis=-1), v)


def attention(q, k, v, key_bias, query_block=QUERY_BLOCK):
    """`dense_attention` (the same values up to rounding); above PER_HEAD_ABOVE frames one head at a
    time (head_attention), in blocks of at most `query_block` queries (a head's weights <= ~7 MB)."""
    b, h, t, d = q.shape
    if t <= PER_HEAD_ABOVE:
        return dense_attention(q, k, v, key_bias)
    n_blocks = -(-t // query_block)
    block = round_up(-(-t // n_blocks), 8)
    scale = jnp.float32(1.0 / math.sqrt(d))

    def one_head(qh, kh, vh, *bias):
        blocks = jnp.pad(qh * scale, ((0, n_blocks * block - t), (0, 0))).reshape(n_blocks, block, d)

        def query_block_out(qb):
            scores = qb @ kh.T
            return normalized_after(scores + bias[0] if bias else scores, vh)

        return jax.lax.map(query_block_out, blocks).reshape(n_blocks * block, d)[:t]

    return over_heads(one_head, q, k, v, *(() if key_bias is None else (key_bias[:, 0],)))


class Block1D(nn.Module):
    """Mish(GroupNorm_8(Conv_k3(x * m))) * m."""

    features: int

    @nn.compact
    def __call__(self, x, mask):
        y = Conv1d(self.features, 3, padding=1, name="block.0")(x * mask)
        return mish(GroupNorm(8, name="block.1")(y, mask)) * mask


class ResnetBlock1D(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x, mask, temb):
        h = Block1D(self.features, name="block1")(x, mask)
        h = h + nn.Dense(self.features, name="mlp.1")(mish(temb))[:, None, :]
        h = Block1D(self.features, name="block2")(h, mask)
        return h + Conv1d(self.features, 1, name="res_conv")(x * mask)


class TransformerBlock(nn.Module):
    """diffusers BasicTransformerBlock: self-attention and an exact-GELU feed-forward, pre-norm."""

    heads: int
    head_dim: int

    @nn.compact
    def __call__(self, h, key_bias):
        b, t, c = h.shape
        inner = self.heads * self.head_dim
        y = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name="norm1")(h)
        q, k, v = (  # head-major [B, H, T, D]: the fastest layout for the batched matmuls on CPU
            nn.Dense(inner, use_bias=False, name=f"attn1.to_{n}")(y).reshape(b, t, self.heads, self.head_dim)
            .transpose(0, 2, 1, 3)
            for n in "qkv"
        )
        out = attention(q, k, v, key_bias).transpose(0, 2, 1, 3).reshape(b, t, inner)
        h = h + nn.Dense(c, name="attn1.to_out.0")(out)
        y = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name="norm3")(h)
        y = nn.Dense(4 * c, name="ff.net.0.proj")(y)
        return h + nn.Dense(c, name="ff.net.2")(jax.nn.gelu(y, approximate=False))


class FlowEstimator(nn.Module):
    """v(x, mu, t, spks, cond): x, mu, cond [B, T, n_mels], t [B], spks [B, n_mels], mask [B, T, 1]."""

    cfg: FlowConfig

    @nn.compact
    def __call__(self, x, mask, mu, t, spks, cond, padded=True):
        cfg = self.cfg
        ch = cfg.estimator_channels[0]
        temb = timestep_features(t, cfg.estimator_in_channels)
        temb = nn.Dense(4 * ch, name="time_mlp.linear_1")(temb)
        temb = nn.Dense(4 * ch, name="time_mlp.linear_2")(nn.silu(temb))
        h = jnp.concatenate([x, mu, jnp.broadcast_to(spks[:, None, :], x.shape[:2] + spks.shape[-1:]), cond], -1)

        def stage(prefix, h, m):
            h = ResnetBlock1D(ch, name=f"{prefix}.0")(h, m, temb)
            bias = jnp.where(m[:, None, None, :, 0] > 0, 0.0, -jnp.inf) if padded else None
            for j in range(cfg.estimator_transformer_blocks):
                h = TransformerBlock(cfg.estimator_heads, cfg.estimator_head_dim, name=f"{prefix}.1.{j}")(h, bias)
            return h

        masks, skips = [mask], []
        n_down = len(cfg.estimator_channels)
        for i in range(n_down):
            m = masks[-1]
            h = stage(f"down_blocks.{i}", h, m)
            skips.append(h)
            if i < n_down - 1:
                h = Conv1d(ch, 3, stride=2, padding=1, name=f"down_blocks.{i}.2.conv")(h * m)
                masks.append(m[:, ::2])
            else:
                h = Conv1d(ch, 3, padding=1, name=f"down_blocks.{i}.2")(h * m)
        for i in range(cfg.estimator_mid_blocks):
            h = stage(f"mid_blocks.{i}", h, masks[-1])
        for i in range(n_down):
            m = masks.pop()
            skip = skips.pop()
            h = jnp.concatenate([h[:, : skip.shape[1]], skip], axis=-1)
            h = stage(f"up_blocks.{i}", h, m)
            if i < n_down - 1:
                h = ConvTranspose1d(ch, 4, stride=2, padding=1, name=f"up_blocks.{i}.2.conv")(h * m)
            else:
                h = Conv1d(ch, 3, padding=1, name=f"up_blocks.{i}.2")(h * m)
        h = Block1D(ch, name="final_block")(h, mask)
        return Conv1d(cfg.output_size, 1, name="final_proj")(h * mask) * mask
