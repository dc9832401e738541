"""Greedy decoding in every mode equals a cache-free reference that follows spec section 7: every
token recomputed by a full forward from scratch over the sequence so far, read at the position
the schedule says (backbone: the newest position; module k: pair j = the backbone's newest
position of the cycle). Vanilla equals transformers' greedy generation; lossless equals Vanilla.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vita_jax.configs.model import tiny
from vita_jax import VitaAudioModel, load_pretrained
from vita_jax.decode import decode
from vita_jax.decode.decoder import compiled_program
from vita_jax.decode.schedule import parse_mode

PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12, 13], [3, 4, 5]]  # two lengths in one batch
MAX_NEW = 30
MODES = ["vanilla", "balance", "boost", "turbo", [2, 3, 1, 2], [1, 5, 2, 1]]


def _rescaled(model, rule):
    """A copy of `model` with each parameter array mapped by rule(name, array)."""
    params = jax.tree_util.tree_map_with_path(lambda path, x: rule(jax.tree_util.keystr(path), x), model.params)
    return VitaAudioModel(model.config, params)


@functools.lru_cache(maxsize=None)
def decode_model():
    """tiny geometry with K=10 modules (the presets need 10) and a vocabulary of 32. Random weights,
    the embedding and lm_head scaled by 10 and the layers by 1.5, so that greedy outputs wander
    instead of repeating one token (and every greedy choice in these tests wins by > 0.008)."""
    config = tiny()
    config.vocab_size, config.num_mctp_modules = 32, 10
    return _rescaled(VitaAudioModel.random(config, seed=1), lambda name, x: x if "norm" in name else
                     x * (10.0 if "embed_tokens" in name or "lm_head" in name else 1.5))


@functools.lru_cache(maxsize=None)
def agreeing_model():
    """decode_model's geometry with weak layers (x0.3) and each module's projection passing the
    token embedding through: the backbone and the modules then mostly predict the same map of the
    last token, so drafts are often but not always right (partial acceptances)."""
    def rule(name, x):
        if name.endswith("['proj']['kernel']"):
            return jnp.concatenate([jnp.eye(x.shape[1]), 0.1 * x[x.shape[1]:]])
        return x if "norm" in name else x * (10.0 if "embed_tokens" in name or "lm_head" in name else 0.3)
    return _rescaled(VitaAudioModel.random(decode_model().config, seed=3), rule)


@functools.lru_cache(maxsize=None)
def _padded_forward(model, length):
    return lambda ids: model.forward(np.array([ids + [0] * (length - len(ids))], np.int32))


def reference_decode(model, prompt, mode, max_new_tokens, eos_ids=()):
    """Section 7 without caches: each token from a fresh full forward over the sequence so far."""
    forward = _padded_forward(model, 64)
    seq = list(prompt)
    pairs = parse_mode(mode, model.config.num_mctp_modules)
    for cycle in range(10**6):
        m, n = pairs[min(cycle, len(pairs) - 1)]
        for step in range((1 if m == math.inf else m) + n):
            out = forward(seq)
            if step < (1 if m == math.inf else m):
                anchor = len(seq) - 1
                logits = out.logits[0, anchor]
            else:
                logits = out.mctp_logits[step - (1 if m == math.inf else m)][0, anchor]
            seq.append(int(np.argmax(np.asarray(logits))))
            if seq[-1] in eos_ids or len(seq) - len(prompt) == max_new_tokens:
                return seq[len(prompt):]


def assert_rows_equal(result, expected):
    for row, want in enumerate(expected):
        count = int(result.num_tokens[row])
        assert result.sequences[row, :count].tolist() == want, f"row {row}"
        assert (result.sequences[row, count:] == result.sequences[row, count:][:1]).all()  # padding


def eos_for_different_stops(rows):
    """An id that stops the two rows at different steps (both within the first 12 tokens)."""
    for token in rows[1][2:12]:
        first = [row.index(token) if token in row else len(row) for row in rows]
        if first[0] != first[1] and min(first) < 12:
            return token
    raise AssertionError(f"no suitable eos id in {rows}")


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_greedy_equals_cache_free_reference(mode):
    model = decode_model()
    result = decode(model, PROMPTS, mode=mode, max_new_tokens=MAX_NEW, eos_token_ids=())
    expected = [reference_decode(model, p, mode, MAX_NEW) for p in PROMPTS]
    assert_rows_equal(result, expected)
    assert result.num_tokens.tolist() == [MAX_NEW, MAX_NEW]

    eos = eos_for_different_stops(expected)
    stopped = decode(model, PROMPTS, mode=mode, max_new_tokens=20, eos_token_ids=(eos,), pad_token_id=31)
    expected = [reference_decode(model, p, mode, 20, (eos,)) for p in PROMPTS]
    assert_rows_equal(stopped, expected)
    assert stopped.num_tokens[0] != stopped.num_tokens[1]
    assert (stopped.sequences[np.argmin(stopped.num_tokens), min(stopped.num_tokens):] == 31).all()
    assert compiled_program(model)._cache_size() >= 1


def test_forward_counts_follow_the_schedule():
    model = decode_model()
    vanilla = decode(model, PROMPTS, mode="vanilla", max_new_tokens=MAX_NEW, eos_token_ids=())
    assert (vanilla.backbone_forwards, vanilla.module_forwards) == (MAX_NEW, [])
    # Turbo, 30 tokens: prefill (1 token) + module phase (10), then cycles of 11 until the third
    # ends the run (the first module run also took the prompt's pairs).
    turbo = decode(model, PROMPTS, mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())
    assert (turbo.backbone_forwards, turbo.module_forwards) == (3, [3] * 10)


def test_lossless_equals_vanilla_in_every_row():
    model = agreeing_model()
    vanilla = decode(model, PROMPTS, mode="vanilla", max_new_tokens=MAX_NEW, eos_token_ids=())
    lossless = decode(model, PROMPTS, mode="lossless", max_new_tokens=MAX_NEW, eos_token_ids=())
    np.testing.assert_array_equal(lossless.sequences, vanilla.sequences)
    assert lossless.backbone_forwards < vanilla.backbone_forwards / 2
    acceptance = lossless.acceptance
    assert acceptance[0] > 0.5 and 0 < min(a for a in acceptance if a) < 0.5, acceptance  # full and partial
    assert all(a >= b for a, b in zip(acceptance, acceptance[1:]))
    eos = eos_for_different_stops(vanilla.sequences.tolist())
    want = decode(model, PROMPTS, mode="vanilla", max_new_tokens=20, eos_token_ids=(eos,))
    got = decode(model, PROMPTS, mode="lossless", max_new_tokens=20, eos_token_ids=(eos,))
    np.testing.assert_array_equal(got.sequences, want.sequences)
    assert got.num_tokens[0] != got.num_tokens[1]


def test_vanilla_equals_transformers_greedy(tmp_path):
    import torch

    from tests.hf_fixtures import make_qwen2_checkpoint

    torch_model = make_qwen2_checkpoint(str(tmp_path / "qwen2"), seed=4)
    model = load_pretrained(str(tmp_path / "qwen2"), progress=False)
    prompts = [[7, 1, 99, 42, 3, 250, 17], [200, 5]]
    ours = decode(model, prompts, mode="vanilla", max_new_tokens=24, eos_token_ids=())
    for row, prompt in enumerate(prompts):
        with torch.no_grad():
            hf = torch_model.generate(torch.tensor([prompt]), max_new_tokens=24, min_new_tokens=24, do_sample=False,
                                      eos_token_id=None, pad_token_id=0)
        assert ours.sequences[row].tolist() == hf[0, len(prompt):].tolist(), f"row {row}"


def test_new_prompt_of_the_same_bucket_does_not_recompile():
    model = decode_model()
    decode(model, PROMPTS, mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())
    before = compiled_program(model)._cache_size()
    other = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [9] * 11]
    result = decode(model, other, mode="turbo", max_new_tokens=17, eos_token_ids=(1, 2), seed=5)
    assert result.sequences.shape[0] == 2
    assert compiled_program(model)._cache_size() == before
