"""One training step on a (data=2, fsdp=2, tensor=2) mesh of 8 fake CPU devices equals the 1-device step."""

import jax
import numpy as np
import pytest

from vita_jax.configs import stage4_sft
from vita_jax.configs.model import tiny
from tests.helpers.train import optim_config, run_steps
from vita_jax.train.random_batch import random_packed_batch
from vita_jax import VitaAudioModel
from vita_jax.sharding import make_mesh


@pytest.mark.slow
def test_sharded_train_step_matches_single_device():
    if jax.device_count() < 8:
        pytest.fail("needs XLA_FLAGS=--xla_force_host_platform_device_count=8 (set in tests/conftest.py)")
    cfg = tiny().replace(scan_layers=True, num_mctp_modules=2)  # the training layout (test_sharding covers both)
    params = jax.device_get(VitaAudioModel.random(cfg, seed=7).params)
    batch = random_packed_batch(cfg.vocab_size, rows=4)
    # Step 0 runs at LR 0 (warm-up), step 1 moves the parameters. A large Adam eps makes the update
    # linear in the gradient, so the comparison checks the sharded gradients rather than Adam's
    # amplification of rounding in near-zero gradient entries (g / (|g| + eps) flips with them).
    optim = optim_config(stage4_sft, warmup_ratio=0.01, eps=1e-2)
    args = (cfg, params, optim, ("backbone", "mctp"), batch)
    single, single_loss, single_metrics = run_steps(*args, make_mesh(1, 1, 1, devices=jax.devices()[:1]), steps=2)
    sharded, sharded_loss, sharded_metrics = run_steps(*args, make_mesh(2, 2, 2), steps=2)
    np.testing.assert_allclose(sharded_loss, single_loss, rtol=1e-5)
    for name in single_metrics:
        np.testing.assert_allclose(float(sharded_metrics[name]), float(single_metrics[name]), rtol=1e-5, atol=1e-6)
    for path, a, b in zip(jax.tree_util.tree_flatten_with_path(single)[0], jax.tree.leaves(single),
                          jax.tree.leaves(sharded)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=jax.tree_util.keystr(path[0]))
