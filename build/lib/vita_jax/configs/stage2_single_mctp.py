"""Stage 2, single MCTP: module 0 trains (its layer copied from the backbone's last layer), backbone frozen."""

from vita_jax.configs.train_base import base_config, finish


def get_config(arg=""):
    cfg = base_config("stage2_single_mctp", num_mctp_modules=1, trainable=("mctp",),
                      lr={"mctp": 1e-3}, weight_decay=0.0, steps=4000, seq_len=8192)
    return finish(cfg, arg)
