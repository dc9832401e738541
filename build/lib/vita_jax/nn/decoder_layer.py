"""One Qwen2 decoder layer: x + Attn(RMSNorm(x)), then x + MLP(RMSNorm(x))."""

import flax.linen as nn

from vita_jax.nn.attention import Attention
from vita_jax.nn.dtypes import as_dtype
from vita_jax.nn.mlp import GatedMLP
from vita_jax.nn.norm import RMSNorm


class DecoderLayer(nn.Module):
    config: object  # the model ConfigDict

    @nn.compact
    def __call__(self, x, cos, sin, mask, kv_cache=None, cache_length=None):
        cfg = self.config
        dtype, param_dtype = as_dtype(cfg.dtype), as_dtype(cfg.param_dtype)
        attn_out, new_cache = Attention(
            cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, dtype=dtype, param_dtype=param_dtype, name="self_attn"
        )(RMSNorm(cfg.rms_norm_eps, param_dtype, name="input_layernorm")(x), cos, sin, mask, kv_cache, cache_length)
        x = x + attn_out
        mlp = GatedMLP(cfg.intermediate_size, dtype=dtype, param_dtype=param_dtype, name="mlp")
        x = x + mlp(RMSNorm(cfg.rms_norm_eps, param_dtype, name="post_attention_layernorm")(x))
        return x, new_cache


def decoder_layer_class(config):
    """DecoderLayer, wrapped in nn.remat when `config.remat` (same parameters, less training memory)."""
    return nn.remat(DecoderLayer) if config.remat else DecoderLayer
