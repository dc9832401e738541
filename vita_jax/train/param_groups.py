"""Parameter groups from parameter paths: "backbone" (backbone/...), "mctp" (mctp_k/...), "frozen";
VITA-Audio-Plus adds "encoder" (audio_encoder/..., SenseVoice) and "adapter" (audio_adapter/...).

A group that a stage does not train is labelled "frozen": its optimizer is optax.set_to_zero
(no state) and its parameters are returned unchanged (bit-identical) by `apply_updates`.
"""

import jax

BACKBONE, MCTP, FROZEN = "backbone", "mctp", "frozen"
ENCODER, ADAPTER = "encoder", "adapter"
GROUPS = (BACKBONE, MCTP, ENCODER, ADAPTER)
AUDIO_GROUPS = {"audio_encoder": ENCODER, "audio_adapter": ADAPTER}


def group_of(path):
    top = str(getattr(path[0], "key", path[0]))
    if top == "backbone":
        return BACKBONE
    if top.startswith("mctp_"):
        return MCTP
    if top in AUDIO_GROUPS:
        return AUDIO_GROUPS[top]
    raise ValueError(f"parameter {jax.tree_util.keystr(path)} belongs to no group ({', '.join(GROUPS)})")


def param_labels(params, trainable):
    """A tree like `params` of group names; groups not in `trainable` become FROZEN."""
    unknown = set(trainable) - set(GROUPS)
    if unknown:
        raise ValueError(f"optim.trainable: unknown groups {sorted(unknown)}; choose from {GROUPS}")
    return jax.tree_util.tree_map_with_path(
        lambda path, _: group_of(path) if group_of(path) in trainable else FROZEN, params)


def apply_updates(params, updates, labels):
    """params + updates, leaving FROZEN leaves untouched."""
    return jax.tree.map(lambda p, u, label: p if label == FROZEN else (p + u).astype(p.dtype), params, updates, labels)
