"""GLM-4-Voice speech side in JAX: tokenizer (wav -> codes) and decoder (codes -> wav).

Entry points are imported lazily so that the LLM side never pays for audio imports.
"""

import importlib

_LAZY = {
    "load_tokenizer": "vita_jax.audio.speech_tokenizer",
    "load_decoder": "vita_jax.audio.speech_decoder",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vita_jax.audio' has no attribute {name!r}")


__all__ = list(_LAZY)
