"""The VITA-Audio-Plus model a training stage starts from (`plus.enabled`): a Plus checkpoint
(Hugging Face or this project's, via load_plus) or random weights of the config's geometry
(`model` + `plus.audio`), the MCTP modules grown to the stage's count, placed on the mesh.
The vocabulary must already fit the run's tokenizer (no resize of a Plus checkpoint here)."""

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp

from vita_jax.model_config import ModelConfig
from vita_jax.plus.frontend import FEATURE_SIZE, Frontend
from vita_jax.plus.sensevoice import SenseVoiceConfig
from vita_jax.plus.vita_audio_plus import VitaAudioPlus
from vita_jax.sharding import logical_param_specs, param_shardings, put_global
from vita_jax.train.grow_model import grow_mctp_modules


@dataclasses.dataclass
class PlusStart:
    config: ModelConfig
    audio_config: SenseVoiceConfig
    module: VitaAudioPlus
    params: dict
    frontend: Frontend
    cmvn_file: str
    hf_config: dict = None


def _init_args():
    return jnp.zeros((1, 2), jnp.int32), jnp.zeros((1, 1, FEATURE_SIZE)), jnp.ones((1,), jnp.int32)


def initial_plus_params(cfg, tokenizer_size, context_id, mesh):
    """PlusStart for the run config `cfg` (sections model, init, plus)."""
    from vita_jax.plus import load_plus

    stage = ModelConfig.from_dict(cfg.model, source="run config section model")
    if cfg.init.checkpoint:
        model = load_plus(cfg.init.checkpoint, param_dtype=stage.param_dtype, dtype=stage.dtype,
                          scan_layers=stage.scan_layers, remat_policy=stage.remat_policy, progress=False)
        if model.tokens.context_of_audio != context_id:
            raise ValueError(f"{cfg.init.checkpoint}: <|context_of_audio|> is id {model.tokens.context_of_audio} but "
                             f"the run's tokenizer has it at {context_id}; train with the checkpoint's tokenizer")
        mcfg = model.config.replace(num_mctp_modules=stage.num_mctp_modules, attention=stage.attention)
        if mcfg.vocab_size < tokenizer_size:
            raise ValueError(f"{cfg.init.checkpoint}: vocab_size {mcfg.vocab_size} < the tokenizer's {tokenizer_size}")
        params = dict(model.params)
        params.update(grow_mctp_modules({k: v for k, v in params.items() if not k.startswith("audio_")}, mcfg,
                                        stage.num_mctp_modules, jax.random.key(cfg.init.seed)))
        audio_config, hf_config = model.audio_config, model.hf_config
        cmvn_file = os.path.join(model.side_files_dir, "am.mvn")
    else:
        if stage.vocab_size < tokenizer_size:
            raise ValueError(f"model.vocab_size {stage.vocab_size} is smaller than the tokenizer ({tokenizer_size} "
                             f"tokens)")
        mcfg, hf_config, params = stage, None, None
        audio_config = SenseVoiceConfig(**dict(cfg.plus.audio))
        cmvn_file = cfg.plus.cmvn_file
        if not cmvn_file:
            raise ValueError("plus.cmvn_file: a random Plus model needs the am.mvn of its front end")
    audio_config = dataclasses.replace(audio_config, param_dtype=mcfg.param_dtype)
    frontend = Frontend.from_file(cmvn_file)
    module = VitaAudioPlus(mcfg, audio_config=audio_config, context_token_id=context_id)

    def init(rng):
        return nn.meta.unbox(module.init(rng, *_init_args())["params"])

    abstract = jax.eval_shape(init, jax.random.key(0))
    shardings = param_shardings(logical_param_specs(module, *_init_args()), mesh, abstract)
    if params is None:
        params = jax.jit(init, out_shardings=shardings)(jax.random.key(cfg.init.seed))
    else:
        params = put_global(params, shardings)
    return PlusStart(mcfg, audio_config, module, params, frontend, cmvn_file, hf_config)
