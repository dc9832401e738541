"""Stage 3, multiple MCTP: modules 0..9 train (each new one copied from the one before), backbone frozen.
Pass this file to train.py (`--config configs/stage3_multi_mctp.py[:tiny]`); the config ships in the package
as vita_jax/configs/stage3_multi_mctp.py, so an installed user can pass `--config stage3_multi_mctp[:tiny]`."""

from vita_jax.configs.stage3_multi_mctp import get_config  # noqa: F401
