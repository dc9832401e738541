"""VITA-Audio-Plus: continuous speech input through the SenseVoice-Small encoder and an adapter."""

from vita_jax.plus.model import PlusModel, is_plus_checkpoint, load_plus

__all__ = ["PlusModel", "is_plus_checkpoint", "load_plus"]
