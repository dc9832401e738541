"""Flax backbone vs transformers.Qwen2ForCausalLM, and MCTP modules vs the torch reference of spec section 5."""

import numpy as np
import pytest
import torch

import vita_jax
from tests.helpers.hf_fixtures import make_mtp_checkpoint, make_qwen2_checkpoint

TOL = 1e-4


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    path = tmp_path_factory.mktemp("qwen2")
    reference = make_qwen2_checkpoint(str(path))
    return reference, str(path)


@pytest.fixture(scope="module")
def mtp(tmp_path_factory):
    path = tmp_path_factory.mktemp("mtp")
    reference = make_mtp_checkpoint(str(path), num_mctp=3)
    return reference, vita_jax.load_pretrained(str(path), progress=False)


def hf_logits(model, ids, attention_mask=None):
    with torch.no_grad():
        mask = None if attention_mask is None else torch.tensor(attention_mask)
        return model(torch.tensor(ids), attention_mask=mask).logits.numpy()


@pytest.mark.parametrize("scan_layers", [False, True])
@pytest.mark.parametrize("length", [1, 7, 33])
def test_backbone_matches_transformers(qwen2, length, scan_layers):
    reference, path = qwen2
    model = vita_jax.load_pretrained(path, scan_layers=scan_layers, progress=False)
    ids = np.random.default_rng(length).integers(0, 256, (2, length))
    got = np.asarray(model.forward(ids).logits)
    assert np.abs(got - hf_logits(reference, ids)).max() <= TOL


def test_backbone_right_padding_matches_transformers(qwen2):
    reference, path = qwen2
    model = vita_jax.load_pretrained(path, progress=False)
    ids = np.random.default_rng(1).integers(0, 256, (2, 12))
    mask = np.ones((2, 12), np.int64)
    mask[1, 8:] = 0
    got = np.asarray(model.forward(ids, segment_ids=mask).logits)
    want = hf_logits(reference, ids, mask)
    assert np.abs(got - want)[mask.astype(bool)].max() <= TOL


def test_backbone_packed_rows_match_separate_samples(qwen2):
    reference, path = qwen2
    model = vita_jax.load_pretrained(path, progress=False)
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 256, (1, 9)), rng.integers(0, 256, (1, 6))
    packed = np.concatenate([a, b, np.zeros((1, 3), np.int64)], axis=1)
    segments = np.array([[1] * 9 + [2] * 6 + [0] * 3])
    positions = np.array([list(range(9)) + list(range(6)) + [0] * 3])
    got = np.asarray(model.forward(packed, segment_ids=segments, positions=positions).logits)[0]
    assert np.abs(got[:9] - hf_logits(reference, a)[0]).max() <= TOL
    assert np.abs(got[9:15] - hf_logits(reference, b)[0]).max() <= TOL


@pytest.mark.parametrize("length", [2, 5, 16])
def test_mctp_modules_match_reference(mtp, length):
    reference, model = mtp
    ids = np.random.default_rng(length).integers(0, 256, (1, length))
    out = model.forward(ids)
    want = reference(torch.tensor(ids))
    assert np.abs(np.asarray(out.logits)[0] - want[0].numpy()).max() <= TOL
    assert len(out.mctp_logits) == 3
    for k in range(3):
        pairs = length - k - 1
        assert out.mctp_logits[k].shape == (1, length, 256)
        if pairs > 0:
            got = np.asarray(out.mctp_logits[k])[0, :pairs]
            assert np.abs(got - want[k + 1].numpy()).max() <= TOL, f"module {k}"


def test_mctp_packed_rows_match_separate_samples(mtp):
    reference, model = mtp
    rng = np.random.default_rng(3)
    lengths = [7, 4, 2]
    samples = [rng.integers(0, 256, (1, n)) for n in lengths]
    packed = np.concatenate(samples + [np.zeros((1, 3), np.int64)], axis=1)
    segments = np.concatenate([np.full(n, i + 1) for i, n in enumerate(lengths)] + [np.zeros(3, int)])[None]
    positions = np.concatenate([np.arange(n) for n in lengths] + [np.zeros(3, int)])[None]
    out = model.forward(packed, segment_ids=segments, positions=positions)
    start = 0
    for sample, n in zip(samples, lengths):
        want = reference(torch.tensor(sample))
        for k in range(3):
            pairs = n - k - 1
            if pairs > 0:
                got = np.asarray(out.mctp_logits[k])[0, start:start + pairs]
                assert np.abs(got - want[k + 1].numpy()).max() <= TOL, f"sample of {n}, module {k}"
        start += n
