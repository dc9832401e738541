"""VITA-Audio-Plus: continuous speech input through the SenseVoice-Small encoder and an adapter.

`from vita_jax.plus import load_plus` (imported lazily: the checkpoint converter imports the
encoder's config from this package without pulling in the model)."""

__all__ = ["PlusModel", "is_plus_checkpoint", "load_plus"]


def __getattr__(name):
    if name in __all__:
        from vita_jax.plus import model

        return getattr(model, name)
    raise AttributeError(f"module 'vita_jax.plus' has no attribute {name!r}")
