"""Decoding test helpers: the tiny decode models, a cache-free reference decoder (spec section 7)
and row comparisons."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vita_jax import VitaAudioModel
from vita_jax.configs.model import tiny
from vita_jax.decode.schedule import parse_mode

PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12, 13], [3, 4, 5]]  # two lengths in one batch
MAX_NEW = 30
MODES = ["vanilla", "balance", "boost", "turbo", [2, 3, 1, 2], [1, 5, 2, 1]]


def rescaled(model, rule):
    """A copy of `model` with each parameter array mapped by rule(name, array)."""
    params = jax.tree_util.tree_map_with_path(lambda path, x: rule(jax.tree_util.keystr(path), x), model.params)
    return VitaAudioModel(model.config, params)


@functools.lru_cache(maxsize=None)
def decode_model():
    """tiny geometry with K=10 modules (the presets need 10) and a vocabulary of 32. Random weights,
    the embedding and lm_head scaled by 10 and the layers by 1.5, so that greedy outputs wander
    instead of repeating one token (and every greedy choice in these tests wins by > 0.008)."""
    config = tiny().replace(vocab_size=32, num_mctp_modules=10)
    return rescaled(VitaAudioModel.random(config, seed=1), lambda name, x: x if "norm" in name else
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
    return rescaled(VitaAudioModel.random(decode_model().config, seed=3), rule)


@functools.lru_cache(maxsize=None)
def padded_forward(model, length):
    return lambda ids: model.forward(np.array([ids + [0] * (length - len(ids))], np.int32))


def reference_decode(model, prompt, mode, max_new_tokens, eos_ids=()):
    """Section 7 without caches: each token from a fresh full forward over the sequence so far."""
    forward = padded_forward(model, 64)
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
