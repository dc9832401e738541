"""Run configs (ml_collections `get_config(arg)` files): model geometries and the four training
stages. `configs/stage*.py` at the repository root point here; an installed user names a stage
(`vita-jax-train --config stage1_alignment:tiny`) and `resolve_config_arg` finds its file."""

import os

STAGES = ("stage1_alignment", "stage2_single_mctp", "stage3_multi_mctp", "stage4_sft")


def resolve_config_arg(value):
    """'stage1_alignment:tiny' -> '<package>/configs/stage1_alignment.py:tiny'; paths pass unchanged."""
    name, sep, variant = value.partition(":")
    if name in STAGES:
        return os.path.join(os.path.dirname(__file__), f"{name}.py") + sep + variant
    return value
