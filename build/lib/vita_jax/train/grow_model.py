"""Parameters a stage adds to the model it starts from (spec section 6, "Initialisation").

- `grow_mctp_modules`: modules k >= K_old get module k-1's decoder layer (module 0: the
  backbone's last layer) and module k-1's proj and norms (module 0: freshly initialised).
- `resize_vocab`: embedding / lm_head rows beyond the checkpoint's vocabulary (the VITA-Audio
  specials and audio tokens added to a plain Qwen2.5) start at the mean of the existing rows;
  extra checkpoint rows are dropped.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vita_jax.nn.attention import packed_causal_mask
from vita_jax.nn.mctp import MCTPModule
from vita_jax.nn.rotary import rotary_tables


def fresh_module_params(config, rng):
    """A newly initialised MCTP module's parameters (unboxed)."""
    x = jnp.zeros((1, 1, config.hidden_size), jnp.float32)
    cos, sin = rotary_tables(jnp.zeros((1, 1), jnp.int32), config.head_dim, config.rope_theta)
    variables = jax.jit(MCTPModule(config).init)(rng, x, x, cos, sin, packed_causal_mask(jnp.ones((1, 1), jnp.int32)))
    return nn.meta.unbox(variables["params"])


def backbone_last_layer(params, num_layers):
    backbone = params["backbone"]
    if "layers" in backbone:
        return jax.tree.map(lambda x: x[-1], backbone["layers"]["layer"])
    return backbone[f"layers_{num_layers - 1}"]


def grow_mctp_modules(params, config, num_modules, rng):
    """params with modules up to `num_modules` (config: the model config of the grown model)."""
    have = sorted(k for k in params if k.startswith("mctp_"))
    if len(have) > num_modules:
        raise ValueError(f"checkpoint has {len(have)} MCTP modules, the stage config asks for {num_modules}")
    params = dict(params)
    for k in range(len(have), num_modules):
        if k == 0:
            module = {**fresh_module_params(config, rng), "layer": backbone_last_layer(params, config.num_layers)}
        else:
            module = params[f"mctp_{k - 1}"]
        params[f"mctp_{k}"] = jax.tree.map(jnp.copy, module)
    return params


def resize_vocab(params, vocab_size):
    """Embedding and lm_head with `vocab_size` rows (new rows = mean of the old ones)."""
    backbone = dict(params["backbone"])

    def resize(table):
        old = table.shape[0]
        if old >= vocab_size:
            return table[:vocab_size]
        mean = jnp.mean(table.astype(jnp.float32), axis=0, keepdims=True).astype(table.dtype)
        return jnp.concatenate([table, jnp.repeat(mean, vocab_size - old, axis=0)])

    backbone["embed_tokens"] = {"embedding": resize(backbone["embed_tokens"]["embedding"])}
    backbone["lm_head"] = {"weight": resize(backbone["lm_head"]["weight"])}
    return {**params, "backbone": backbone}
