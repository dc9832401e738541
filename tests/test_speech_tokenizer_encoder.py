"""The Flax Whisper-VQ encoder equals the PyTorch reference (written from the spec) on the
same random weights at reduced width: hidden states within 1e-4, identical codes."""

import numpy as np
import pytest
import torch

from vita_jax.convert.tokenizer_checkpoint import model_config_from_hf
from tests.helpers.speech_tokenizer import encoder_params, reference_features, speech_pair, tiled
from tests.torch_refs.whisper_vq_ref import random_ref, tiny_hf_config
from vita_jax.audio.head_attention import PER_HEAD_ABOVE
from vita_jax.audio.whisper_vq import Packing, WhisperVQEncoder, block_causal_attention

CFG = tiny_hf_config(layers=4, quantize_position=3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    _, speech, calibration = speech_pair(str(tmp_path_factory.mktemp("encoder")))
    ref = random_ref(CFG, reference_features([calibration])[0])
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    config = model_config_from_hf(CFG, "config.json")
    variables = {"params": encoder_params(state, config)}
    return ref, WhisperVQEncoder(config), variables, speech


def run_both(models, segments):
    ref, model, variables, _ = models
    features, mask = reference_features(segments)
    want_hidden, want_ids = ref(torch.from_numpy(features), torch.from_numpy(mask))
    args = (variables, features.transpose(0, 2, 1), mask.astype(bool))
    got_hidden = np.asarray(model.apply(*args, method=WhisperVQEncoder.pooled_hidden))
    got_ids = np.asarray(model.apply(*args))
    valid = mask[:, ::8].astype(bool)
    return (got_hidden, want_hidden.numpy(), got_ids, want_ids.numpy(), valid)


def test_single_utterance_parity(models):
    """10 s of speech: 500 frames at 50 Hz, so three 200-frame attention blocks."""
    speech = tiled(models[3], 160000)
    got_hidden, want_hidden, got_ids, want_ids, valid = run_both(models, [speech])
    assert got_hidden.shape == (1, 125, CFG["d_model"])
    np.testing.assert_allclose(got_hidden, want_hidden, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(got_ids, want_ids)
    assert len(np.unique(got_ids[valid])) > 10  # the comparison is not between constant codes


def test_batched_segments_with_masks_parity(models):
    """Two lengths padded together: valid positions match the reference on the same batch
    and the shorter one's codes equal those it gets alone."""
    speech = models[3]
    long, short = tiled(speech, 16000 * 9 + 777), speech[: 16000 * 2 + 123]
    got_hidden, want_hidden, got_ids, want_ids, valid = run_both(models, [long, short])
    assert valid.sum(1).tolist() == [-(-len(long) // 1280), -(-len(short) // 1280)]
    np.testing.assert_allclose(got_hidden[valid], want_hidden[valid], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(got_ids[valid], want_ids[valid])
    *_, alone_ids, _, alone_valid = run_both(models, [short])
    np.testing.assert_array_equal(got_ids[1][valid[1]], alone_ids[0][alone_valid[0]])


def test_packed_batch_equals_padded_batch(models):
    """Three segments packed end to end (with filler after them) give the padded batch's hidden
    states and codes at every valid position, in row order."""
    ref, model, variables, speech = models
    segments = [tiled(speech, 16000 * 9 + 777), speech[: 16000 * 2 + 123], speech[:20000]]
    features, mask = reference_features(segments)
    args = (variables, features.transpose(0, 2, 1), mask.astype(bool))
    padded_hidden = np.asarray(model.apply(*args, method=WhisperVQEncoder.pooled_hidden))
    padded_ids = np.asarray(model.apply(*args))
    codes = [-(-len(seg) // 1280) for seg in segments]
    row_frames = features.shape[2] // 2
    packing = Packing.of([4 * n for n in codes], len(segments), row_frames, 4 * (sum(codes) + 6))
    hidden = np.asarray(model.apply(*args, packing, method=WhisperVQEncoder.pooled_hidden))
    ids = np.asarray(model.apply(*args, packing))
    assert hidden.shape == (sum(codes) + 6, CFG["d_model"]) and ids.shape == (sum(codes) + 6,)
    want_hidden = np.concatenate([padded_hidden[row, :n] for row, n in enumerate(codes)])
    want_ids = np.concatenate([padded_ids[row, :n] for row, n in enumerate(codes)])
    np.testing.assert_allclose(hidden[: sum(codes)], want_hidden, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(ids[: sum(codes)], want_ids)
    with pytest.raises(ValueError, match="cannot pack"):
        Packing.of([8, 8], 2, 8, 12)


@pytest.mark.parametrize("length,block", [(37, 5), (PER_HEAD_ABOVE + 44, 64)])  # batched heads; one at a time
def test_block_attention_equals_dense_attention_under_the_spec_mask(length, block):
    """Blockwise attention (only allowed blocks computed) equals dense softmax attention with
    the spec's mask `(j <= i or i // block == j // block) and key_mask[j]`; partial last block."""
    rng = np.random.default_rng(1)
    batch, heads, dim = 2, 3, 8
    q, k, v = (rng.standard_normal((batch, heads, length, dim)).astype(np.float32) for _ in range(3))
    key_mask = rng.random((batch, length)) < 0.8
    key_mask[:, 0] = True
    i, j = np.arange(length)[:, None], np.arange(length)[None, :]
    allowed = ((j <= i) | (i // block == j // block))[None, None] & key_mask[:, None, None, :]
    scores = np.where(allowed, q @ k.transpose(0, 1, 3, 2), -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    want = (weights / weights.sum(-1, keepdims=True)) @ v
    np.testing.assert_allclose(np.asarray(block_causal_attention(q, k, v, key_mask, block)), want, atol=1e-5)
