"""An interrupted run resumed from its checkpoint reproduces the uninterrupted losses bit for bit
(data order included), also when the newest checkpoint is corrupt and the previous one is used."""

import os
import shutil

import numpy as np
import pytest

from vita_jax.configs import stage4_sft
from tests.helpers.train import tiny_run_config
from vita_jax.train.loop import train


@pytest.mark.slow
def test_resume_after_interruption_is_bit_identical(tmp_path):
    steps = 6
    whole = train(tiny_run_config(stage4_sft, tmp_path / "whole", steps, num_mctp_modules=1), progress=False)
    assert sorted(whole.losses) == list(range(1, steps + 1))

    cfg = tiny_run_config(stage4_sft, tmp_path / "cut", steps, num_mctp_modules=1)
    first = train(cfg, progress=False, stop_after_steps=5)  # "crashes" after step 5; saved at 1, 2, 4
    assert [first.losses[s] for s in range(1, 6)] == [whole.losses[s] for s in range(1, 6)]
    checkpoints = tmp_path / "cut" / "checkpoints"
    assert sorted(int(p) for p in os.listdir(checkpoints) if p.isdigit()) == [1, 2, 4]

    shutil.rmtree(checkpoints / "4" / "state")  # a corrupt newest checkpoint: resume from step 2
    resumed = train(cfg, progress=False)
    assert sorted(resumed.losses) == [3, 4, 5, 6]
    assert [resumed.losses[s] for s in range(3, 7)] == [whole.losses[s] for s in range(3, 7)]
    assert resumed.final_step == steps and np.isfinite(list(resumed.losses.values())).all()
