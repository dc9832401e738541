"""How an LLM's weights are stored for inference: `param_dtype` float32 | bfloat16 | mixed.

`mixed` keeps the lm_head in bfloat16 and every other weight in float32; compute stays float32.
With a bfloat16 checkpoint (the released ones) it holds exactly the checkpoint's values, so the
logits are float32's, while every decoding step reads the 168k-row lm_head at half the bytes:
XLA's CPU backend fuses the bfloat16 -> float32 conversion into the one-row `hidden @ weight.T`
(nn/qwen2.py, docs/speech-pipeline.md). Not the embedding: XLA:CPU gathers bfloat16 rows through
a float32 copy of the whole table. A float32 checkpoint loaded as `mixed` has its lm_head rounded
to bfloat16.
"""

import jax
import jax.numpy as jnp

from vita_jax.nn.dtypes import as_dtype

PARAM_DTYPES = ("float32", "bfloat16", "mixed")
NARROW = "lm_head"  # the parameter-path name of the weights `mixed` keeps in bfloat16


def read_dtype(param_dtype):
    """The dtype every weight is read in (None: as stored); `mixed` reads float32."""
    if param_dtype is not None and param_dtype not in PARAM_DTYPES:
        raise ValueError(f"unknown param_dtype {param_dtype!r}; choose one of {', '.join(PARAM_DTYPES)}")
    return "float32" if param_dtype == "mixed" else param_dtype


def store(params, param_dtype):
    """`params` in the storage `param_dtype` names (None: unchanged); leaves already in their
    target dtype are kept as they are."""
    if param_dtype is None:
        return params
    base = as_dtype(read_dtype(param_dtype))

    def target(path, x):
        names = {getattr(key, "key", None) for key in path}
        dtype = jnp.bfloat16 if param_dtype == "mixed" and NARROW in names else base
        return x if x.dtype == dtype else x.astype(dtype)

    return jax.tree_util.tree_map_with_path(target, params)
