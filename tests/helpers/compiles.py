"""Counting JAX traces and XLA compilations inside a block, through jax.monitoring's public events."""

import contextlib

import jax

_COUNTS = {"/jax/core/compile/jaxpr_trace_duration": 0, "/jax/core/compile/backend_compile_duration": 0}


def _listener(event, duration, **kwargs):
    if event in _COUNTS:
        _COUNTS[event] += 1


jax.monitoring.register_event_duration_secs_listener(_listener)


class Counts:
    def __init__(self):
        self._start = dict(_COUNTS)

    @property
    def traces(self):
        return _COUNTS["/jax/core/compile/jaxpr_trace_duration"] - self._start["/jax/core/compile/jaxpr_trace_duration"]

    @property
    def compiles(self):
        key = "/jax/core/compile/backend_compile_duration"
        return _COUNTS[key] - self._start[key]


@contextlib.contextmanager
def count_compiles():
    """`with count_compiles() as counts: ...`; then counts.traces / counts.compiles."""
    yield Counts()
