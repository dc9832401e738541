"""The Qwen2 backbone: token embedding, decoder layers (unrolled or scanned), final RMSNorm, untied lm_head.

Its embedding, final norm and lm_head are also the ones every MCTP module shares.
"""

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from vita_jax.nn.decoder_layer import decoder_layer_class
from vita_jax.nn.dtypes import as_dtype
from vita_jax.nn.norm import RMSNorm
from vita_jax.sharding import constrain


class _ScannedLayerBody(nn.Module):
    """Adapter giving DecoderLayer the (carry, scanned input) signature nn.scan needs."""

    config: object

    @nn.compact
    def __call__(self, x, kv_cache, cos, sin, mask, cache_length):
        layer = decoder_layer_class(self.config)(self.config, name="layer")
        return layer(x, cos, sin, mask, kv_cache, cache_length)


def scanned_layers(config):
    """All backbone layers as one module whose parameters carry a leading `layers` axis."""
    scan = nn.scan(
        _ScannedLayerBody,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
        length=config.num_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )
    return scan(config)


class LMHead(nn.Module):
    """Untied output projection; weight kept as [vocab, embed] like the checkpoint. Float32 logits."""

    vocab_size: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden):
        weight = self.param(
            "weight", nn.with_logical_partitioning(nn.initializers.normal(0.02), ("vocab", "embed")),
            (self.vocab_size, hidden.shape[-1]), self.param_dtype,
        )
        # `hidden @ weight.T`, not an einsum over [V, E]: for one row (batch-1 decoding) XLA's CPU
        # backend then fuses the transpose (and a bfloat16 -> float32 cast) into one pass over the
        # weight: 1.5x faster in float32, ~30x with bfloat16-stored weights (docs/speech-pipeline.md)
        if weight.dtype != self.dtype:
            # a barrier with the hidden state ties the cast to this product: otherwise XLA casts the
            # whole weight once per program (loop-invariant) and every product reads the wider copy
            hidden, weight = lax.optimization_barrier((hidden, weight))
        return jnp.matmul(hidden.astype(self.dtype), weight.astype(self.dtype).T, preferred_element_type=jnp.float32)


class Qwen2Backbone(nn.Module):
    config: object

    def setup(self):
        cfg = self.config
        dtype, param_dtype = as_dtype(cfg.dtype), as_dtype(cfg.param_dtype)
        self.embed_tokens = nn.Embed(
            cfg.vocab_size, cfg.hidden_size, dtype=dtype, param_dtype=param_dtype,
            embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), ("vocab", "embed")),
        )
        if cfg.scan_layers:
            self.layers = scanned_layers(cfg)
        else:
            self.layers = [decoder_layer_class(cfg)(cfg) for _ in range(cfg.num_layers)]  # named layers_0, layers_1, ...
        self.norm = RMSNorm(cfg.rms_norm_eps, param_dtype)
        self.lm_head = LMHead(cfg.vocab_size, dtype=dtype, param_dtype=param_dtype)

    def embed(self, input_ids):
        """Each device looks up its slice of the (embedding-split) table for every row, then the rows
        are split like the batch: the table's gradient is never assembled whole on one device."""
        ids = constrain(input_ids, (None, None))
        return constrain(constrain(self.embed_tokens(ids), (None, None, "embed")), ("batch", "length", None))

    def final_norm(self, x):
        return self.norm(x)

    def logits(self, hidden):
        return self.lm_head(hidden)

    def run_layers(self, x, cos, sin, mask, cache=None, cache_length=None):
        """Apply every decoder layer; `cache` is a tuple of per-layer {"k","v"} (unrolled) or
        one {"k","v"} with a leading layer axis (scanned). Returns (x, updated cache or None)."""
        if self.config.scan_layers:
            return self.layers(x, cache, cos, sin, mask, cache_length)
        new_cache = []
        for i, layer in enumerate(self.layers):
            x, layer_cache = layer(x, cos, sin, mask, None if cache is None else cache[i], cache_length)
            new_cache.append(layer_cache)
        return x, (None if cache is None else tuple(new_cache))
