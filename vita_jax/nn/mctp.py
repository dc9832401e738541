"""One MCTP module (spec section 5): u = proj([embed_norm(E[x]), hidden_norm(h_prev)]), then one decoder layer.

The caller applies the backbone's shared final norm and lm_head to the layer output, and
rematerialises the whole module for training (vita_audio.py), so its layer is not wrapped again.
"""

import flax.linen as nn
import jax.numpy as jnp

from vita_jax.nn.decoder_layer import DecoderLayer
from vita_jax.nn.dtypes import as_dtype
from vita_jax.nn.norm import RMSNorm


class MCTPModule(nn.Module):
    config: object

    @nn.compact
    def __call__(self, token_embeddings, prev_hidden, cos, sin, mask, kv_cache=None, cache_length=None):
        """token_embeddings: E[x_{j+k+1}], prev_hidden: h^{k-1}_j, both [B, T, E]."""
        cfg = self.config
        dtype, param_dtype = as_dtype(cfg.dtype), as_dtype(cfg.param_dtype)
        embedded = RMSNorm(cfg.rms_norm_eps, param_dtype, name="embed_norm")(token_embeddings)
        hidden = RMSNorm(cfg.rms_norm_eps, param_dtype, name="hidden_norm")(prev_hidden)
        u = nn.Dense(
            cfg.hidden_size, use_bias=False, dtype=dtype, param_dtype=param_dtype, name="proj",
            kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("concat_embed", "embed")),
        )(jnp.concatenate([embedded, hidden], axis=-1))
        return DecoderLayer(cfg, name="layer")(u, cos, sin, mask, kv_cache, cache_length)
