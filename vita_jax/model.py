"""The user-facing model object: config + parameters + jitted forwards, loading and saving.

    model = vita_jax.load_pretrained("path/to/hf_or_vita_jax_checkpoint")
    out = model.forward(input_ids)          # out.logits [B, T, V], out.mctp_logits: K x [B, T, V]
    model.save_pretrained("out_hf", dtype="bfloat16")
"""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp

from vita_jax import param_checkpoint
from vita_jax.convert.hf_checkpoint import copy_side_files, export_hf, import_hf
from vita_jax.model_config import ModelConfig
from vita_jax.nn.dtypes import as_dtype
from vita_jax.nn.vita_audio import VitaAudio
from vita_jax.param_layout import convert_layer_layout
from vita_jax.param_storage import read_dtype, store

CHECKPOINT_KIND = "vita_audio"
SIDE_FILES_DIR = "hf_files"  # tokenizer / generation files carried inside our own checkpoints


def checked_input_ids(config, input_ids, segment_ids=None, positions=None):
    """input_ids as int32 [B, T], after checking shape, vocabulary range and the extra arrays' shapes."""
    input_ids = jnp.asarray(input_ids, jnp.int32)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [batch, length], got shape {input_ids.shape}")
    if input_ids.size and (int(input_ids.min()) < 0 or int(input_ids.max()) >= config.vocab_size):
        raise ValueError(f"input_ids outside [0, {config.vocab_size}): min {int(input_ids.min())}, "
                         f"max {int(input_ids.max())}")
    for name, extra in (("segment_ids", segment_ids), ("positions", positions)):
        if extra is not None and jnp.shape(extra) != input_ids.shape:
            raise ValueError(f"{name} shape {jnp.shape(extra)} differs from input_ids shape {input_ids.shape}")
    return input_ids


class VitaAudioModel:
    """Holds `config` (ModelConfig) and `params` (a plain pytree); methods are pure and jitted."""

    def __init__(self, config, params, hf_config=None, side_files_dir=None):
        self.config = config
        self.params = params
        self.hf_config = hf_config  # the imported config.json, kept for a faithful export
        self.side_files_dir = side_files_dir
        self.module = VitaAudio(config)

    @classmethod
    def random(cls, config, seed=0):
        """Randomly initialised parameters for `config` (tests, benchmarks)."""
        module = VitaAudio(config)
        dummy = jnp.zeros((1, 2), jnp.int32)
        variables = jax.jit(module.init)(jax.random.key(seed), dummy)
        return cls(config, nn.meta.unbox(variables["params"]))

    def forward(self, input_ids, segment_ids=None, positions=None, with_logits=True):
        """Training-style forward over [B, T] ids (see VitaAudio.__call__)."""
        input_ids = checked_input_ids(self.config, input_ids, segment_ids, positions)
        return _forward(self.params, input_ids, segment_ids, positions, module=self.module, with_logits=with_logits)

    def generate(self, input_ids, mode="turbo", max_new_tokens=128, **options):
        """Generated ids [B, N] (padded after a row stops); see `vita_jax.decode.decoder.prepare`."""
        from vita_jax.decode import generate

        return generate(self, input_ids, mode=mode, max_new_tokens=max_new_tokens, **options)

    def stream(self, input_ids, mode="turbo", max_new_tokens=128, **options):
        """Iterator of TextEvent / AudioChunkEvent / EndEvent; see `vita_jax.decode.stream`."""
        from vita_jax.decode import stream

        return stream(self, input_ids, mode=mode, max_new_tokens=max_new_tokens, **options)

    def save_pretrained(self, out_dir, dtype="bfloat16", max_shard_bytes=5 * 2**30):
        """Write the Hugging Face layout (config.json + sharded safetensors + index)."""
        export_hf(self.params, self.config, out_dir, dtype=dtype, hf_config=self.hf_config,
                  max_shard_bytes=max_shard_bytes, copy_side_files_from=self.side_files_dir)

    def save(self, out_dir):
        """Write this project's own checkpoint (orbax params + metadata: config, layout, vocabulary)."""
        from vita_jax.vocabulary import vocabulary_metadata

        metadata = {
            "model_config": self.config.to_dict(),
            "param_layout": "scanned" if self.config.scan_layers else "unrolled",
            "mesh": None,
            "vocabulary": vocabulary_metadata(self.config.vocab_size),
            "hf_config": self.hf_config,
        }
        side = self.side_files_dir

        def add_side_files(tmp):
            if side:
                copy_side_files(side, os.path.join(tmp, SIDE_FILES_DIR))

        param_checkpoint.save_params(out_dir, self.params, CHECKPOINT_KIND, metadata, before_commit=add_side_files)


@functools.partial(jax.jit, static_argnames=("module", "with_logits"))
def _forward(params, input_ids, segment_ids, positions, *, module, with_logits):
    """The training-style forward, compiled once per (module definition, shapes)."""
    return module.apply({"params": params}, input_ids, segment_ids, positions, with_logits=with_logits)


def read_model_checkpoint(path, kind, scan_layers, param_dtype=None):
    """(ModelConfig, params, metadata) of this project's checkpoint of `kind`, in the requested
    layer layout and parameter dtype."""
    params, meta = param_checkpoint.load_params(path, kind=kind)
    config = ModelConfig.from_dict(meta["model_config"], source=os.path.join(path, "metadata.json"))
    if config.scan_layers != scan_layers:
        params = convert_layer_layout(params, config.num_layers, scan_layers)
        config = config.replace(scan_layers=scan_layers)
    if param_dtype is not None:
        params = jax.tree.map(lambda x: x.astype(as_dtype(param_dtype)), params)
        config = config.replace(param_dtype=param_dtype)
    return config, params, meta


def load_pretrained(path, param_dtype=None, dtype="float32", scan_layers=False, remat_policy="none", progress=True):
    """Load a Hugging Face directory (qwen2 / qwen2_mtp) or a vita_jax checkpoint.

    param_dtype: storage of the parameters, a param_storage.PARAM_DTYPES name (default: as stored);
    dtype: compute dtype; scan_layers: stacked backbone layers (training) or one subtree per layer
    (decoding); remat_policy: which decoder-layer activations are recomputed in the backward pass (nn/remat.py).
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    storage, param_dtype = param_dtype, read_dtype(param_dtype)
    if param_checkpoint.is_param_checkpoint(path):
        config, params, meta = read_model_checkpoint(path, CHECKPOINT_KIND, scan_layers, param_dtype)
        hf_config = meta.get("hf_config")
        side = os.path.join(path, SIDE_FILES_DIR)
        side = side if os.path.isdir(side) else None
    else:
        config, params, hf_config = import_hf(path, param_dtype=param_dtype, scan_layers=scan_layers,
                                              progress=progress)
        side = path
    config = config.replace(dtype=dtype, remat_policy=remat_policy)
    return VitaAudioModel(config, store(params, storage), hf_config, side_files_dir=side)
