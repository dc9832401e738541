"""Shared pieces of the training and data tests: the tiny tokenizer and tiny run configs."""

import json

import jax

from vita_jax import VitaAudioModel
from vita_jax.sharding import global_batch, model_param_shardings, put_global
from vita_jax.train.optimizer import make_optimizer
from vita_jax.train.param_groups import param_labels
from vita_jax.train.train_state import init_train_state, jit_train_step
from vita_jax.train.train_step import LossConfig
from vita_jax.configs.train_base import TINY_DATA
from vita_jax.data.tiny_tokenizer import build_tiny_tokenizer
from vita_jax.data.tokenizer import VocabIds, load_extended_tokenizer

SAMPLE_DATA = TINY_DATA
NUM_AUDIO_CODES = 64
TINY_VOCAB = 384  # 300 BPE + 20 specials + 64 audio tokens


def sample_texts(path=SAMPLE_DATA):
    with open(path) as f:
        return [m["content"] for line in f for m in json.loads(line)["messages"]]


def tiny_tokenizer(tmp_dir):
    """(tokenizer, VocabIds): a real byte-level BPE (trained on the sample data), extended."""
    build_tiny_tokenizer(sample_texts(), str(tmp_dir))
    tok = load_extended_tokenizer(str(tmp_dir), NUM_AUDIO_CODES)
    return tok, VocabIds.of(tok)


def tiny_run_config(stage_module, workdir, steps=6, num_mctp_modules=None, **data):
    """A stage's `:tiny` config shrunk further for tests (64 audio codes, short rows, no export)."""
    cfg = stage_module.get_config("tiny")
    if num_mctp_modules is not None:
        cfg.model.num_mctp_modules = num_mctp_modules
    cfg.model.vocab_size = TINY_VOCAB
    cfg.data.update(num_audio_codes=NUM_AUDIO_CODES, seq_len=160, **data)
    cfg.train.update(steps=steps, global_batch_size=4, log_every=100, workdir=str(workdir))
    cfg.checkpoint.update(every=2, use_async=False)
    cfg.export.enabled = False
    cfg.mesh.update(data=1, fsdp=1, tensor=1, devices=1)
    return cfg


def optim_config(stage_module, **overrides):
    """A stage config's optim section with overrides."""
    optim = stage_module.get_config().optim
    optim.update(overrides)
    return optim


def run_steps(cfg, params, optim, trainable, batch, mesh, steps=1, microbatches=1):
    model_module = VitaAudioModel(cfg, params).module
    params = put_global(params, model_param_shardings(model_module, mesh, params))
    labels = param_labels(params, trainable)
    tx = make_optimizer(optim, 100, labels)
    state, state_sh = init_train_state(params, tx, mesh)
    step = jit_train_step(model_module, tx, labels, LossConfig.of(cfg, trainable, 1.0), state_sh, mesh,
                          microbatches)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, global_batch(batch, mesh))
        losses.append(float(metrics["loss"]))
    return jax.device_get(state["params"]), losses, metrics
