"""Stage 4, supervised fine-tuning: everything trains, the MCTP modules at 10x the backbone's LR.
Pass this file to train.py (`--config configs/stage4_sft.py[:tiny]`); the config ships in the package
as vita_jax/configs/stage4_sft.py, so an installed user can pass `--config stage4_sft[:tiny]`."""

from vita_jax.configs.stage4_sft import get_config  # noqa: F401
