"""Sampling follows Hugging Face's processors; seeded runs reproduce; greedy with a repetition
penalty equals a cache-free reference that applies HF's penalty."""

import jax
import jax.numpy as jnp
import numpy as np
import torch
from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from tests.helpers.decode import PROMPTS, padded_forward, decode_model
from vita_jax.decode import decode
from vita_jax.decode.sampling import Sampling, argmax, candidates, repetition_penalty


def test_processors_match_transformers():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (3, 40)).astype(np.float32)
    history = rng.integers(0, 40, (3, 6))
    seen = np.zeros((3, 40), bool)
    np.put_along_axis(seen, history, True, axis=1)
    settings = Sampling(do_sample=True, temperature=0.7, top_k=12, top_p=0.8, repetition_penalty=1.3)
    penalized = repetition_penalty(jnp.asarray(logits), jnp.asarray(seen), 1.3)
    values, ids = candidates(penalized, settings.static, settings.dynamic)
    ours = np.full_like(logits, -np.inf)
    np.put_along_axis(ours, np.asarray(ids), np.asarray(values), axis=1)

    scores, ids_t = torch.tensor(logits), torch.tensor(history)
    for processor in (RepetitionPenaltyLogitsProcessor(1.3), TemperatureLogitsWarper(0.7), TopKLogitsWarper(12),
                      TopPLogitsWarper(0.8)):
        scores = processor(ids_t, scores)
    theirs = scores.numpy()
    np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(theirs))
    np.testing.assert_allclose(ours[np.isfinite(ours)], theirs[np.isfinite(theirs)], rtol=1e-6)


def test_argmax_takes_the_first_maximum():
    logits = jnp.array([[0.0, 3.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0], [5.0] * 8, [-1.0] * 7 + [2.0]])
    assert argmax(logits).tolist() == [1, 0, 7]
    big = jax.random.normal(jax.random.key(0), (2, 168072))
    assert argmax(big).tolist() == jnp.argmax(big, axis=-1).tolist()


def test_sampling_is_seeded_and_stays_in_the_top_k():
    model = decode_model()
    options = dict(mode="vanilla", max_new_tokens=16, eos_token_ids=(), do_sample=True, temperature=0.8,
                   top_k=3, top_p=0.9, repetition_penalty=1.2)
    first = decode(model, PROMPTS, seed=7, **options).sequences
    np.testing.assert_array_equal(first, decode(model, PROMPTS, seed=7, **options).sequences)
    assert not np.array_equal(first, decode(model, PROMPTS, seed=8, **options).sequences)
    forward = padded_forward(model, 64)
    for prompt, row in zip(PROMPTS, first.tolist()):
        for t, token in enumerate(row):
            seq = prompt + row[:t]
            logits = torch.tensor(np.asarray(forward(seq).logits[0, len(seq) - 1]))[None]
            logits = RepetitionPenaltyLogitsProcessor(1.2)(torch.tensor([seq]), logits)[0]
            assert token in torch.topk(logits, 3).indices.tolist()


def test_greedy_with_repetition_penalty_equals_reference():
    model = decode_model()
    result = decode(model, PROMPTS, mode="vanilla", max_new_tokens=16, eos_token_ids=(), repetition_penalty=1.5)
    forward = padded_forward(model, 64)
    for prompt, row in zip(PROMPTS, result.sequences.tolist()):
        seq = list(prompt)
        while len(seq) < len(prompt) + 16:
            logits = torch.tensor(np.asarray(forward(seq).logits[0, len(seq) - 1]))[None]
            seq.append(int(RepetitionPenaltyLogitsProcessor(1.5)(torch.tensor([seq]), logits).argmax()))
        assert row == seq[len(prompt):]
