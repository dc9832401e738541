"""Softmax attention one head at a time: the speech side's long sequences on CPU.

Batched over every head, the [B, H, T, T] attention weights of a long utterance outgrow the
last-level cache, and each op of the softmax writes them to memory and reads them back. One
head at a time (`over_heads`, a `lax.map`), a head's weights stay in cache and each product is
one plain matrix multiply spread over the cores; `normalized_after` drops one more pass over
the weights. Measured on a 2-core EPYC (docs/speech-speed.md): flow attention at 864 / 1728
frames 39 -> 24 ms / 147 -> 97 ms, tokenizer attention at 1504 frames 118 -> 51 ms; at 256
frames and fewer the batched form was as fast or faster, so it stays there.
"""

import jax
import jax.numpy as jnp

PER_HEAD_ABOVE = 256  # sequence length (frames) above which attention runs one head at a time


def normalized_after(scores, v):
    """softmax(scores) @ v computed as exp(s - max) @ v / sum(exp(s - max)): the division acts on
    the [..., Tq, D] product instead of the [..., Tq, Tk] weights (the same values up to rounding)."""
    weights = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
    return (weights @ v) / jnp.sum(weights, axis=-1, keepdims=True)


def over_heads(fn, q, k, v, *per_row):
    """fn(q_h, k_h, v_h, *row_args) -> [T, D] for each head of head-major q, k, v [B, H, T, D], one
    head at a time; each `per_row` array [B, ...] is passed as its entry for the head's batch row."""
    b, h = q.shape[:2]
    heads = lambda x: x.reshape(b * h, *x.shape[2:])  # noqa: E731
    rows = [jnp.broadcast_to(a[:, None], (b, h, *a.shape[1:])).reshape(b * h, *a.shape[1:]) for a in per_row]
    out = jax.lax.map(lambda args: fn(*args), (heads(q), heads(k), heads(v), *rows))
    return out.reshape(b, h, *out.shape[1:])
