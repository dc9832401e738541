"""The flow model (`MaskedDiffWithXvec.inference`, spec section 3): tokens -> mel by CFM.

Parameters are one dict whose top-level keys are the PyTorch submodule names
(`input_embedding`, `spk_embed_affine_layer`, `encoder`, `encoder_proj`,
`length_regulator`, `decoder.estimator`); each sub-tree belongs to one Flax module below.
Sequences live in fixed-size buffers with explicit valid lengths so that one compiled
program serves every length up to the buffer size.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vita_jax.audio.decoder_config import FlowConfig
from vita_jax.audio.decoder_layers import length_mask
from vita_jax.audio.flow_encoder import FlowEncoder
from vita_jax.audio.flow_estimator import FlowEstimator
from vita_jax.audio.flow_matching import LengthRegulator, solve_cfm


def flow_modules(cfg: FlowConfig):
    """The Flax module of each top-level parameter group."""
    return {
        "input_embedding": nn.Embed(cfg.vocab_size, cfg.input_size),
        "spk_embed_affine_layer": nn.Dense(cfg.output_size),
        "encoder": FlowEncoder(cfg),
        "encoder_proj": nn.Dense(cfg.output_size),
        "length_regulator": LengthRegulator(cfg.regulator_channels, cfg.regulator_blocks),
        "decoder.estimator": FlowEstimator(cfg),
    }


def init_flow_params(cfg: FlowConfig, key):
    """Flax-initialised flow parameters (use under `jax.eval_shape` for the shapes alone)."""
    mods = flow_modules(cfg)
    c, t = cfg.output_size, 4
    examples = {
        "input_embedding": (jnp.zeros((1, 2), jnp.int32),),
        "spk_embed_affine_layer": (jnp.zeros((1, cfg.spk_embed_dim)),),
        "encoder": (jnp.zeros((1, 2, cfg.input_size)), jnp.ones((1, 2), bool)),
        "encoder_proj": (jnp.zeros((1, 2, cfg.encoder_size)),),
        "length_regulator": (jnp.zeros((1, 2, c)), 2, t, t),
        "decoder.estimator": (jnp.zeros((1, t, c)), jnp.ones((1, t, 1)), jnp.zeros((1, t, c)), jnp.zeros((1,)),
                              jnp.zeros((1, c)), jnp.zeros((1, t, c))),
    }

    keys = dict(zip(mods, jax.random.split(key, len(mods))))
    return {name: mods[name].init(keys[name], *examples[name])["params"] for name in mods}


def speaker_vector(params, embedding):
    """spk_embed_affine_layer(F.normalize(embedding)): [B, spk_embed_dim] -> [B, n_mels]."""
    norm = jnp.maximum(jnp.linalg.norm(embedding, axis=-1, keepdims=True), 1e-12)
    p = params["spk_embed_affine_layer"]
    return (embedding / norm) @ p["kernel"] + p["bias"]


def encode_tokens(params, cfg: FlowConfig, tokens, n_tokens, n_frames, out_size):
    """tokens [B, L] (valid prefix `n_tokens`) -> mu [B, out_size, n_mels] (valid prefix `n_frames`)."""
    valid = jnp.arange(tokens.shape[1])[None, :] < n_tokens
    x = jnp.take(params["input_embedding"]["embedding"], jnp.maximum(tokens, 0), axis=0) * valid[..., None]
    h = FlowEncoder(cfg).apply({"params": params["encoder"]}, x, valid)
    h = h @ params["encoder_proj"]["kernel"] + params["encoder_proj"]["bias"]
    lr = LengthRegulator(cfg.regulator_channels, cfg.regulator_blocks)
    return lr.apply({"params": params["length_regulator"]}, h, n_tokens, n_frames, out_size)


def estimator_fn(params, cfg: FlowConfig, padded=True):
    """The estimator as a function (x, mask, mu, t, spks, cond) -> velocity."""
    est = FlowEstimator(cfg)

    def estimate(x, mask, mu, t, spks, cond):
        return est.apply({"params": params["decoder.estimator"]}, x, mask, mu, t, spks, cond, padded)

    return estimate


def flow_inference(params, cfg: FlowConfig, tokens, n_tokens, n_frames, noise, cond, embedding=None,
                   n_timesteps=None, padded=True):
    """Mel [1, T_buf, n_mels] for `tokens` [1, L_buf]: valid frames [0, n_frames), zero beyond.

    `noise` [1, T_buf, n_mels] is the CFM's initial state; `cond` [1, T_buf, n_mels] holds the
    prompt mel in its first frames and zeros elsewhere (all zeros without a prompt).
    `padded=False` states that the buffers hold no padding (faster attention).
    `n_timesteps`: Euler steps of the CFM (default: the config's `n_timesteps`, 10 in the release).
    """
    n_timesteps = cfg.n_timesteps if n_timesteps is None else n_timesteps
    out_size = noise.shape[1]
    if embedding is None:
        embedding = jnp.zeros((tokens.shape[0], cfg.spk_embed_dim), jnp.float32)
    spks = speaker_vector(params, embedding)
    mu = encode_tokens(params, cfg, tokens, n_tokens, n_frames, out_size)
    mask = length_mask(out_size, n_frames)
    mel = solve_cfm(estimator_fn(params, cfg, padded), noise, mu, mask, spks, cond, n_timesteps, cfg.inference_cfg_rate)
    return mel * mask
