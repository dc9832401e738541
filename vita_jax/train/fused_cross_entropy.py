"""Cross-entropy of several heads over one shared lm_head, without ever storing a [tokens, vocab] array.

    nll_sums, correct = fused_cross_entropy(weight, hiddens, targets, valid, settings)

weight [V, E] (the lm_head, in its parameter dtype), hiddens [H, B, T, E] (the final-normed
hidden states of H heads), targets / valid [H, B, T]. Returns per head the summed NLL over the
valid tokens and the number of them whose argmax is the target.

The weight is cast to the compute dtype and gathered whole once for all heads and both passes;
on a mesh with a `tensor` axis each token chunk is split over it instead of the vocabulary. Logits are computed block by block: token chunks of `token_chunk` positions (0: the
whole length) times vocabulary blocks of `vocab_block` rows, with a float32 online log-sum-exp.
Blocks are slices of the gathered weight (the last one starts early and skips the rows its
predecessor covered), so nothing weight-sized is copied. A custom VJP recomputes each block's
logits in the backward pass: the hidden-state gradient is accumulated over vocabulary blocks,
the lm_head gradient of a block over token chunks, then reduced block by block into an accumulator
split over the embedding dimension (never held whole in float32), resharded like the weight at the
end. With a frozen lm_head (`weight_grad=False`) the loops swap: token chunks outside, so only one
chunk's hidden gradient is held in float32.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from vita_jax.sharding import constrain

WEIGHT_AXES = ("vocab", "embed")
GATHERED_AXES = (None, None)  # whole on every device: vocabulary blocks are sliced out of it locally
HIDDEN_AXES = (None, "batch", "length", None)
# the lm_head gradient while blocks are added in: vocabulary rows whole (a block's rows are written at a
# dynamic offset, which on a `tensor`-split vocabulary made XLA keep the whole float32 gradient on every
# device), the embedding dimension split over fsdp x tensor; resharded to WEIGHT_AXES once at the end
GRAD_ACCUMULATOR_AXES = (None, "loss_grad_embed")
CHUNK_AXES = (None, None, "batch", "loss_tokens")  # [chunks, H, B, chunk, ...]: a chunk's tokens split over `tensor`


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
    block = min(settings.vocab_block, vocab)
    return chunk, block, -(-vocab // block)


def _block_rows(i, block, vocab):
    """(first row, vocabulary ids [block], whether each id is new to block i): the last block is
    moved back to end at the last row, and the rows it shares with block i-1 are not counted twice."""
    start = jnp.minimum(i * block, vocab - block)
    ids = start + jnp.arange(block)
    return start, ids, ids >= i * block


def _weight_block(w, i, block, vocab):
    return jax.lax.dynamic_slice_in_dim(w, _block_rows(i, block, vocab)[0], block, axis=0)


def _chunks(x, chunk):
    """[H, B, T, ...] -> [T / chunk, H, B, chunk, ...], each chunk's tokens split over the `tensor`
    mesh axis (the vocabulary is not: every device computes whole logits rows for its tokens)."""
    h, b, t = x.shape[:3]
    chunks = jnp.moveaxis(x.reshape(h, b, t // chunk, chunk, *x.shape[3:]), 2, 0)
    return constrain(chunks, CHUNK_AXES + (None,) * (x.ndim - 3))


def _unchunk(x):
    """Inverse of _chunks."""
    n, h, b, chunk = x.shape[:4]
    return jnp.moveaxis(x, 0, 2).reshape(h, b, n * chunk, *x.shape[4:])


def _block_logits(h, w_block, new):
    """Float32 logits [H, B, C, block] of one token chunk and one vocabulary block; repeated rows at -inf."""
    logits = jnp.einsum("hbce,ve->hbcv", h, w_block, preferred_element_type=jnp.float32)
    return jnp.where(new, logits, -jnp.inf)


def _forward_stats(w, hiddens, targets, settings, vocab):
    """Per token: log-sum-exp, target logit and argmax (first index among ties), each [H, B, T]."""
    chunk, block, blocks = _layout(settings, vocab, hiddens.shape[2])

    def token_chunk(_, xs):
        h, tgt = xs

        def vocab_block(carry, i):
            row_max, row_sum, tgt_logit, best, best_id = carry
            _, ids, new = _block_rows(i, block, vocab)
            logits = _block_logits(h, _weight_block(w, i, block, vocab), new)
            new_max = jnp.maximum(row_max, logits.max(-1))
            row_sum = row_sum * jnp.exp(row_max - new_max) + jnp.exp(logits - new_max[..., None]).sum(-1)
            tgt_logit = tgt_logit + jnp.where((ids == tgt[..., None]) & new, logits, 0.0).sum(-1)
            arg = jnp.argmax(logits, -1)
            val, arg_id = logits.max(-1), ids[arg]
            better = (val > best) | ((val == best) & (arg_id < best_id))
            return (new_max, row_sum, tgt_logit, jnp.where(better, val, best),
                    jnp.where(better, arg_id, best_id)), None

        shape = tgt.shape
        init = (jnp.full(shape, -jnp.inf), jnp.zeros(shape), jnp.zeros(shape), jnp.full(shape, -jnp.inf),
                jnp.zeros(shape, jnp.int32))
        (row_max, row_sum, tgt_logit, _, best_id), _ = jax.lax.scan(vocab_block, init, jnp.arange(blocks))
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
    w = constrain(weight.astype(settings.compute_dtype), GATHERED_AXES)
    h = constrain(hiddens.astype(settings.compute_dtype), HIDDEN_AXES)
    stats = _forward_stats(w, h, targets, settings, static[0])
    return _sums(stats, targets, valid), (w, h, targets, valid, stats[0])


def _fused_bwd(settings, static, residuals, cotangents):
    vocab, weight_dtype, hidden_dtype = static
    w, h, targets, valid, lse = residuals
    g_nll = cotangents[0]  # accuracies have no gradient
    chunk, block, blocks = _layout(settings, vocab, h.shape[2])
    scale = jnp.where(valid, g_nll[:, None, None], 0.0)
    token_xs = tuple(_chunks(x, chunk) for x in (h, targets, lse, scale))

    def block_grads(h_c, tgt, lse_c, scale_c, i):
        """(hidden gradient [H, B, C, E] float32, logits gradient [H, B, C, block], block rows) of
        one token chunk and vocabulary block i."""
        start, ids, new = _block_rows(i, block, vocab)
        w_block = _weight_block(w, i, block, vocab)
        probs = jnp.exp(_block_logits(h_c, w_block, new) - lse_c[..., None])
        dlogits = ((probs - ((ids == tgt[..., None]) & new)) * scale_c[..., None]).astype(h.dtype)
        return jnp.einsum("hbcv,ve->hbce", dlogits, w_block, preferred_element_type=jnp.float32), dlogits, start

    if not settings.weight_grad:  # token chunks outside: only one chunk's float32 hidden gradient at a time
        def token_chunk(_, xs):
            def vocab_block(dh_c, i):
                return dh_c + block_grads(*xs, i)[0], None

            dh_c, _ = jax.lax.scan(vocab_block, jnp.zeros(xs[0].shape, jnp.float32), jnp.arange(blocks))
            return None, dh_c.astype(hidden_dtype)

        _, dh = jax.lax.scan(token_chunk, None, token_xs)
        return None, _unchunk(dh), None, None

    # vocabulary blocks outside: each block's lm_head gradient is summed over every token chunk, then
    # reduced to the weight's sharding; the float32 hidden gradient is updated chunk by chunk in place
    def vocab_block(carry, i):
        dh, dw_all = carry

        def token_chunk(carry, c):
            dw, dh = carry
            dh_c, dlogits, _ = block_grads(*(x[c] for x in token_xs), i)
            dw = dw + jnp.einsum("hbcv,hbce->ve", dlogits, token_xs[0][c], preferred_element_type=jnp.float32)
            return (dw, dh.at[c].add(dh_c)), None

        dw0 = jnp.zeros((block, h.shape[-1]), jnp.float32)
        (dw, dh), _ = jax.lax.scan(token_chunk, (dw0, dh), jnp.arange(token_xs[0].shape[0]))
        start = _block_rows(i, block, vocab)[0]
        dw = constrain(dw.astype(weight_dtype), GRAD_ACCUMULATOR_AXES)
        dw_all = constrain(jax.lax.dynamic_update_slice_in_dim(
            dw_all, jax.lax.dynamic_slice_in_dim(dw_all, start, block) + dw, start, axis=0), GRAD_ACCUMULATOR_AXES)
        return (dh, dw_all), None

    dw_all = constrain(jnp.zeros((vocab, h.shape[-1]), weight_dtype), GRAD_ACCUMULATOR_AXES)
    dh = constrain(jnp.zeros(token_xs[0].shape, jnp.float32), CHUNK_AXES + (None,))
    (dh, dw_all), _ = jax.lax.scan(vocab_block, (dh, dw_all), jnp.arange(blocks))
    return constrain(dw_all, WEIGHT_AXES), _unchunk(dh).astype(hidden_dtype), None, None


_fused.defvjp(_fused_fwd, _fused_bwd)
