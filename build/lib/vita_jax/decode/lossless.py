"""Lossless mode: the modules draft the next n tokens, the backbone verifies them in its next
forward, the longest agreeing prefix plus the backbone's own next token is kept, and the caches
roll back the rest. Greedy output equals Vanilla's token for token.

Each round, with T tokens accepted: modules 0..n-1 draft x_T..x_{T+n-1} from pair T-2 (written
past `length` as scratch); the backbone runs over [x_{T-1}, drafts] (n+1 tokens) and its argmax
g_i at each position is compared with draft i+1. Module k's pairs that read a draft (j >= T-1-k)
and the backbone's positions past the kept tokens are rolled back by resetting cache lengths.
"""

import jax
import jax.numpy as jnp

from vita_jax.decode.sampling import argmax
from vita_jax.decode.state import backbone_forward, gather_rows, logits_at, module_forward, prefill
from vita_jax.nn.attention import write_to_cache


def draft(ctx, state, num_draft):
    """Greedy drafts of modules 0..num_draft-1 written at length + k; caches rolled back to the
    pairs that read accepted tokens only."""
    rows = jnp.arange(state.length.shape[0])
    for k in range(num_draft):
        state, hidden, pending = module_forward(ctx, state, k, num_draft + 1 + k, state.length - 1)
        token = argmax(logits_at(ctx, hidden, pending))
        state = state.replace(tokens=state.tokens.at[rows, state.length + k].set(token, mode="drop"))
    modules = tuple({**cache, "length": jnp.clip(jnp.minimum(cache["length"], state.length - 1 - k), 0)}
                    for k, cache in enumerate(state.modules))
    return state.replace(modules=modules)


def verify(ctx, state, num_draft):
    """The backbone over [x_{T-1}, drafts]; keep the agreeing drafts and the backbone's next token
    (cut at an eos id and at max_new_tokens) and roll the backbone cache back to them."""
    start, length = state.backbone["length"], state.length
    state, hidden, _ = backbone_forward(ctx, state, num_draft + 1, end=length + num_draft)
    target = argmax(ctx.apply({"params": ctx.params}, hidden, method="logits"))
    drafts = gather_rows(state.tokens, length, num_draft)
    accepted = jnp.cumprod(drafts == target[:, :num_draft], axis=1).sum(axis=1)
    position = jnp.arange(num_draft + 1)[None]
    is_eos = jnp.isin(target, ctx.eos_ids)
    after_eos = (jnp.cumsum(is_eos, axis=1) - is_eos) > 0
    room = state.max_new_tokens - (length - state.prompt_length)
    keep = (position <= accepted[:, None]) & ~after_eos & (position < room[:, None]) & state.active[:, None]
    count = keep.sum(axis=1).astype(jnp.int32)
    tokens = write_to_cache(state.tokens, target, length)
    new_length = length + count
    stop = (keep & is_eos).any(axis=1) | (new_length - state.prompt_length >= state.max_new_tokens)
    depth = jnp.arange(num_draft)[None]
    return state.replace(
        tokens=tokens, length=new_length, active=state.active & ~stop,
        backbone={**state.backbone, "length": start + count},
        draft_rounds=state.draft_rounds + state.active.sum(),
        drafts_accepted=state.drafts_accepted + ((accepted[:, None] > depth) & state.active[:, None]).sum(axis=0),
    )


def prefill_modules(ctx, state, prompt_slots):
    """The prompt's pairs through every module (module k: pairs j < P - k - 1), so that each
    round's drafting has at most num_draft + 1 + k new pairs."""
    for k in range(len(state.modules)):
        state, _, _ = module_forward(ctx, state, k, prompt_slots, state.prompt_length - k - 1)
    return state


def run_lossless(ctx, state, num_draft, prompt_slots, notify):
    state = prefill_modules(ctx, prefill(ctx, state, prompt_slots, notify), prompt_slots)
    return jax.lax.while_loop(lambda s: s.active.any() & ~s.cancelled,
                              lambda s: notify(verify(ctx, draft(ctx, s, num_draft), num_draft)), state)
