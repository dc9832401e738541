"""The model a stage starts from: random (config geometry) or a checkpoint (Hugging Face or this
project's), grown to the stage's MCTP count and to the tokenizer's vocabulary; placed on the mesh."""

import flax.linen as nn
import jax
import jax.numpy as jnp
from vita_jax.model import load_pretrained
from vita_jax.model_config import ModelConfig
from vita_jax.nn.vita_audio import VitaAudio
from vita_jax.round_up import round_up
from vita_jax.sharding import model_param_shardings, put_global
from vita_jax.train.grow_model import grow_mctp_modules, resize_vocab


def initial_params(cfg, tokenizer_size, mesh):
    """(ModelConfig, params placed on `mesh`, imported hf_config or None) for the run config `cfg`."""
    stage = ModelConfig.from_dict(cfg.model, source="run config section model")
    if cfg.init.checkpoint:
        model = load_pretrained(cfg.init.checkpoint, param_dtype=stage.param_dtype, dtype=stage.dtype,
                                scan_layers=stage.scan_layers, remat_policy=stage.remat_policy, progress=False)
        mcfg = model.config
        params, hf_config = model.params, model.hf_config
        if mcfg.vocab_size < tokenizer_size:
            mcfg = mcfg.replace(vocab_size=round_up(tokenizer_size, 8))
            params = resize_vocab(params, mcfg.vocab_size)
        mcfg = mcfg.replace(num_mctp_modules=stage.num_mctp_modules, attention=stage.attention)
        params = grow_mctp_modules(params, mcfg, stage.num_mctp_modules, jax.random.key(cfg.init.seed))
        module = VitaAudio(mcfg)
        return mcfg, put_global(params, model_param_shardings(module, mesh, params)), hf_config
    mcfg = stage
    if mcfg.vocab_size < tokenizer_size:
        raise ValueError(f"model.vocab_size {mcfg.vocab_size} is smaller than the tokenizer ({tokenizer_size} "
                         f"tokens); set --config.model.vocab_size={round_up(tokenizer_size, 8)}")
    module = VitaAudio(mcfg)
    dummy = jnp.zeros((1, 2), jnp.int32)

    def init(rng):
        return nn.meta.unbox(module.init(rng, dummy)["params"])

    abstract = jax.eval_shape(init, jax.random.key(0))
    shardings = model_param_shardings(module, mesh, abstract)
    return mcfg, jax.jit(init, out_shardings=shardings)(jax.random.key(cfg.init.seed)), None
