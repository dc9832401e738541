"""The decoding state (one pytree carried through the compiled loop) and the steps that update it.

Rows advance independently: `length` [B] counts each row's tokens (prompt + accepted output),
caches carry their own per-row lengths, and a row that stopped (`active` False) keeps its
tokens while the batch runs on. Buffers have `slots` positions; the host sizes them so that
no chunk ever reads or writes past the end.
"""

import typing

import flax
import jax
import jax.numpy as jnp

from vita_jax.decode.sampling import select_tokens
from vita_jax.nn.attention import write_to_cache
from vita_jax.nn.kv_cache import init_backbone_cache, init_mctp_cache


@flax.struct.dataclass
class DecodeState:
    tokens: jax.Array          # [B, slots] prompt then output; past `length` is scratch
    length: jax.Array          # [B] tokens that exist (prompt + output)
    prompt_length: jax.Array   # [B]
    active: jax.Array          # [B] bool: still generating
    backbone: dict             # backbone KV cache
    modules: tuple             # KV cache of each module in use
    hidden: tuple              # hidden[k] [B, slots, E]: module k's inputs h^{k-1}_j (k=0: the backbone's)
    seen: typing.Any           # [B, V] bool tokens in the sequence (repetition penalty) or None
    key: jax.Array
    max_new_tokens: jax.Array  # int32 scalar
    cancelled: jax.Array       # bool scalar, set by the streaming listener
    backbone_forwards: jax.Array     # int32 scalar
    module_forwards: jax.Array       # [num_modules] int32
    draft_rounds: jax.Array          # int32 scalar: row-rounds of drafting (lossless mode)
    drafts_accepted: jax.Array       # [num_modules] int32: rounds whose draft at depth k was accepted


class StepContext(typing.NamedTuple):
    """What every step needs besides the state (closed over inside the compiled program)."""

    apply: typing.Callable     # VitaAudio.apply
    params: typing.Any
    sampling_static: typing.Any
    sampling_dynamic: dict
    eos_ids: jax.Array         # [E] int32 (may be empty)
    prompt_inputs: typing.Any = None  # keyword arguments of the module's `prompt_embeddings` (Plus audio)
    forced: typing.Any = None  # a ForcedInterleave logits mask, or None


def init_state(config, prompt, prompt_length, slots, num_modules, use_penalty, key, max_new_tokens):
    """prompt [B, P] (row b valid for its first prompt_length[b] entries), buffers of `slots`."""
    batch, prompt_slots = prompt.shape
    tokens = jnp.zeros((batch, slots), jnp.int32).at[:, :prompt_slots].set(prompt)
    seen = None
    if use_penalty:
        ids = jnp.where(jnp.arange(prompt_slots)[None] < prompt_length[:, None], prompt, config.vocab_size)
        seen = jnp.zeros((batch, config.vocab_size), bool).at[jnp.arange(batch)[:, None], ids].set(True, mode="drop")
    dtype = jnp.dtype(config.dtype)
    return DecodeState(
        tokens=tokens, length=prompt_length, prompt_length=prompt_length,
        active=jnp.ones((batch,), bool),
        backbone=init_backbone_cache(config, batch, slots),
        modules=tuple(init_mctp_cache(config, batch, slots) for _ in range(num_modules)),
        hidden=tuple(jnp.zeros((batch, slots, config.hidden_size), dtype) for _ in range(num_modules)),
        seen=seen, key=key, max_new_tokens=max_new_tokens, cancelled=jnp.zeros((), bool),
        backbone_forwards=jnp.zeros((), jnp.int32), module_forwards=jnp.zeros((num_modules,), jnp.int32),
        draft_rounds=jnp.zeros((), jnp.int32), drafts_accepted=jnp.zeros((num_modules,), jnp.int32),
    )


def gather_rows(buffer, start, size):
    """buffer[b, start[b] : start[b] + size] for each row b -> [B, size, ...]."""
    return jax.vmap(lambda row, s: jax.lax.dynamic_slice_in_dim(row, s, size, axis=0))(buffer, start)


def at_index(chunk, index):
    """chunk[b, index[b]] -> [B, ...] (index clipped to the chunk)."""
    index = jnp.clip(index, 0, chunk.shape[1] - 1)
    return jnp.take_along_axis(chunk, index.reshape(-1, 1, *([1] * (chunk.ndim - 2))), axis=1)[:, 0]


def backbone_forward(ctx, state, chunk, end=None, input_embeddings=None):
    """The backbone over its unseen tokens [cache length, end) (default end: `length`), at most
    `chunk` (`input_embeddings` [B, chunk, E] replace their token embeddings when given). Stores
    the hidden states for module 0 when modules are in use.
    Returns (state, hidden [B, chunk, E], pending [B])."""
    start = state.backbone["length"]
    end = state.length if end is None else end
    pending = jnp.clip(end - start, 0, chunk)
    valid = jnp.arange(chunk)[None] < pending[:, None]
    hidden, cache = ctx.apply({"params": ctx.params}, gather_rows(state.tokens, start, chunk), valid,
                              state.backbone, input_embeddings, method="backbone_chunk")
    buffers = state.hidden
    if buffers:
        buffers = (write_to_cache(buffers[0], hidden, start), *buffers[1:])
    state = state.replace(backbone=cache, hidden=buffers, backbone_forwards=state.backbone_forwards + 1)
    return state, hidden, pending


def module_forward(ctx, state, k, chunk, pair_end):
    """Module k over its unseen pairs [cache length, pair_end), at most `chunk`; pair j reads
    h^{k-1}_j and x_{j+k+1}. Stores h^k for module k+1 when it is in use.
    Returns (state, h^k [B, chunk, E], pending [B])."""
    cache = state.modules[k]
    start = cache["length"]
    pending = jnp.clip(pair_end - start, 0, chunk)
    valid = jnp.arange(chunk)[None] < pending[:, None]
    hidden, cache = ctx.apply(
        {"params": ctx.params}, k, gather_rows(state.tokens, start + k + 1, chunk),
        gather_rows(state.hidden[k], start, chunk), valid, cache, method="mctp_chunk",
    )
    buffers = list(state.hidden)
    if k + 1 < len(buffers):
        buffers[k + 1] = write_to_cache(buffers[k + 1], hidden, start)
    modules = (*state.modules[:k], cache, *state.modules[k + 1:])
    state = state.replace(modules=modules, hidden=tuple(buffers),
                          module_forwards=state.module_forwards.at[k].add(1))
    return state, hidden, pending


def logits_at(ctx, hidden, pending):
    """Float32 logits [B, V] of each row's newest valid position (index pending-1) only."""
    return ctx.apply({"params": ctx.params}, at_index(hidden, pending - 1), method="logits")


def choose(ctx, state, logits):
    """The next token per row [B] and the state with its key advanced."""
    key, sub = jax.random.split(state.key)
    if ctx.forced is not None:
        logits = ctx.forced.apply(logits, state.length - state.prompt_length)
    token = select_tokens(logits, state.seen, sub, ctx.sampling_static, ctx.sampling_dynamic)
    return state.replace(key=key), token


def append(ctx, state, token):
    """Append token [B] to every active row; rows stop on an eos id or at max_new_tokens."""
    batch, slots = state.tokens.shape
    rows = jnp.arange(batch)
    position = jnp.where(state.active, state.length, slots)  # out of range: dropped
    tokens = state.tokens.at[rows, position].set(token, mode="drop")
    seen = state.seen
    if seen is not None:
        seen = seen.at[rows, jnp.where(state.active, token, seen.shape[1])].set(True, mode="drop")
    length = state.length + state.active.astype(jnp.int32)
    stop = jnp.isin(token, ctx.eos_ids) | (length - state.prompt_length >= state.max_new_tokens)
    return state.replace(tokens=tokens, seen=seen, length=length, active=state.active & ~stop)


def emit_from(ctx, state, hidden, pending):
    """Choose and append the token predicted from each row's newest position of `hidden`."""
    state, token = choose(ctx, state, logits_at(ctx, hidden, pending))
    return append(ctx, state, token)


def prefill(ctx, state, prompt_slots, notify):
    """The backbone over the prompt, then its first token appended (and `notify(state)`). With
    `ctx.prompt_inputs` the prompt's embeddings come from the module's `prompt_embeddings`
    (computed here, once: e.g. the Plus audio encoder)."""
    embeddings = None
    if ctx.prompt_inputs is not None:
        embeddings = ctx.apply({"params": ctx.params}, state.tokens[:, :prompt_slots], **ctx.prompt_inputs,
                               method="prompt_embeddings")
    state, hidden, pending = backbone_forward(ctx, state, prompt_slots, input_embeddings=embeddings)
    return notify(emit_from(ctx, state, hidden, pending))
