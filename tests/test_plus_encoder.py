"""SenseVoice encoder, adapter and placeholder splicing against PyTorch / NumPy references written
from the spec (random weights, float32), padded batches against one-by-one runs."""

import jax
import numpy as np
import pytest
import torch

from tests.torch_refs.sensevoice_ref import AdapterRef, SenseVoiceRef
from vita_jax.convert.plus_checkpoint import adapter_table, encoder_table
from vita_jax.plus.adapter import AudioAdapter
from vita_jax.plus.model import feature_bucket
from vita_jax.plus.sensevoice import SenseVoiceConfig, SenseVoiceEncoder
from vita_jax.plus.vita_audio_plus import splice_audio_rows
from vita_jax.convert.rules import DictSource, import_tree

pytestmark = pytest.mark.torch
CONFIG = SenseVoiceConfig(output_size=64, attention_heads=4, linear_units=96, num_blocks=3, tp_blocks=2)


def flax_params(state_dict, table):
    """Flax parameters from a torch state dict through the converter's rules (stacked layers too)."""
    tensors = {key: value.detach().numpy() for key, value in state_dict.items()}
    return import_tree(table, DictSource(tensors, "reference state dict"), "the reference")


def randomized(module, seed):
    """Every parameter drawn at random (LayerNorm affine terms included, so they are checked)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * (0.3 if param.ndim == 1 else 0.08) +
                        (1.0 if param.ndim == 1 and param.shape[0] in (64, 560) else 0.0))
    return module.eval()


@pytest.fixture(scope="module")
def encoder_pair():
    ref = randomized(SenseVoiceRef(width=64, heads=4, units=96, num_blocks=3, tp_blocks=2), seed=0)
    params = flax_params(ref.state_dict(), encoder_table(CONFIG, prefix="", path=()))
    return ref, params, jax.jit(SenseVoiceEncoder(CONFIG).apply)


def test_encoder_equals_torch_reference_in_a_padded_batch(encoder_pair):
    ref, params, encode = encoder_pair
    lengths = np.array([7, 19, 12])
    features = np.random.default_rng(0).standard_normal((3, 19, 560)).astype(np.float32)
    features[np.arange(19)[None] >= lengths[:, None]] = 0.0
    with torch.no_grad():
        want, want_lengths = ref(torch.from_numpy(features), torch.from_numpy(lengths))
    got, got_lengths = encode({"params": params}, features, lengths)
    np.testing.assert_array_equal(got_lengths, lengths + 4)
    assert got.shape == (3, 23, 64)
    for a, n in enumerate(lengths + 4):
        scale = np.abs(want[a, :n].numpy()).max()
        assert np.abs(np.asarray(got[a, :n]) - want[a, :n].numpy()).max() / scale < 1e-5


def test_padded_batch_equals_one_by_one(encoder_pair):
    _, params, encode = encoder_pair
    lengths = np.array([5, 16])
    features = np.random.default_rng(1).standard_normal((2, 24, 560)).astype(np.float32)
    features[np.arange(24)[None] >= lengths[:, None]] = 0.0
    batched, _ = encode({"params": params}, features, lengths)
    for a, n in enumerate(lengths):
        alone, _ = encode({"params": params}, features[a:a + 1, :n], lengths[a:a + 1])
        np.testing.assert_allclose(np.asarray(batched[a, :n + 4]), np.asarray(alone[0]), rtol=0, atol=2e-5)


def test_adapter_equals_torch_reference():
    ref = randomized(AdapterRef(48), seed=2)
    params = flax_params({"model.audio_projection." + k: v for k, v in ref.state_dict().items()},
                         adapter_table(SenseVoiceConfig(), 48, path=()))
    encoded = np.random.default_rng(2).standard_normal((2, 9, 512)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(encoded)).numpy()
    got = np.asarray(AudioAdapter(48).apply({"params": params}, encoded))
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5


def test_splice_matches_a_loop_reference():
    context = 7
    ids = np.array([[1, 7, 7, 7, 2, 7, 7, 3, 0], [7, 7, 7, 7, 4, 5, 6, 1, 2]])
    lengths = np.array([3, 2, 4])  # runs: row 0 (3), row 0 (2), row 1 (4)
    rows = np.random.default_rng(3).standard_normal((3, 5, 6)).astype(np.float32)
    embeddings = np.random.default_rng(4).standard_normal((2, 9, 6)).astype(np.float32)
    got = np.asarray(jax.jit(splice_audio_rows, static_argnums=2)(embeddings, ids, context, rows, lengths))
    want, queue = embeddings.copy(), [rows[a, i] for a in range(3) for i in range(lengths[a])]
    for b in range(2):
        for s in range(9):
            if ids[b, s] == context:
                want[b, s] = queue.pop(0)
    assert not queue
    np.testing.assert_array_equal(got, want)


def test_feature_buckets_are_few_and_tight():
    buckets = {feature_bucket(t) for t in range(1, 501)}
    assert len(buckets) <= 40
    assert all(0 <= feature_bucket(t) - t < max(8, t / 8) for t in range(1, 501))
