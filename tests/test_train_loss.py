"""The packed-batch losses equal a naive computation on each sample alone (spec sections 5, 6)."""

import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.configs.model import tiny
from vita_jax import VitaAudioModel
from vita_jax.data.chat_template import IGNORE
from vita_jax.data.packing import empty_row
from vita_jax.train.loss import combine, head_counts, head_offsets, head_sums


def random_samples(rng, lengths, vocab):
    samples = []
    for n in lengths:
        ids = rng.integers(0, vocab, n).astype(np.int32)
        labels = np.where(rng.random(n) < 0.7, ids, IGNORE).astype(np.int32)
        samples.append((ids, labels))
    return samples


def pack(rows_of_samples, seq_len):
    rows = []
    for samples in rows_of_samples:
        row, used = empty_row(seq_len), 0
        for s, (ids, labels) in enumerate(samples, 1):
            n = len(ids)
            row["input_ids"][used:used + n], row["labels"][used:used + n] = ids, labels
            row["segment_ids"][used:used + n], row["positions"][used:used + n] = s, np.arange(n)
            used += n
        rows.append(row)
    return {k: jnp.asarray(np.stack([r[k] for r in rows])) for k in ("input_ids", "labels", "segment_ids", "positions")}


def naive_head_sums(model, ids, labels, num_modules):
    """NLL sums and correct counts per head for one unpacked sample, straight from the full logits."""
    out = model.forward(ids[None])
    heads = [np.asarray(out.logits[0])] + [np.asarray(m[0]) for m in out.mctp_logits]
    nll, correct = [], []
    for logits, offset in zip(heads, head_offsets(num_modules, True)):
        total, right = 0.0, 0
        for j in range(len(ids) - offset):  # module k on n tokens: n-k-1 pairs, the last has no target
            target = labels[j + offset]
            if target == IGNORE:
                continue
            row = logits[j].astype(np.float64)
            total += np.log(np.exp(row - row.max()).sum()) + row.max() - row[target]
            right += int(np.argmax(logits[j]) == target)
        nll.append(total)
        correct.append(right)
    return np.array(nll), np.array(correct)


def test_packed_losses_equal_per_sample_losses():
    cfg = tiny()  # K = 3
    model = VitaAudioModel.random(cfg, seed=1)
    rng = np.random.default_rng(0)
    samples = random_samples(rng, [7, 3, 9, 9, 3, 7], cfg.vocab_size)  # 3 lengths: 3 compiles
    batch = pack([samples[:3], samples[3:]], seq_len=24)  # rows of 19 tokens + padding
    nll, correct = head_sums(model.module, model.params, batch, cfg.num_mctp_modules, True, False)
    want_nll, want_correct = np.zeros(4), np.zeros(4)
    for ids, labels in samples:
        n, c = naive_head_sums(model, ids, labels, cfg.num_mctp_modules)
        want_nll, want_correct = want_nll + n, want_correct + c
    np.testing.assert_allclose(np.asarray(nll), want_nll, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(correct), want_correct)

    counts = np.asarray(head_counts(batch, head_offsets(cfg.num_mctp_modules, True)))
    want_counts = [sum(int((labels[o:] != IGNORE).sum()) for _, labels in samples) for o in (1, 2, 3, 4)]
    np.testing.assert_array_equal(counts, want_counts)
    loss = combine(nll, jnp.asarray(counts), 3, True, 1.0)
    per_head = want_nll / np.asarray(want_counts)
    np.testing.assert_allclose(float(loss), per_head[0] + per_head[1:].sum() / 3, rtol=1e-5)


def test_frozen_backbone_drops_the_main_loss_and_its_gradient():
    cfg = tiny().replace(num_mctp_modules=1)
    model = VitaAudioModel.random(cfg, seed=2)
    batch = pack([random_samples(np.random.default_rng(1), [6, 8], cfg.vocab_size)], seq_len=16)
    offsets = head_offsets(cfg.num_mctp_modules, False)
    counts = head_counts(batch, offsets)

    def loss(params):
        nll, _ = head_sums(model.module, params, batch, cfg.num_mctp_modules, False, True)
        return combine(nll, counts, cfg.num_mctp_modules, False, 1.0)

    grads = jax.grad(loss)(model.params)
    layer_grads = jax.tree.leaves(grads["backbone"]["layers_0"])
    assert all(float(jnp.abs(g).max()) == 0.0 for g in layer_grads)  # stop-gradient into the backbone
    assert float(jnp.abs(grads["mctp_0"]["proj"]["kernel"]).max()) > 0
