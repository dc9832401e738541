"""Decoding modes (spec section 7) and the static plan the compiled loop follows.

A mode is a list `[m1, n1, m2, n2, ...]`: m_i backbone steps (each emits one token), then n_i
module steps (modules 0..n_i-1 in order, each emits one token); after the list ends its last
pair repeats. `inf` as a backbone count (Vanilla) means the backbone alone, forever.

Every step processes all the tokens (backbone) or pairs (module k) whose inputs exist and that
its KV cache has not seen yet; a module's first run takes the prompt's pairs too. Those counts
depend on the prompt only through that first run, bounded by the prompt bucket, so the host
simulates the schedule once per (mode, bucket) and the device runs fixed chunk sizes: a few
transient cycles unrolled, then one steady cycle repeated in a `lax.while_loop`.
"""

import dataclasses
import math

PRESETS = {
    "vanilla": (math.inf, 0),
    "balance": (1, 4, 3, 8, 4, 10),
    "boost": (1, 10, 4, 10),
    "turbo": (1, 10),
}
LOSSLESS = "lossless"  # draft with the modules, verify with the backbone (see lossless.py)
MAX_TRANSIENT_CYCLES = 64


@dataclasses.dataclass(frozen=True)
class Cycle:
    """Static chunk sizes of one cycle. `backbone_chunk` is the first backbone step's chunk (0 in
    cycle 1, whose first backbone step is the prefill); `single_steps` one-token backbone steps
    follow; `module_chunks[k]` is module k's chunk (modules 0..n-1 run, in order)."""

    backbone_chunk: int
    single_steps: int
    module_chunks: tuple


@dataclasses.dataclass(frozen=True)
class Plan:
    """transient: cycles run once, in order (cycle 1 first); steady: the cycle repeated after them.
    num_modules: modules the mode uses. transient_tokens: the most tokens (prompt bucket included)
    that exist while the transient cycles run; no chunk of theirs reads or writes past it."""

    transient: tuple
    steady: Cycle
    num_modules: int
    transient_tokens: int

    @property
    def steady_chunk(self):
        return max(self.steady.backbone_chunk, 1, *self.steady.module_chunks)


def is_lossless(mode):
    """Whether `mode` names the lossless path (modules draft, the backbone verifies) rather than a schedule."""
    return isinstance(mode, str) and mode.strip().lower() == LOSSLESS


def parse_mode(mode, num_modules):
    """A preset name or a list [m1, n1, ...] -> tuple of (m, n) pairs, validated against the
    model's number of MCTP modules. Raises ValueError naming the bad value."""
    if isinstance(mode, str):
        name = mode.strip().lower()
        if name == LOSSLESS:
            raise ValueError(f"mode {mode!r} is decoded by the lossless path, not by a schedule")
        if name not in PRESETS:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join([*PRESETS, LOSSLESS])} "
                             "or give a list [m1, n1, m2, n2, ...]")
        values = PRESETS[name]
    else:
        try:
            values = tuple(mode)
        except TypeError:
            raise ValueError(f"mode must be a preset name or a list [m1, n1, ...], got {mode!r}") from None
    if not values or len(values) % 2:
        raise ValueError(f"mode list {list(values)} must have an even, non-zero length: [m1, n1, m2, n2, ...]")
    pairs = []
    for i in range(0, len(values), 2):
        m, n = _backbone_count(values[i], values), _count(values[i + 1], values, "module step count")
        if n > num_modules:
            hint = "; use mode 'vanilla', which needs none" if num_modules == 0 else ""
            raise ValueError(f"mode {mode!r} ({list(values)}) asks for {n} module steps but the model has "
                             f"{num_modules} MCTP modules{hint}")
        if m == math.inf and i != len(values) - 2:
            raise ValueError(f"mode list {list(values)}: inf backbone steps are only allowed in the last pair")
        pairs.append((m, 0 if m == math.inf else n))
    return tuple(pairs)


def _count(value, values, what):
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
        raise ValueError(f"mode list {list(values)}: {what} {value!r} is not an integer")
    if value < 0:
        raise ValueError(f"mode list {list(values)}: {what} {value!r} is negative")
    return int(value)


def _backbone_count(value, values):
    if value in ("inf", math.inf):
        return math.inf
    m = _count(value, values, "backbone step count")
    if m == 0:
        raise ValueError(f"mode list {list(values)}: backbone step count must be >= 1 (modules need a new "
                         "backbone token to predict from)")
    return m


def build_plan(pairs, prompt_slots):
    """Simulate the schedule for a prompt of `prompt_slots` tokens (the bucket: every shorter
    prompt needs smaller chunks) and return its Plan. t: tokens, lb: backbone cache length,
    a[k]: module k's pairs."""
    num_modules = max(n for _, n in pairs)
    t, lb = prompt_slots + 1, prompt_slots  # after the prefill: the prompt seen, one token emitted
    a = [0] * num_modules
    cycles, tokens_after = [], []
    for index in range(MAX_TRANSIENT_CYCLES + len(pairs)):
        m, n = pairs[min(index, len(pairs) - 1)]
        steps = 1 if m == math.inf else m
        backbone_chunk = 0
        if index:
            backbone_chunk, lb, t = t - lb, t, t + 1
        for _ in range(steps - 1):
            lb, t = t, t + 1
        chunks = []
        for k in range(n):
            avail = min(a[k - 1] if k else lb, t - k - 1)
            chunks.append(avail - a[k])
            a[k], t = avail, t + 1
        cycles.append(Cycle(backbone_chunk, steps - 1, tuple(chunks)))
        tokens_after.append(t)
        if index >= len(pairs) and cycles[-1] == cycles[-2]:
            return Plan(transient=tuple(cycles[:-2]), steady=cycles[-1], num_modules=num_modules,
                        transient_tokens=max(tokens_after[:-2], default=prompt_slots + 1))
    raise AssertionError(f"schedule {pairs} did not reach a steady cycle")  # cannot happen: see module doc


def plan_for(mode, num_modules, prompt_slots):
    """Parse and plan a mode in one call."""
    return build_plan(parse_mode(mode, num_modules), prompt_slots)
