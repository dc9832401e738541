"""Parameter trees of the GLM-4-Voice speech decoder: their shapes for a config, and random values
of those shapes (the built-in demo, tests and benchmarks)."""

import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.audio.decoder_config import DecoderConfig
from vita_jax.audio.flow_model import init_flow_params
from vita_jax.audio.hift import HiFTGenerator, draw_source_noise


def decoder_param_shapes(cfg: DecoderConfig):
    """{'flow': ..., 'hift': ...} trees of ShapeDtypeStructs for `cfg` (traced, nothing computed)."""

    def init(key):
        k_flow, k_hift = jax.random.split(key)
        frames = 2
        phase, noise = draw_source_noise(k_hift, cfg.hift, frames * cfg.hift.hop_samples)
        mel = jnp.zeros((1, frames, cfg.hift.in_channels))
        return {"flow": init_flow_params(cfg.flow, k_flow),
                "hift": HiFTGenerator(cfg.hift).init(k_hift, mel, phase, noise)["params"]}

    return jax.eval_shape(init, jax.random.key(0))


def random_decoder_params(cfg: DecoderConfig, seed=0):
    """Random float32 parameters of the checkpoint's shapes (tests and benchmarks), drawn with
    numpy in seconds: kernels ~ N(0, 1/fan_in), embeddings N(0, 1), norms 1, biases 0, and
    weight-norm pairs with g = ||v|| (so the folded weight equals v)."""
    rng = np.random.default_rng(seed)

    def fill(tree):
        out = {}
        for name, value in tree.items():
            if isinstance(value, dict):
                out[name] = fill(value)
            elif name in ("kernel", "transpose_kernel", "weight_v"):
                fan_in = np.prod(value.shape[:-1]) if name != "weight_v" else np.prod(value.shape[1:])
                out[name] = (rng.standard_normal(value.shape, np.float32) / np.sqrt(fan_in)).astype(np.float32)
            elif name in ("embedding", "pos_bias_u", "pos_bias_v"):
                out[name] = rng.standard_normal(value.shape, np.float32) * (1.0 if name == "embedding" else 0.1)
            elif name in ("scale", "alpha"):
                out[name] = np.ones(value.shape, np.float32)
            else:  # bias, weight_g (set below)
                out[name] = np.zeros(value.shape, np.float32)
        if "weight_g" in out:
            out["weight_g"] = np.sqrt(np.sum(np.square(out["weight_v"]), axis=(1, 2), keepdims=True))
        return out

    return fill(decoder_param_shapes(cfg))
