"""Cross-entropy of several heads over one shared lm_head, without ever storing a [tokens, vocab] array.

    nll_sums, correct = fused_cross_entropy(weight, hiddens, targets, valid, settings)

weight [V, E] (the lm_head, in its parameter dtype), hiddens [H, B, T, E] (the final-normed
hidden states of H heads), targets / valid [H, B, T]. Returns per head the summed NLL over the
valid tokens and the number of them whose argmax is the target.

The weight is cast to the compute dtype and gathered (over `fsdp`) once for all heads. Logits
are computed block by block: token chunks of `token_chunk` positions (0: the whole length) times
vocabulary blocks of `vocab_block` rows, with a float32 online log-sum-exp. The vocabulary is
padded to whole blocks and block i holds rows i, i + n, i + 2n, ... (n blocks), so a vocabulary
split over `tensor` stays split inside every block. A custom VJP recomputes each block's logits
in the backward pass: the hidden-state gradient is accumulated over vocabulary blocks and the
lm_head gradient of each vocabulary block over token chunks, then reduced to the weight's own
sharding block by block (never held whole in float32).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from vita_jax.round_up import round_up
from vita_jax.sharding import constrain

WEIGHT_AXES = ("vocab", "embed")
GATHERED_AXES = ("vocab", None)
HIDDEN_AXES = (None, "batch", "length", None)


@dataclasses.dataclass(frozen=True)
class FusedLossSettings:
    compute_dtype: object = jnp.float32
    token_chunk: int = 0  # positions per chunk; 0 = the whole length; must divide the length
    vocab_block: int = 8192  # vocabulary rows per block (the vocabulary is padded to whole blocks)
    weight_grad: bool = True  # False: the lm_head is frozen, its gradient is not computed


def check_token_chunk(token_chunk, length):
    """The chunk must divide the sequence length (no padding of the token axis)."""
    if token_chunk < 0 or (token_chunk and length % token_chunk):
        raise ValueError(f"train.loss_chunk={token_chunk} does not divide the sequence length {length}; "
                         f"use a divisor of {length} (or 0 for the whole length)")


def _layout(settings, vocab, length):
    """(token chunk, vocabulary block, number of vocabulary blocks)."""
    check_token_chunk(settings.token_chunk, length)
    chunk = settings.token_chunk or length
    block = min(settings.vocab_block, round_up(vocab, 128))
    return chunk, block, -(-vocab // block)


def _blocked_weight(weight, settings, block, blocks):
    """[blocks, block, E] in the compute dtype, gathered over the embedding axis; block i holds rows i + n*r."""
    w = constrain(weight.astype(settings.compute_dtype), GATHERED_AXES)
    w = jnp.pad(w, ((0, block * blocks - w.shape[0]), (0, 0)))
    return w.reshape(block, blocks, -1).swapaxes(0, 1)


def _chunks(x, chunk):
    """[H, B, T, ...] -> [T / chunk, H, B, chunk, ...]."""
    h, b, t = x.shape[:3]
    return jnp.moveaxis(x.reshape(h, b, t // chunk, chunk, *x.shape[3:]), 2, 0)


def _unchunk(x):
    """Inverse of _chunks."""
    n, h, b, chunk = x.shape[:4]
    return jnp.moveaxis(x, 0, 2).reshape(h, b, n * chunk, *x.shape[4:])


def _block_logits(h, w_block, ids, vocab):
    """Float32 logits [H, B, C, block] of one token chunk and one vocabulary block; padding rows at -inf."""
    logits = jnp.einsum("hbce,ve->hbcv", h, w_block, preferred_element_type=jnp.float32)
    return jnp.where(ids < vocab, logits, -jnp.inf)


def _forward_stats(w_blocks, hiddens, targets, settings, vocab):
    """Per token: log-sum-exp, target logit and argmax (first index among ties), each [H, B, T]."""
    chunk = settings.token_chunk or hiddens.shape[2]
    blocks = w_blocks.shape[0]
    block_ids = jnp.arange(w_blocks.shape[1]) * blocks  # vocabulary id of row r of block 0

    def token_chunk(_, xs):
        h, tgt = xs

        def vocab_block(carry, xs):
            row_max, row_sum, tgt_logit, best, best_id = carry
            w_block, i = xs
            ids = block_ids + i
            logits = _block_logits(h, w_block, ids, vocab)
            new_max = jnp.maximum(row_max, logits.max(-1))
            row_sum = row_sum * jnp.exp(row_max - new_max) + jnp.exp(logits - new_max[..., None]).sum(-1)
            tgt_logit = tgt_logit + jnp.where(ids == tgt[..., None], logits, 0.0).sum(-1)
            arg = jnp.argmax(logits, -1)
            val, arg_id = logits.max(-1), ids[arg]
            better = (val > best) | ((val == best) & (arg_id < best_id))
            return (new_max, row_sum, tgt_logit, jnp.where(better, val, best),
                    jnp.where(better, arg_id, best_id)), None

        shape = tgt.shape
        init = (jnp.full(shape, -jnp.inf), jnp.zeros(shape), jnp.zeros(shape), jnp.full(shape, -jnp.inf),
                jnp.zeros(shape, jnp.int32))
        (row_max, row_sum, tgt_logit, _, best_id), _ = jax.lax.scan(
            vocab_block, init, (w_blocks, jnp.arange(blocks)))
        return None, (row_max + jnp.log(row_sum), tgt_logit, best_id)

    _, stats = jax.lax.scan(token_chunk, None, (_chunks(hiddens, chunk), _chunks(targets, chunk)))
    return tuple(_unchunk(s) for s in stats)


def _sums(stats, targets, valid):
    lse, tgt_logit, best_id = stats
    nll = jnp.where(valid, lse - tgt_logit, 0.0).sum(axis=(1, 2))
    correct = ((best_id == targets) & valid).sum(axis=(1, 2)).astype(jnp.float32)
    return nll, correct


def fused_cross_entropy(weight, hiddens, targets, valid, settings):
    """(summed NLL [H], correct argmax [H]) of each head; see the module docstring."""
    _layout(settings, weight.shape[0], hiddens.shape[2])  # errors before tracing further
    return _fused(weight, hiddens, targets, valid, settings, (weight.shape[0], weight.dtype, hiddens.dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _fused(weight, hiddens, targets, valid, settings, static):
    return _fused_fwd(weight, hiddens, targets, valid, settings, static)[0]


def _fused_fwd(weight, hiddens, targets, valid, settings, static):
    vocab = static[0]
    _, block, blocks = _layout(settings, vocab, hiddens.shape[2])
    w_blocks = _blocked_weight(weight, settings, block, blocks)
    h = constrain(hiddens.astype(settings.compute_dtype), HIDDEN_AXES)
    stats = _forward_stats(w_blocks, h, targets, settings, vocab)
    return _sums(stats, targets, valid), (w_blocks, h, targets, valid, stats[0])


def _fused_bwd(settings, static, residuals, cotangents):
    vocab, weight_dtype, hidden_dtype = static
    w_blocks, h, targets, valid, lse = residuals
    g_nll = cotangents[0]  # accuracies have no gradient
    chunk = settings.token_chunk or h.shape[2]
    blocks, block = w_blocks.shape[:2]
    scale = jnp.where(valid, g_nll[:, None, None], 0.0)
    block_ids = jnp.arange(block) * blocks
    token_xs = tuple(_chunks(x, chunk) for x in (h, targets, lse, scale))

    def vocab_block(dh, xs):
        w_block, i = xs
        ids = block_ids + i

        def token_chunk(dw, xs):
            h_c, tgt, lse_c, scale_c = xs
            probs = jnp.exp(_block_logits(h_c, w_block, ids, vocab) - lse_c[..., None])
            dlogits = ((probs - (ids == tgt[..., None])) * scale_c[..., None]).astype(h.dtype)
            dh_c = jnp.einsum("hbcv,ve->hbce", dlogits, w_block, preferred_element_type=jnp.float32)
            if settings.weight_grad:
                dw = dw + jnp.einsum("hbcv,hbce->ve", dlogits, h_c, preferred_element_type=jnp.float32)
            return dw, dh_c

        dw0 = jnp.zeros((block, h.shape[-1]) if settings.weight_grad else (0,), jnp.float32)
        dw, dh_chunks = jax.lax.scan(token_chunk, dw0, token_xs)
        if settings.weight_grad:
            dw = constrain(dw.astype(weight_dtype), WEIGHT_AXES)
        return dh + _unchunk(dh_chunks), dw

    dh, dw_blocks = jax.lax.scan(vocab_block, jnp.zeros(h.shape, jnp.float32), (w_blocks, jnp.arange(blocks)))
    if settings.weight_grad:
        dw = dw_blocks.swapaxes(0, 1).reshape(block * blocks, -1)[:vocab]
        dw = constrain(dw, WEIGHT_AXES)
    else:
        dw = constrain(jnp.zeros((vocab, h.shape[-1]), weight_dtype), WEIGHT_AXES)
    return dw, dh.astype(hidden_dtype), None, None


_fused.defvjp(_fused_fwd, _fused_bwd)
