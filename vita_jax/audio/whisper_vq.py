"""GLM-4-Voice Whisper-VQ encoder (Flax Linen): log-mel frames -> 12.5 Hz codebook ids.

causal conv (stride 1) -> causal conv (stride 2) -> + learned positions
-> `num_layers` pre-LN Whisper layers under a block-causal mask -> average pool
-> nearest codebook row (squared Euclidean distance).
A batch of segments can run packed (`Packing`): the per-frame work (projections, FFN, layer
norms, the codebook search, 90%+ of the FLOPs) then runs on the segments' frames laid end to end
with no padding, and only the convolutions and attention on padded rows.
The layer weights are stacked (one leading axis, the checkpoint layout). `init` and a stacked
tree run the layers under `nn.scan`; the SpeechTokenizer passes them as a tuple of per-layer trees,
run unrolled: under the scan XLA copied each layer's weights out of the stack on every iteration,
15% of a 5 s utterance's encoder time on a 2-core CPU (1.0-1.05 s unrolled against 1.08-1.36 s).
"""

import dataclasses
import typing

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.audio.head_attention import PER_HEAD_ABOVE, normalized_after, over_heads


@dataclasses.dataclass(frozen=True)
class WhisperVQConfig:
    """Sizes of the encoder; the structure (causal convs, avg pooling, VQ at the pooling
    layer, encoder only) is fixed and checked when a `config.json` is imported."""

    num_mel_bins: int = 128
    d_model: int = 1280
    num_heads: int = 20
    ffn_dim: int = 5120
    num_layers: int = 16  # `quantize_position`: layers after it are not built
    max_source_positions: int = 1500
    block_size: int = 200  # `quantize_causal_block_size`, in 50 Hz frames
    pool_size: int = 4  # `pooling_kernel_size`
    codebook_size: int = 16384  # `quantize_vocab_size`
    layer_norm_eps: float = 1e-5

    @property
    def frames_per_token(self):
        """Log-mel frames per code: conv2 stride (2) x pooling."""
        return 2 * self.pool_size


class Packing(typing.NamedTuple):
    """Where the frames of a packed batch live. Packed: [N, ...], the valid frames of every row
    laid end to end (then filler up to N); rows: [B, T, ...], each segment padded to T."""

    packed_to_rows: jax.Array  # [N] int32: b * T + t of each packed frame (any valid index for filler)
    rows_to_packed: jax.Array  # [B, T] int32: packed index of each row frame, N where it is padding

    @classmethod
    def of(cls, lengths, rows, row_frames, packed_frames):
        """The first `lengths[b]` frames of each row b (of `rows` rows of `row_frames`) end to end,
        then filler up to `packed_frames` (host numpy)."""
        if sum(lengths) > packed_frames or max(lengths) > row_frames or len(lengths) > rows:
            raise ValueError(f"cannot pack rows of {list(lengths)} frames into {rows} rows of {row_frames}"
                             f" and {packed_frames} packed frames")
        packed_to_rows = np.zeros(packed_frames, np.int32)
        rows_to_packed = np.full((rows, row_frames), packed_frames, np.int32)
        start = 0
        for row, n in enumerate(lengths):
            span = np.arange(n, dtype=np.int32)
            packed_to_rows[start + span] = row * row_frames + span
            rows_to_packed[row, span] = start + span
            start += n
        return cls(packed_to_rows, rows_to_packed)

    def rows(self, packed):
        """[N, D] -> [B, T, D], zeros at padding."""
        return jnp.concatenate([packed, jnp.zeros_like(packed[:1])])[self.rows_to_packed]

    def packed(self, rows):
        """[B, T, D] -> [N, D]."""
        return rows.reshape(-1, rows.shape[-1])[self.packed_to_rows]


def _block_causal(q, k, v, key_mask, block_size):
    """`block_causal_attention` on [..., T, head_dim] arrays, key_mask broadcastable to [..., 1, T]."""
    length, outputs = q.shape[-2], []
    for start in range(0, length, block_size):
        stop = min(start + block_size, length)
        scores = q[..., start:stop, :] @ jnp.swapaxes(k[..., :stop, :], -1, -2)
        scores = jnp.where(key_mask[..., :stop], scores, jnp.finfo(scores.dtype).min)
        outputs.append(normalized_after(scores, v[..., :stop, :]))
    return jnp.concatenate(outputs, axis=-2)


def block_causal_attention(q, k, v, key_mask, block_size):
    """Softmax attention under GLM's block-causal mask, computing only the allowed blocks.

    q, k, v [B, H, T, head_dim]; key_mask [B, T]. Query i may see key j iff key j is valid
    and `j <= i or i // block == j // block`, i.e. iff j's block is not after i's block:
    so the queries of block b attend to the valid keys [0, end of block b). Above
    PER_HEAD_ABOVE frames it runs one head at a time (head_attention: 118 -> 51 ms per layer
    for a 30 s segment on a 2-core EPYC).
    """
    if q.shape[2] <= PER_HEAD_ABOVE:
        return _block_causal(q, k, v, key_mask[:, None, None, :], block_size)
    return over_heads(lambda qh, kh, vh, mask: _block_causal(qh, kh, vh, mask[None, :], block_size), q, k, v, key_mask)


class SelfAttention(nn.Module):
    """Whisper multi-head self-attention (k_proj has no bias) under the block-causal mask;
    x [B, T, D], or packed [N, D] with its `packing`."""

    d_model: int
    num_heads: int
    block_size: int

    @nn.compact
    def __call__(self, x, key_mask, packing=None):
        batch, length = key_mask.shape
        head_dim = self.d_model // self.num_heads

        def heads(t):
            t = t if packing is None else packing.rows(t)
            return t.reshape(batch, length, self.num_heads, head_dim).transpose(0, 2, 1, 3)

        q = heads(nn.Dense(self.d_model, name="q_proj")(x) * head_dim**-0.5)
        k = heads(nn.Dense(self.d_model, use_bias=False, name="k_proj")(x))
        v = heads(nn.Dense(self.d_model, name="v_proj")(x))
        out = block_causal_attention(q, k, v, key_mask, self.block_size)
        out = out.transpose(0, 2, 1, 3).reshape(batch, length, self.d_model)
        return nn.Dense(self.d_model, name="out_proj")(out if packing is None else packing.packed(out))


class EncoderLayer(nn.Module):
    """Pre-LN Whisper encoder layer on h [B, T, D] or packed [N, D]; the (carry, key_mask, packing)
    signature suits `nn.scan`."""

    config: WhisperVQConfig

    @nn.compact
    def __call__(self, h, key_mask, packing=None):
        cfg = self.config
        norm = lambda name: nn.LayerNorm(epsilon=cfg.layer_norm_eps, use_fast_variance=False, name=name)  # noqa: E731
        attention = SelfAttention(cfg.d_model, cfg.num_heads, cfg.block_size, name="self_attn")
        h = h + attention(norm("self_attn_layer_norm")(h), key_mask, packing)
        ffn = nn.Dense(cfg.ffn_dim, name="fc1")(norm("final_layer_norm")(h))
        h = h + nn.Dense(cfg.d_model, name="fc2")(nn.gelu(ffn, approximate=False))
        return h, None


def nearest_code(hidden, codebook):
    """argmin_c ||h - c||^2 as GLM computes it: (||c||^2 + ||h||^2) - 2 h.c (first index on ties)."""
    distances = (jnp.sum(codebook**2, axis=-1) + jnp.sum(hidden**2, axis=-1, keepdims=True)) - 2.0 * (
        hidden @ codebook.T
    )
    return jnp.argmin(distances, axis=-1).astype(jnp.int32)


class WhisperVQEncoder(nn.Module):
    """features [B, T, num_mel_bins] (T a multiple of 2 * pool_size), frame_mask [B, T]
    -> codes [B, T // (2 * pool_size)]; `pooled_hidden` gives the vectors that are quantized.
    With a `packing` of the 50 Hz frames (each row's frames a whole number of codes) the codes
    come packed: [N // pool_size]."""

    config: WhisperVQConfig

    def setup(self):
        cfg = self.config
        self.conv1 = nn.Conv(cfg.d_model, kernel_size=(3,), strides=(1,), padding=[(2, 0)])
        self.conv2 = nn.Conv(cfg.d_model, kernel_size=(3,), strides=(2,), padding=[(2, 0)])
        self.embed_positions = self.param(
            "embed_positions", nn.initializers.normal(0.02), (cfg.max_source_positions, cfg.d_model)
        )
        self.layers = nn.scan(
            EncoderLayer,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast, nn.broadcast),
            length=cfg.num_layers,
        )(cfg)
        self.codebook = self.param("codebook", nn.initializers.normal(1.0), (cfg.codebook_size, cfg.d_model))

    def pooled_hidden(self, features, frame_mask, packing=None):
        """Hidden states after the last layer, average-pooled: [B, T // (2 * pool_size), d_model]
        (packed: [N // pool_size, d_model])."""
        cfg = self.config
        if features.shape[1] % cfg.frames_per_token:
            raise ValueError(
                f"{features.shape[1]} feature frames: not a multiple of {cfg.frames_per_token} frames per code"
            )
        h = nn.gelu(self.conv1(features), approximate=False)
        h = nn.gelu(self.conv2(h), approximate=False)
        length = h.shape[1]
        if length > cfg.max_source_positions:
            raise ValueError(f"{length} frames after conv2 exceed max_source_positions={cfg.max_source_positions}")
        h = h + self.embed_positions[:length]
        if packing is not None:
            h = packing.packed(h)
        h = self.run_layers(h, frame_mask[:, ::2], packing)
        *lead, frames, width = h.shape
        return h.reshape(*lead, frames // cfg.pool_size, cfg.pool_size, width).mean(axis=-2)

    def run_layers(self, h, key_mask, packing):
        """Every layer: under `nn.scan` over the stacked weights, or unrolled when the weights were
        given as a tuple of per-layer trees (speech_tokenizer.unstack_layers)."""
        layers = self.get_variable("params", "layers")
        if not isinstance(layers, tuple):
            return self.layers(h, key_mask, packing)[0]
        layer = EncoderLayer(self.config, parent=None)  # unbound: applied to explicit weights
        for weights in layers:
            h, _ = layer.apply({"params": weights}, h, key_mask, packing)
        return h

    def __call__(self, features, frame_mask, packing=None):
        return nearest_code(self.pooled_hidden(features, frame_mask, packing), self.codebook)
