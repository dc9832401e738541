"""vita-jax: VITA-Audio (Qwen2 backbone + MCTP modules) in JAX/Flax."""

from vita_jax.model import VitaAudioModel, load_pretrained

__all__ = ["VitaAudioModel", "load_pretrained"]
