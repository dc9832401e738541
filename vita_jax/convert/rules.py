"""The one converter idiom: a table of rules plus two generic drivers.

Every converter (the Hugging Face LLM, the GLM-4-Voice tokenizer and decoder) describes its
checkpoint as a list of `Rule`s for a given config: the original key and shape, the leaf's
path in the Flax tree, a named `Transform` between the two layouts, and the row on a stacked
layer axis when several original tensors form one Flax leaf. Then:

- `import_tree(rules, source)` checks every key and shape of the source against the table
  first (headers only), reports every missing / unexpected / mis-shaped tensor in one error,
  and then reads the tensors one at a time (a source never has to be held whole);
- `export_tensors(rules, tree)` gives (key, shape, produce) in table order for a writer.
"""

import dataclasses
from typing import Callable, Optional

import numpy as np

from vita_jax.convert.param_paths import get_path, has_path, set_path


class ConversionError(ValueError):
    """A checkpoint that does not match its table; the message names the source and every bad key."""


@dataclasses.dataclass(frozen=True)
class Transform:
    """A named layout change of one tensor, original -> Flax and back (exact inverses)."""

    name: str
    to_flax: Callable
    to_original: Callable


IDENTITY = Transform("identity", lambda x: x, lambda x: x)
# torch Linear weight (out, in) <-> Flax kernel (in, out)
TRANSPOSE = Transform("transpose", lambda x: x.T, lambda x: x.T)
# torch Conv1d weight (out, in, k) <-> Flax kernel (k, in, out)
CONV1D = Transform("conv1d", lambda x: x.transpose(2, 1, 0), lambda x: x.transpose(2, 1, 0))
# torch ConvTranspose1d weight (in, out, k) <-> Flax kernel (k, in, out)
CONV_TRANSPOSE1D = Transform("conv_transpose1d", lambda x: x.transpose(2, 0, 1), lambda x: x.transpose(1, 2, 0))


@dataclasses.dataclass(frozen=True)
class Rule:
    """One original tensor <-> one Flax leaf (or one row of it when `layer` is set)."""

    key: str
    path: tuple
    shape: tuple  # in the original checkpoint
    transform: Transform = IDENTITY
    layer: Optional[int] = None  # row on the leaf's stacked leading axis
    optional: bool = False  # may be absent from the original checkpoint


class DictSource:
    """Tensors of an in-memory state dict {key: array}."""

    def __init__(self, tensors, name):
        self.tensors, self.name = tensors, name

    def keys(self):
        return list(self.tensors)

    def shape(self, key):
        return tuple(np.shape(self.tensors[key]))

    def where(self, key):
        return self.name

    def read(self, key):
        return np.asarray(self.tensors[key])


class RenamedSource:
    """A source seen under other keys: `renamed` maps each exposed key to the source's key;
    source keys not mapped are hidden."""

    def __init__(self, source, renamed):
        self.source, self.renamed, self.name = source, renamed, source.name

    def keys(self):
        return list(self.renamed)

    def shape(self, key):
        return self.source.shape(self.renamed[key])

    def where(self, key):
        return self.source.where(self.renamed[key])

    def read(self, key):
        return self.source.read(self.renamed[key])


def _listing(label, keys, limit=20):
    shown = ", ".join(keys[:limit]) + (" ..." if len(keys) > limit else "")
    return f"{label} ({len(keys)}): {shown}"


def check_source(rules, source, what, error=ConversionError):
    """Raise `error` listing every missing, unexpected and mis-shaped tensor of `source`."""
    by_key = {rule.key: rule for rule in rules}
    present = source.keys()
    problems = []
    missing = [rule.key for rule in rules if not rule.optional and rule.key not in present]
    unexpected = [key for key in present if key not in by_key]
    if missing:
        problems.append(_listing("missing tensors", missing))
    if unexpected:
        problems.append(_listing("unexpected tensors", unexpected))
    for key in present:
        rule = by_key.get(key)
        if rule is not None and source.shape(key) != tuple(rule.shape):
            problems.append(f"tensor {key!r} in {source.where(key)} has shape {source.shape(key)}, "
                            f"{what} implies {tuple(rule.shape)}")
    if problems:  # the first problem on the first line (what a one-line error shows), the rest below
        more = f" (and {len(problems) - 1} more below)" if len(problems) > 1 else ""
        raise error(f"{source.name} does not match {what}: {problems[0]}{more}" + "".join(f"\n  {p}" for p in problems[1:]))


def import_tree(rules, source, what, error=ConversionError, dtype=None, place=None, on_tensor=None):
    """The Flax tree of `rules` read from `source` (keys(), shape(key), where(key), read(key), name).

    `what` names the expectation in errors ("config.json", "the decoder config"); `dtype` casts
    each tensor; `place` maps each finished leaf (e.g. onto a device); `on_tensor` is called
    after every tensor (progress)."""
    check_source(rules, source, what, error)
    place = place or (lambda x: x)
    rows = {}
    for rule in rules:
        if rule.layer is not None:
            rows[rule.path] = rows.get(rule.path, 0) + 1
    by_key = {rule.key: rule for rule in rules}
    tree, stacks = {}, {}
    for key in source.keys():
        rule = by_key[key]
        value = rule.transform.to_flax(source.read(key))
        if dtype is not None:
            value = value.astype(dtype, copy=False)
        if rule.layer is None:
            set_path(tree, rule.path, place(np.ascontiguousarray(value)))
        else:
            if rule.path not in stacks:
                stacks[rule.path] = np.empty((rows[rule.path], *value.shape), value.dtype)
            stacks[rule.path][rule.layer] = value
        if on_tensor:
            on_tensor()
    while stacks:
        path, stack = stacks.popitem()
        set_path(tree, path, place(stack))
        del stack
    return tree


def export_tensors(rules, tree, dtype=None):
    """[(key, original shape, produce)] for the rules whose leaf is in `tree`, in table order;
    produce() returns the tensor in the original layout, contiguous, cast to `dtype`."""
    out = []
    for rule in rules:
        if rule.optional and not has_path(tree, rule.path):
            continue

        def produce(rule=rule):
            value = np.asarray(get_path(tree, rule.path))
            if rule.layer is not None:
                value = value[rule.layer]
            value = rule.transform.to_original(value)
            return np.ascontiguousarray(value if dtype is None else value.astype(dtype, copy=False))

        out.append((rule.key, tuple(rule.shape), produce))
    return out
