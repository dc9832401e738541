"""Per-group learning rates of the multi-transform, frozen parameters bit-identical, exact accumulation."""

import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.configs import stage2_single_mctp, stage4_sft
from vita_jax.configs.model import tiny
from tests.helpers.train import optim_config, run_steps
from vita_jax.train.random_batch import random_packed_batch
from vita_jax import VitaAudioModel
from vita_jax.sharding import make_mesh
from vita_jax.train.optimizer import make_optimizer
from vita_jax.train.param_groups import FROZEN, apply_updates, param_labels


def two_adam_steps(params, optim, trainable):
    """Two steps on constant gradients: step 0 has LR 0 (warm-up starts at 0), step 1 the peak LR.
    Adam's normalised update of a constant gradient is 1, so a trained leaf moves by exactly -LR."""
    labels = param_labels(params, trainable)
    tx = make_optimizer(optim, total_steps=100, labels=labels)

    @jax.jit
    def two_steps(params):
        state, grads = tx.init(params), jax.tree.map(jnp.ones_like, params)
        for _ in range(2):
            updates, state = tx.update(grads, state, params)
            params = apply_updates(params, updates, labels)
        return params

    return two_steps(params), labels


def test_modules_and_backbone_get_their_own_learning_rates():
    before = VitaAudioModel.random(tiny(), seed=0).params
    optim = optim_config(stage4_sft, weight_decay=0.0, warmup_ratio=0.01)  # warm-up of 1 step
    after, _ = two_adam_steps(before, optim, ("backbone", "mctp"))
    for group, lr in (("backbone", 5e-5), ("mctp_0", 5e-4), ("mctp_2", 5e-4)):
        for old, new in zip(jax.tree.leaves(before[group]), jax.tree.leaves(after[group])):
            np.testing.assert_allclose(np.asarray(old - new), lr, rtol=3e-3)  # float32 rounding of p - lr


def test_frozen_parameters_do_not_move_and_have_no_optimizer_state():
    before = VitaAudioModel.random(tiny(), seed=0).params
    optim = optim_config(stage2_single_mctp, warmup_ratio=0.01)
    after, labels = two_adam_steps(before, optim, ("mctp",))
    for old, new in zip(jax.tree.leaves(before["backbone"]), jax.tree.leaves(after["backbone"])):
        assert np.array_equal(np.asarray(old), np.asarray(new))
    np.testing.assert_allclose(np.asarray(before["mctp_1"]["proj"]["kernel"] - after["mctp_1"]["proj"]["kernel"]),
                               1e-3, rtol=3e-3)
    tx = make_optimizer(optim, 100, labels)
    n_state = sum(x.size for x in jax.tree.leaves(tx.init(before)))
    n_modules = sum(x.size for k, v in before.items() if k != "backbone" for x in jax.tree.leaves(v))
    assert n_state < 2 * n_modules + 100  # Adam's mu and nu for the modules only
    assert set(jax.tree.leaves(labels["backbone"])) == {FROZEN}


def test_frozen_backbone_is_bit_identical_after_train_steps():
    cfg = tiny()
    before = VitaAudioModel.random(cfg, seed=3).params
    batch = random_packed_batch(cfg.vocab_size)
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    after, losses, metrics = run_steps(cfg, before, optim_config(stage2_single_mctp, warmup_ratio=0.01),
                                       ("mctp",), batch, mesh, steps=3)
    for old, new in zip(jax.tree.leaves(before["backbone"]), jax.tree.leaves(after["backbone"])):
        assert np.array_equal(np.asarray(old), np.asarray(new))  # shared embedding / norm / lm_head included
    assert not np.array_equal(before["mctp_0"]["proj"]["kernel"], after["mctp_0"]["proj"]["kernel"])
    assert "loss/main" not in metrics and losses[2] < losses[0]


def test_gradient_accumulation_equals_the_full_batch():
    cfg = tiny().replace(num_mctp_modules=1)
    params = VitaAudioModel.random(cfg, seed=4).params
    batch = random_packed_batch(cfg.vocab_size)
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    optim = optim_config(stage4_sft, warmup_ratio=0.01)
    full, full_loss, _ = run_steps(cfg, params, optim, ("backbone", "mctp"), batch, mesh, steps=2)
    accumulated, acc_loss, _ = run_steps(cfg, params, optim, ("backbone", "mctp"), batch, mesh, steps=2,
                                         microbatches=2)
    np.testing.assert_allclose(acc_loss, full_loss, rtol=1e-5)
    # atol: Adam's first updates are ~lr * sign(g), so a parameter whose gradient is ~0 moves by a
    # rounding-decided amount (fused-loss summation order differs between the two runs)
    for a, b in zip(jax.tree.leaves(accumulated), jax.tree.leaves(full)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
