"""Stage 1, audio-text alignment: the backbone (new vocabulary rows included) trains, no MCTP modules."""

from vita_jax.configs.train_base import base_config, finish


def get_config(arg=""):
    cfg = base_config("stage1_alignment", num_mctp_modules=0, trainable=("backbone",),
                      lr={"backbone": 6e-5}, weight_decay=0.0, steps=8000, seq_len=8192)
    return finish(cfg, arg)
