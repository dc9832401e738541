"""Stage 2, single MCTP: module 0 trains (its layer copied from the backbone's last layer), backbone frozen.
Pass this file to train.py (`--config configs/stage2_single_mctp.py[:tiny]`); the config ships in the package
as vita_jax/configs/stage2_single_mctp.py, so an installed user can pass `--config stage2_single_mctp[:tiny]`."""

from vita_jax.configs.stage2_single_mctp import get_config  # noqa: F401
