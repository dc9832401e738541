"""Rematerialisation policies for decoder layers (config field `remat_policy`).

  none                 keep every activation of the layer for the backward pass (fastest, most memory)
  full                 keep only the layer's input; recompute everything in the backward pass
  minimal              keep the outputs of the weight matmuls (q/k/v/o, gate/up/down projections);
                       recompute attention and the element-wise ops
  save_dot_except_mlp  keep the attention projections (q/k/v/o), recompute the MLP (its [T, mlp]
                       intermediates are the largest activations)
  offload_dot_except_mlp  as save_dot_except_mlp, but the kept projections move to host memory
                       (backends with pinned host memory: TPU, GPU)
"""

import flax.linen as nn
import jax

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")

POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "minimal": jax.checkpoint_policies.save_only_these_names(*ATTENTION_PROJECTIONS, *MLP_PROJECTIONS),
    "save_dot_except_mlp": jax.checkpoint_policies.save_only_these_names(*ATTENTION_PROJECTIONS),
    "offload_dot_except_mlp": jax.checkpoint_policies.save_and_offload_only_these_names(
        names_which_can_be_saved=[], names_which_can_be_offloaded=list(ATTENTION_PROJECTIONS),
        offload_src="device", offload_dst="pinned_host"),
}
REMAT_POLICIES = ("none", *POLICIES)


def check_remat_policy(name):
    if name not in REMAT_POLICIES:
        raise ValueError(f"unknown remat_policy {name!r}; choose one of {', '.join(REMAT_POLICIES)}")
    return name


def remat_layer_class(layer_class, name):
    """`layer_class` wrapped in nn.remat with the named policy (unchanged for "none")."""
    if check_remat_policy(name) == "none":
        return layer_class
    return nn.remat(layer_class, policy=POLICIES[name])


def remat_function(fn, name):
    """`fn(module, *args)`, a function of a bound Flax module, wrapped in nn.remat with the named
    policy (unchanged for "none")."""
    if check_remat_policy(name) == "none":
        return fn
    return nn.remat(fn, policy=POLICIES[name])
