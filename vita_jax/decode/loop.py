"""The scheduled modes (Vanilla, Balance, Boost, Turbo, custom lists) as one compiled program:
prefill, the plan's transient cycles unrolled, then its steady cycle in a `lax.while_loop`
until every row has stopped or the streaming listener asks the loop to stop (or to pause:
`decoder.resume_program` runs the steady cycles on from the returned state). `notify(state)`
runs after the first token and after each cycle (the streaming hook; identity when not streaming)."""

import jax
import jax.numpy as jnp

from vita_jax.decode.state import backbone_forward, emit_from, module_forward, prefill


def _backbone_step(ctx, state, chunk):
    return emit_from(ctx, *backbone_forward(ctx, state, chunk))


def run_cycle(ctx, state, cycle):
    """m backbone steps (the first over `cycle.backbone_chunk` tokens, then one token each), then
    modules 0..n-1, each over its new pairs, emitting from its newest pair."""
    if cycle.backbone_chunk:
        state = _backbone_step(ctx, state, cycle.backbone_chunk)
    if cycle.single_steps:
        state = jax.lax.fori_loop(0, cycle.single_steps, lambda _, s: _backbone_step(ctx, s, 1), state)
    for k, chunk in enumerate(cycle.module_chunks):
        inputs_done = state.modules[k - 1]["length"] if k else state.backbone["length"]
        pair_end = jnp.minimum(inputs_done, state.length - k - 1)  # h^{k-1}_j and x_{j+k+1} exist
        state = emit_from(ctx, *module_forward(ctx, state, k, chunk, pair_end))
    return state


def run_schedule(ctx, state, plan, prompt_slots, notify):
    state = prefill(ctx, state, prompt_slots, notify)
    for cycle in plan.transient:
        state = notify(run_cycle(ctx, state, cycle))
    return run_steady(ctx, state, plan, notify)


def run_steady(ctx, state, plan, notify):
    """The steady cycle until every row has stopped or the listener asked to stop; also what a
    paused decoding resumes with."""
    return jax.lax.while_loop(lambda s: s.active.any() & ~s.cancelled,
                              lambda s: notify(run_cycle(ctx, s, plan.steady)), state)
