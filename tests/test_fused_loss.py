"""The fused chunked cross-entropy equals the per-head loss over whole float32 logits: values,
accuracies and gradients (every parameter, backbone and modules), packed rows, trained and frozen
backbone; every remat policy gives the same gradients; bad settings fail before compiling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vita_jax import VitaAudioModel
from vita_jax.configs.model import tiny
from vita_jax.nn.remat import REMAT_POLICIES
from vita_jax.nn.vita_audio import VitaAudio
from vita_jax.train.fused_cross_entropy import FusedLossSettings, check_token_chunk, fused_cross_entropy
from vita_jax.train.loss import combine, head_counts, head_offsets, head_sums, head_targets
from vita_jax.train.random_batch import random_packed_batch


def reference_head_sums(module, params, batch, num_modules, main_head, detach_backbone):
    """The loss before fusion: each head's whole [B, T, vocab] float32 logits, log-softmax, lookup."""
    out = module.apply({"params": params}, batch["input_ids"], batch["segment_ids"], batch["positions"],
                       detach_backbone=detach_backbone)
    heads = ([out.logits] if main_head else []) + list(out.mctp_logits)
    nll, correct = [], []
    for logits, offset in zip(heads, head_offsets(num_modules, main_head)):
        targets, valid = head_targets(batch["labels"], batch["segment_ids"], offset)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        token_nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        nll.append(jnp.where(valid, token_nll, 0.0).sum())
        correct.append(((jnp.argmax(logits, -1) == targets) & valid).sum().astype(jnp.float32))
    return jnp.stack(nll), jnp.stack(correct)


def assert_trees_close(got, want, rtol=1e-5):
    """Each leaf within rtol of the reference, relative to the leaf's largest entry."""
    for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want)):
        scale = max(float(jnp.abs(w).max()), 1e-30)
        err = float(jnp.abs(g - w).max()) / scale
        assert err <= rtol, f"{jax.tree_util.keystr(path)}: relative error {err:.2e}"


@pytest.mark.parametrize("main_head", [True, False], ids=["backbone_trained", "backbone_frozen"])
def test_fused_loss_equals_whole_logits_loss_and_gradients(main_head):
    cfg = tiny()  # K = 3, vocab 256: 2 vocabulary blocks of 128 below
    model = VitaAudioModel.random(cfg, seed=3)
    batch = {k: jnp.asarray(v) for k, v in random_packed_batch(cfg.vocab_size, rows=2, seq_len=16, seed=1).items()}
    offsets = head_offsets(cfg.num_mctp_modules, main_head)
    counts = head_counts(batch, offsets)

    def loss(params, sums_fn, **kw):
        nll, correct = sums_fn(model.module, params, batch, cfg.num_mctp_modules, main_head, not main_head, **kw)
        return combine(nll, counts, cfg.num_mctp_modules, main_head, 1.0), (nll, correct)

    (want, (want_nll, want_correct)), want_grads = jax.jit(jax.value_and_grad(
        lambda p: loss(p, reference_head_sums), has_aux=True))(model.params)
    fused = jax.jit(jax.value_and_grad(lambda p: loss(p, head_sums, loss_chunk=4, vocab_block=128), has_aux=True))
    (got, (got_nll, got_correct)), got_grads = fused(model.params)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(got_nll, want_nll, rtol=1e-5)
    np.testing.assert_array_equal(got_correct, want_correct)
    if not main_head:  # the frozen lm_head's gradient is not computed (its optimizer drops it anyway)
        got_grads["backbone"]["lm_head"]["weight"] = want_grads["backbone"]["lm_head"]["weight"]
    assert_trees_close(got_grads, want_grads)


def test_fused_cross_entropy_pads_the_vocabulary_and_breaks_argmax_ties_like_argmax():
    rng = np.random.default_rng(0)
    heads, rows, length, embed, vocab = 2, 2, 6, 8, 300  # 3 blocks of 128 with 84 padding rows
    weight = jnp.asarray(rng.normal(size=(vocab, embed)), jnp.float32).at[7].set(0.0).at[250].set(0.0)
    hidden = jnp.asarray(rng.normal(size=(heads, rows, length, embed)), jnp.float32)
    hidden = hidden.at[0, 0, 0].set(0.0)  # all logits equal: argmax must say 0
    targets = jnp.asarray(rng.integers(0, vocab, (heads, rows, length)), jnp.int32).at[0, 0, 0].set(0)
    valid = jnp.ones((heads, rows, length), bool).at[1, 1, 2].set(False)
    logits = jnp.einsum("hbte,ve->hbtv", hidden, weight)
    want_nll = jnp.where(valid, jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(
        logits, targets[..., None], -1)[..., 0], 0.0).sum((1, 2))
    want_correct = ((jnp.argmax(logits, -1) == targets) & valid).sum((1, 2))
    nll, correct = fused_cross_entropy(weight, hidden, targets, valid, FusedLossSettings(token_chunk=3, vocab_block=128))
    np.testing.assert_allclose(nll, want_nll, rtol=1e-5)
    np.testing.assert_array_equal(correct, want_correct)
    assert int(correct[0]) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("policy", [p for p in REMAT_POLICIES if p not in ("none", "offload_dot_except_mlp")])
def test_remat_policies_give_the_same_gradients(policy):
    cfg = tiny().replace(scan_layers=True, num_mctp_modules=1)
    model = VitaAudioModel.random(cfg, seed=4)
    batch = {k: jnp.asarray(v) for k, v in random_packed_batch(cfg.vocab_size, rows=2, seq_len=16, seed=2).items()}
    counts = head_counts(batch, head_offsets(cfg.num_mctp_modules, True))

    def grads(remat_policy):
        module = VitaAudio(cfg.replace(remat_policy=remat_policy))

        def loss(params):
            nll, _ = head_sums(module, params, batch, cfg.num_mctp_modules, True, False)
            return combine(nll, counts, cfg.num_mctp_modules, True, 1.0)

        return jax.jit(jax.grad(loss))(model.params)

    assert_trees_close(grads(policy), grads("none"))


def test_a_loss_chunk_that_does_not_divide_the_length_is_refused():
    with pytest.raises(ValueError, match="train.loss_chunk=100 does not divide the sequence length 2048"):
        check_token_chunk(100, 2048)
    check_token_chunk(512, 2048)
    check_token_chunk(0, 2048)
