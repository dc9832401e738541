"""SiLU-gated MLP: down(silu(gate(x)) * up(x)), no biases."""

import flax.linen as nn
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from vita_jax.sharding import constrain


class GatedMLP(nn.Module):
    intermediate_size: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        def dense(features, axes, name):
            out = nn.Dense(
                features, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype, name=name,
                kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes),
            )
            return lambda h: checkpoint_name(out(h), name)

        gate = dense(self.intermediate_size, ("embed", "mlp"), "gate_proj")(x)
        up = dense(self.intermediate_size, ("embed", "mlp"), "up_proj")(x)
        hidden = constrain(nn.silu(gate) * up, ("batch", "length", "mlp"))
        return dense(x.shape[-1], ("mlp", "embed"), "down_proj")(hidden)
