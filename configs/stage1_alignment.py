"""Stage 1, audio-text alignment: the backbone (new vocabulary rows included) trains, no MCTP modules.
Pass this file to train.py (`--config configs/stage1_alignment.py[:tiny]`); the config ships in the package
as vita_jax/configs/stage1_alignment.py, so an installed user can pass `--config stage1_alignment[:tiny]`."""

from vita_jax.configs.stage1_alignment import get_config  # noqa: F401
