"""Stage 4, supervised fine-tuning: everything trains, the MCTP modules at 10x the backbone's LR."""

from vita_jax.configs.train_base import base_config, finish


def get_config(arg=""):
    cfg = base_config("stage4_sft", num_mctp_modules=10, trainable=("backbone", "mctp"),
                      lr={"backbone": 5e-5, "mctp": 5e-4}, weight_decay=0.1, steps=4000, seq_len=2048)
    return finish(cfg, arg)
