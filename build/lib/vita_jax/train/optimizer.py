"""The optimizer: AdamW per parameter group (optax.multi_transform), cosine schedule with warm-up,
global-norm clipping over the trained parameters only.

Config (`optim`): lr {group: peak}, trainable (groups), b1, b2, eps, weight_decay, grad_clip,
warmup_ratio. Weight decay applies to matrices (embeddings, kernels), not to norms or biases.
"""

import math

import jax
import optax

from vita_jax.train.param_groups import FROZEN


def schedule(peak_lr, total_steps, warmup_ratio):
    warmup = max(1, math.ceil(warmup_ratio * total_steps))
    return optax.warmup_cosine_decay_schedule(0.0, peak_lr, warmup, max(total_steps, warmup + 1), end_value=0.0)


def group_schedules(optim, total_steps, labels):
    """{group: schedule} for the trained groups present in `labels`."""
    groups = sorted(set(jax.tree.leaves(labels)) - {FROZEN})
    missing = [g for g in groups if g not in optim.lr]
    if missing:
        raise KeyError(f"optim.lr has no learning rate for trained groups {missing}")
    return {g: schedule(float(optim.lr[g]), total_steps, optim.warmup_ratio) for g in groups}


def _decay_mask(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(optim, total_steps, labels):
    """The optax GradientTransformation for `labels` (see param_groups.param_labels)."""
    schedules = group_schedules(optim, total_steps, labels)
    groups = {g: optax.adamw(s, b1=optim.b1, b2=optim.b2, eps=optim.eps, weight_decay=optim.weight_decay,
                             mask=_decay_mask) for g, s in schedules.items()}
    keep_trained = {g: optax.identity() for g in schedules}
    return optax.chain(
        optax.multi_transform({**keep_trained, FROZEN: optax.set_to_zero()}, labels),
        optax.clip_by_global_norm(optim.grad_clip),
        optax.multi_transform({**groups, FROZEN: optax.set_to_zero()}, labels),
    )
