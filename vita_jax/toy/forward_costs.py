"""What one decoding step costs on this machine: a backbone forward and an MCTP module forward
(each with its emit: lm_head, greedy choice, append) over a chunk of C new tokens, timed inside
one compiled loop, so no dispatch or host work is counted (docs/toy-mctp.md).

The MCTP modes trade backbone forwards over 1 token for backbone forwards over K+1 tokens plus K
module forwards. They win in wall time only where a forward's cost hardly grows with C (memory- or
latency-bound, as the real model on an accelerator); `bounds` turns the measured costs into the
best speed-up each mode could reach with no other overhead.
"""

import functools
import time

import jax
import jax.numpy as jnp

from vita_jax.decode.decoder import decode_compiler_options
from vita_jax.decode.sampling import Sampling
from vita_jax.decode.state import StepContext, backbone_forward, emit_from, init_state, module_forward


def _step_loop(model, kind, chunk, repeats, slots, prompt_slots=128):
    """A compiled function running `repeats` steps of `kind` over `chunk` tokens, cache lengths
    reset after each step so that every repeat does the same work."""
    config = model.config
    sampling = Sampling()
    modules = config.num_mctp_modules

    @functools.partial(jax.jit, compiler_options=decode_compiler_options())  # as the decoding programs
    def run(params):
        ctx = StepContext(model.module.apply, params, sampling.static, sampling.dynamic, jnp.full((1,), -1, jnp.int32))
        prompt = jnp.ones((1, prompt_slots), jnp.int32)
        state = init_state(config, prompt, jnp.array([prompt_slots - chunk], jnp.int32), slots, modules, False,
                           jax.random.key(0), jnp.int32(slots))

        def body(_, s):
            if kind == "module":
                k = modules // 2
                out = emit_from(ctx, *module_forward(ctx, s, k, chunk, s.modules[k]["length"] + chunk))
                caches = tuple({**c, "length": s.modules[j]["length"]} for j, c in enumerate(out.modules))
                return out.replace(modules=caches, length=s.length, active=s.active)
            out = emit_from(ctx, *backbone_forward(ctx, s, chunk, end=s.backbone["length"] + chunk))
            return out.replace(backbone={**out.backbone, "length": s.backbone["length"]}, length=s.length,
                               active=s.active)

        state = state.replace(backbone={**state.backbone, "length": state.length},
                              modules=tuple({**c, "length": state.length} for c in state.modules))
        return jax.lax.fori_loop(0, repeats, body, state).tokens.sum()

    return run


def step_costs(model, chunks=None, repeats=200, trials=3, slots=288):
    """Microseconds per step (best of `trials`): {"backbone": {C: us}, "module": {C: us}} for C in
    `chunks` (default 1 and K+1, the chunks Vanilla and Turbo use)."""
    chunks = chunks or (1, model.config.num_mctp_modules + 1)
    costs = {}
    for kind in ("backbone", "module"):
        costs[kind] = {}
        for chunk in chunks:
            run = _step_loop(model, kind, chunk, repeats, slots)
            jax.block_until_ready(run(model.params))
            best = float("inf")
            for _ in range(trials):
                start = time.perf_counter()
                jax.block_until_ready(run(model.params))
                best = min(best, time.perf_counter() - start)
            costs[kind][chunk] = 1e6 * best / repeats
    return costs


def bounds(costs, num_modules, mean_accepted_drafts=None):
    """Best-case speed-ups over Vanilla from step costs alone (no prefill, no other overhead):
    Turbo emits K+1 tokens per backbone forward over K+1 tokens plus K module forwards; Lossless
    (K drafts) emits 1 + mean accepted drafts per such round."""
    wide = num_modules + 1
    vanilla = costs["backbone"][1]
    cycle = costs["backbone"][wide] + num_modules * costs["module"][wide]
    out = {"vanilla_us_per_token": vanilla, "turbo_us_per_token": cycle / wide,
           "turbo_best_speedup": vanilla * wide / cycle}
    if mean_accepted_drafts is not None:
        out["lossless_best_speedup"] = vanilla * (1 + mean_accepted_drafts) / cycle
    return out
