"""The Plus audio adapter (`model.audio_projection`, spec section 3): LayerNorm(512) -> Linear
512 -> H (no bias) -> exact GELU -> Linear H -> H (no bias), one output row per encoder row."""

import flax.linen as nn

from vita_jax.nn.dtypes import as_dtype
from vita_jax.plus.sensevoice import LayerNorm


class AudioAdapter(nn.Module):
    hidden_size: int
    dtype: str = "float32"
    param_dtype: str = "float32"

    @nn.compact
    def __call__(self, encoded):
        """encoded [..., 512] -> [..., hidden_size]."""
        dtype, param_dtype = as_dtype(self.dtype), as_dtype(self.param_dtype)

        def linear(axes, name):
            return nn.Dense(self.hidden_size, use_bias=False, dtype=dtype, param_dtype=param_dtype, name=name,
                            kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes))

        z = LayerNorm(param_dtype, name="pre_proj_layernorm")(encoded)
        z = nn.gelu(linear(("audio_embed", "mlp"), "mlp_0")(z.astype(dtype)), approximate=False)
        return linear(("mlp", "embed"), "mlp_2")(z)
