"""The SenseVoice-Small encoder (spec section 2) as Flax Linen modules.

Per audio: 4 query rows from the `embed` table ([language, event, emotion, text norm]) are put
in front of the LFR features, the sequence is scaled by sqrt(output_size), sinusoidal positions
1..T+4 are added, then the SAN-M layers run: `encoders0` (input 560 -> 512, no residual around
its attention), `encoders` (num_blocks - 1 layers) + `after_norm`, `tp_encoders` (tp_blocks) +
`tp_norm`. Padded batches: rows >= length are masked out of attention keys and the FSMN memory,
so valid rows do not depend on the padding. Same-width layers are stacked (`nn.scan`) on a
leading `layers` axis.
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from vita_jax.nn.dtypes import as_dtype

NUM_QUERIES = 4
LANGUAGE_QUERIES = {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12, "nospeech": 13}
TEXTNORM_QUERIES = {"withitn": 14, "woitn": 15}


@dataclasses.dataclass(frozen=True)
class SenseVoiceConfig:
    """Encoder geometry (SenseVoiceSmall `config.yaml` encoder_conf) and compute settings."""

    input_size: int = 560
    output_size: int = 512
    attention_heads: int = 4
    linear_units: int = 2048
    num_blocks: int = 50       # encoders0 + encoders: the first layer counts
    tp_blocks: int = 20
    kernel_size: int = 11
    query_rows: int = 16
    language: str = "auto"     # the VITA code always uses auto / woitn
    textnorm: str = "woitn"
    dtype: str = "float32"
    param_dtype: str = "float32"

    def __post_init__(self):
        if self.output_size % self.attention_heads:
            raise ValueError(f"SenseVoice config: output_size {self.output_size} is not a multiple of "
                             f"attention_heads {self.attention_heads}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"SenseVoice config: kernel_size must be odd, got {self.kernel_size}")
        if self.num_blocks < 1 or self.tp_blocks < 0:
            raise ValueError(f"SenseVoice config: num_blocks {self.num_blocks} must be >= 1, tp_blocks "
                             f"{self.tp_blocks} >= 0")
        if self.language not in LANGUAGE_QUERIES or self.textnorm not in TEXTNORM_QUERIES:
            raise ValueError(f"SenseVoice config: language {self.language!r} / textnorm {self.textnorm!r} "
                             f"not in {sorted(LANGUAGE_QUERIES)} / {sorted(TEXTNORM_QUERIES)}")


def sinusoidal_positions(length, depth):
    """FunASR SinusoidalPositionEncoder: positions 1..length, [sin(p inv) ..., cos(p inv) ...]."""
    increment = math.log(10000.0) / (depth / 2 - 1)
    inv = jnp.exp(jnp.arange(depth // 2, dtype=jnp.float32) * -increment)
    scaled = jnp.arange(1, length + 1, dtype=jnp.float32)[:, None] * inv[None]
    return jnp.concatenate([jnp.sin(scaled), jnp.cos(scaled)], axis=-1)


class LayerNorm(nn.Module):
    """LayerNorm (eps 1e-5, `scale` and `bias`) computed in float32, cast back to the input dtype."""

    param_dtype: jnp.dtype = jnp.float32
    axis_name: str = "audio_embed"

    @nn.compact
    def __call__(self, x):
        axes = (self.axis_name,)
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, axes), (x.shape[-1],),
                           self.param_dtype)
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, axes), (x.shape[-1],),
                          self.param_dtype)
        x32 = x.astype(jnp.float32)
        mean = x32.mean(axis=-1, keepdims=True)
        centred = x32 - mean
        normed = centred * jax.lax.rsqrt((centred * centred).mean(axis=-1, keepdims=True) + 1e-5)
        return (normed * scale.astype(jnp.float32) + bias.astype(jnp.float32)).astype(x.dtype)


def _dense(features, axes, dtype, param_dtype, name, use_bias=True):
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, name=name,
                    kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]))


class SanmLayer(nn.Module):
    """One pre-norm SAN-M layer: attention + FSMN memory on v, then a ReLU feed-forward."""

    config: SenseVoiceConfig
    input_size: int

    @nn.compact
    def __call__(self, x, mask):
        """x [A, L, input_size], mask [A, L] bool (True = real row). Returns [A, L, output_size]."""
        cfg = self.config
        dtype, param_dtype = as_dtype(cfg.dtype), as_dtype(cfg.param_dtype)
        width, heads = cfg.output_size, cfg.attention_heads
        in_axis = "audio_input" if self.input_size != width else "audio_embed"
        y = LayerNorm(param_dtype, in_axis, name="norm1")(x)
        qkv = _dense(3 * width, (in_axis, "audio_qkv"), dtype, param_dtype, "linear_q_k_v")(y)
        q, k, v = jnp.split(qkv, 3, axis=-1)

        keep = mask[..., None].astype(v.dtype)
        memory = v * keep
        taps = self.param("fsmn_block", nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                                     ("audio_kernel", "audio_embed")),
                          (cfg.kernel_size, width), param_dtype).astype(dtype)
        half = (cfg.kernel_size - 1) // 2
        padded = jnp.pad(memory, ((0, 0), (half, half), (0, 0)))
        length = x.shape[1]
        conv = sum(padded[:, j:j + length] * taps[j] for j in range(cfg.kernel_size))
        fsmn = (conv + memory) * keep

        batch, d_k = x.shape[0], width // heads
        split = lambda t: t.reshape(batch, length, heads, d_k)  # noqa: E731
        scores = jnp.einsum("bthd,bshd->bhts", split(q) * d_k ** -0.5, split(k),
                            preferred_element_type=jnp.float32)
        key_mask = mask[:, None, None, :]
        scores = jnp.where(key_mask, scores, jnp.finfo(jnp.float32).min)
        probs = jnp.where(key_mask, jax.nn.softmax(scores, axis=-1), 0.0).astype(v.dtype)
        attended = jnp.einsum("bhts,bshd->bthd", probs, split(v)).reshape(batch, length, width)
        sanm = _dense(width, ("audio_embed", "audio_embed_out"), dtype, param_dtype, "linear_out")(attended) + fsmn
        x = x + sanm if self.input_size == width else sanm

        y = LayerNorm(param_dtype, name="norm2")(x)
        hidden = nn.relu(_dense(cfg.linear_units, ("audio_embed", "audio_mlp"), dtype, param_dtype, "w_1")(y))
        return x + _dense(width, ("audio_mlp", "audio_embed"), dtype, param_dtype, "w_2")(hidden)


class _ScannedSanm(nn.Module):
    config: SenseVoiceConfig

    @nn.compact
    def __call__(self, x, mask):
        return SanmLayer(self.config, self.config.output_size, name="layer")(x, mask), None


def sanm_stack(config, count, name):
    """`count` same-width SAN-M layers with parameters stacked on a leading `layers` axis."""
    scan = nn.scan(_ScannedSanm, variable_axes={"params": 0}, split_rngs={"params": True},
                   in_axes=nn.broadcast, length=count, metadata_params={nn.PARTITION_NAME: "layers"})
    return scan(config, name=name)


class SenseVoiceEncoder(nn.Module):
    config: SenseVoiceConfig

    @nn.compact
    def __call__(self, features, lengths):
        """features [A, T, input_size] (rows >= lengths[a] are padding), lengths [A] int.
        Returns (encoder output [A, T + 4, output_size], lengths + 4)."""
        cfg = self.config
        dtype, param_dtype = as_dtype(cfg.dtype), as_dtype(cfg.param_dtype)
        table = self.param("embed", nn.with_logical_partitioning(nn.initializers.normal(1.0),
                                                                 ("audio_queries", "audio_input")),
                           (cfg.query_rows, cfg.input_size), param_dtype)
        query_ids = jnp.array([LANGUAGE_QUERIES[cfg.language], 1, 2, TEXTNORM_QUERIES[cfg.textnorm]])
        queries = jnp.broadcast_to(table[query_ids].astype(dtype), (features.shape[0], NUM_QUERIES, cfg.input_size))
        x = jnp.concatenate([queries, features.astype(dtype)], axis=1)
        lengths = lengths + NUM_QUERIES
        mask = jnp.arange(x.shape[1])[None] < lengths[:, None]
        x = x * math.sqrt(cfg.output_size) + sinusoidal_positions(x.shape[1], cfg.input_size).astype(dtype)
        x = SanmLayer(cfg, cfg.input_size, name="encoders0")(x, mask)
        if cfg.num_blocks > 1:
            x, _ = sanm_stack(cfg, cfg.num_blocks - 1, "encoders")(x, mask)
        x = LayerNorm(param_dtype, name="after_norm")(x)
        if cfg.tp_blocks:
            x, _ = sanm_stack(cfg, cfg.tp_blocks, "tp_encoders")(x, mask)
        x = LayerNorm(param_dtype, name="tp_norm")(x)
        return x, lengths
