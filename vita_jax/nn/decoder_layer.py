"""One Qwen2 decoder layer: x + Attn(RMSNorm(x)), then x + MLP(RMSNorm(x))."""

import flax.linen as nn

from vita_jax.nn.attention import Attention
from vita_jax.nn.dtypes import as_dtype
from vita_jax.nn.mlp import GatedMLP
from vita_jax.nn.norm import RMSNorm
from vita_jax.nn.remat import remat_layer_class
from vita_jax.sharding import constrain

RESIDUAL_AXES = ("batch", "length", None)  # rows split like the batch, features whole


class DecoderLayer(nn.Module):
    config: object  # the model config

    @nn.compact
    def __call__(self, x, cos, sin, mask, kv_cache=None, cache_length=None):
        cfg = self.config
        dtype, param_dtype = as_dtype(cfg.dtype), as_dtype(cfg.param_dtype)
        x = constrain(x, RESIDUAL_AXES)
        attn_out, new_cache = Attention(
            cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, dtype=dtype, param_dtype=param_dtype,
            impl=cfg.attention, name="self_attn",
        )(RMSNorm(cfg.rms_norm_eps, param_dtype, name="input_layernorm")(x), cos, sin, mask, kv_cache, cache_length)
        x = constrain(x + attn_out, RESIDUAL_AXES)
        mlp = GatedMLP(cfg.intermediate_size, dtype=dtype, param_dtype=param_dtype, name="mlp")
        x = x + mlp(RMSNorm(cfg.rms_norm_eps, param_dtype, name="post_attention_layernorm")(x))
        return constrain(x, RESIDUAL_AXES), new_cache


def decoder_layer_class(config):
    """DecoderLayer, wrapped in nn.remat by `config.remat_policy` (same parameters, less training memory)."""
    return remat_layer_class(DecoderLayer, config.remat_policy)
