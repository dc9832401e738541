"""Choosing the next token from float32 logits: greedy, or sampling with the Hugging Face
processors in their order (repetition penalty, temperature, top-k, top-p), seeded.

`Sampling` splits the settings into what shapes the compiled program (`static`) and values that
are plain arguments (`dynamic`), so a new temperature does not recompile.
"""

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Sampling:
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0            # 0: no top-k
    top_p: float = 1.0        # 1.0: no top-p
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0, got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def static(self):
        """(do_sample, top_k, uses top-p, uses the penalty): what the compiled program depends on."""
        return SamplingStatic(self.do_sample, self.top_k if self.do_sample else 0,
                              self.do_sample and self.top_p < 1.0, self.repetition_penalty != 1.0)

    @property
    def dynamic(self):
        return {"temperature": jnp.float32(self.temperature), "top_p": jnp.float32(self.top_p),
                "repetition_penalty": jnp.float32(self.repetition_penalty)}


@dataclasses.dataclass(frozen=True)
class SamplingStatic:
    do_sample: bool
    top_k: int
    use_top_p: bool
    use_penalty: bool


def repetition_penalty(logits, seen, penalty):
    """HF's RepetitionPenaltyLogitsProcessor: tokens already in the sequence (`seen` [B, V] bool)
    have negative logits multiplied, positive ones divided, by `penalty`."""
    penalized = jnp.where(logits < 0, logits * penalty, logits / penalty)
    return jnp.where(seen, penalized, logits)


def candidates(logits, static, dynamic):
    """Temperature, top-k, top-p (HF warpers, in that order) on [B, V] logits. Returns the kept
    candidates' logits [B, C] (removed ones -inf), in descending order, and their ids [B, C]."""
    logits = logits / dynamic["temperature"]
    vocab = logits.shape[-1]
    keep = static.top_k if 0 < static.top_k < vocab else vocab
    if keep == vocab and not static.use_top_p:
        return logits, jnp.broadcast_to(jnp.arange(vocab), logits.shape)
    values, ids = jax.lax.top_k(logits, keep)
    if static.use_top_p:
        probs = jax.nn.softmax(values, axis=-1)
        mass_at_or_below = jnp.cumsum(probs[..., ::-1], axis=-1)[..., ::-1]  # HF's ascending cumsum
        remove = (mass_at_or_below <= 1.0 - dynamic["top_p"]).at[..., 0].set(False)
        values = jnp.where(remove, -jnp.inf, values)
    return values, ids


def argmax(logits):
    """First index of the maximum over the last axis, [B, V] -> [B] int32. A vocabulary that is a
    multiple of 8 takes a two-stage max that XLA's CPU backend vectorizes (jnp.argmax's
    value-index reduction costs about as much as the lm_head matvec at 168072 entries)."""
    vocab = logits.shape[-1]
    if vocab % 8:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    best = logits.reshape(*logits.shape[:-1], vocab // 8, 8).max(axis=-2).max(axis=-1, keepdims=True)
    return jnp.min(jnp.where(logits == best, jnp.arange(vocab, dtype=jnp.int32), vocab), axis=-1)


def select_tokens(logits, seen, key, static, dynamic):
    """Next token per row [B] from logits [B, V]; `key` is consumed (pass a fresh one each call)."""
    if static.use_penalty:
        logits = repetition_penalty(logits, seen, dynamic["repetition_penalty"])
    if not static.do_sample:
        return argmax(logits)
    values, ids = candidates(logits, static, dynamic)
    choice = jax.random.categorical(key, values, axis=-1)
    return jnp.take_along_axis(ids, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)
