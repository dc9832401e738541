"""Stage 3, multiple MCTP: modules 0..9 train (each new one copied from the one before), backbone frozen."""

from vita_jax.configs.train_base import base_config, finish


def get_config(arg=""):
    cfg = base_config("stage3_multi_mctp", num_mctp_modules=10, trainable=("mctp",),
                      lr={"mctp": 1e-3}, weight_decay=0.0, steps=8000, seq_len=8192)
    return finish(cfg, arg)
