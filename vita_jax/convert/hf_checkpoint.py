"""Hugging Face Qwen2 / Qwen2-MTP checkpoints <-> Flax parameters of `VitaAudio`.

The mapping is one table (`param_table`): each Hugging Face key with its path in the Flax
tree, its layer index when backbone layers are stacked (scanned layout), and a pair of
transform hooks. Import streams tensor by tensor; export writes sharded safetensors through a
temporary directory that is renamed at the end.
"""

import dataclasses
import json
import os
import shutil
from typing import Callable, Optional

import jax
import numpy as np
from tqdm.auto import tqdm

from vita_jax.convert.param_paths import get_path, set_path
from vita_jax.convert.safetensors_io import SafetensorsReader, write_safetensors
from vita_jax.atomic import atomic_directory
from vita_jax.json_file import read_json
from vita_jax.model_config import from_hf_config, to_hf_config
from vita_jax.nn.dtypes import DTYPES

WEIGHT_DTYPES = {name: np.dtype(dtype) for name, dtype in DTYPES.items()}
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Files beside the weights that travel with a checkpoint (tokenizer, generation config, ...).
SIDE_FILE_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".py")
WEIGHT_AND_CONFIG_FILES = ("config.json", INDEX_FILE)


class CheckpointError(ValueError):
    """A checkpoint that does not match its config; the message names the key, file and shapes."""


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    hf_key: str
    path: tuple
    layer: Optional[int]  # index on the stacked layer axis (scanned layout), else None
    hf_shape: tuple
    to_flax: Callable
    to_hf: Callable


def _identity(x):
    return x


def _transpose(x):
    return np.ascontiguousarray(x.T)


def _layer_specs(cfg, hf_prefix, flax_prefix, layer):
    """The 12 tensors of one decoder layer."""
    e, d, m = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size

    def heads_in(heads):  # HF [heads*d, e] -> kernel [e, heads, d]
        return (lambda w: np.ascontiguousarray(w.T).reshape(e, heads, d),
                lambda k: np.ascontiguousarray(k.reshape(e, heads * d).T))

    def heads_bias(heads):
        return (lambda b: b.reshape(heads, d), lambda b: b.reshape(heads * d))

    def spec(hf, path, shape, hooks):
        return ParamSpec(hf_prefix + hf, flax_prefix + path, layer, shape, *hooks)

    h, kv = cfg.num_heads, cfg.num_kv_heads
    attn = ("self_attn",)
    return [
        spec("self_attn.q_proj.weight", attn + ("q_proj", "kernel"), (h * d, e), heads_in(h)),
        spec("self_attn.q_proj.bias", attn + ("q_proj", "bias"), (h * d,), heads_bias(h)),
        spec("self_attn.k_proj.weight", attn + ("k_proj", "kernel"), (kv * d, e), heads_in(kv)),
        spec("self_attn.k_proj.bias", attn + ("k_proj", "bias"), (kv * d,), heads_bias(kv)),
        spec("self_attn.v_proj.weight", attn + ("v_proj", "kernel"), (kv * d, e), heads_in(kv)),
        spec("self_attn.v_proj.bias", attn + ("v_proj", "bias"), (kv * d,), heads_bias(kv)),
        spec("self_attn.o_proj.weight", attn + ("o_proj", "kernel"), (e, h * d),
             (lambda w: np.ascontiguousarray(w.T).reshape(h, d, e),
              lambda k: np.ascontiguousarray(k.reshape(h * d, e).T))),
        spec("mlp.gate_proj.weight", ("mlp", "gate_proj", "kernel"), (m, e), (_transpose, _transpose)),
        spec("mlp.up_proj.weight", ("mlp", "up_proj", "kernel"), (m, e), (_transpose, _transpose)),
        spec("mlp.down_proj.weight", ("mlp", "down_proj", "kernel"), (e, m), (_transpose, _transpose)),
        spec("input_layernorm.weight", ("input_layernorm", "weight"), (e,), (_identity, _identity)),
        spec("post_attention_layernorm.weight", ("post_attention_layernorm", "weight"), (e,), (_identity, _identity)),
    ]


def param_table(cfg):
    """Every tensor of the checkpoint for `cfg`, in Hugging Face order."""
    e, v = cfg.hidden_size, cfg.vocab_size
    same = (_identity, _identity)
    table = [ParamSpec("model.embed_tokens.weight", ("backbone", "embed_tokens", "embedding"), None, (v, e), *same)]
    for i in range(cfg.num_layers):
        if cfg.scan_layers:
            table += _layer_specs(cfg, f"model.layers.{i}.", ("backbone", "layers", "layer"), i)
        else:
            table += _layer_specs(cfg, f"model.layers.{i}.", ("backbone", f"layers_{i}"), None)
    for k in range(cfg.num_mctp_modules):
        table += _layer_specs(cfg, f"model.layers.{cfg.num_layers + k}.", (f"mctp_{k}", "layer"), None)
    table.append(ParamSpec("model.norm.weight", ("backbone", "norm", "weight"), None, (e,), *same))
    table.append(ParamSpec("lm_head.weight", ("backbone", "lm_head", "weight"), None, (v, e), *same))
    for k in range(cfg.num_mctp_modules):
        table += [
            ParamSpec(f"mtp_projs.{k}.weight", (f"mctp_{k}", "proj", "kernel"), None, (e, 2 * e),
                      _transpose, _transpose),
            ParamSpec(f"mtp_embed_norms.{k}.weight", (f"mctp_{k}", "embed_norm", "weight"), None, (e,), *same),
            ParamSpec(f"mtp_hidden_norms.{k}.weight", (f"mctp_{k}", "hidden_norm", "weight"), None, (e,), *same),
        ]
    return table


def read_hf_config(hf_dir):
    path = os.path.join(hf_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config.json in {hf_dir}")
    return read_json(path)


def is_hf_checkpoint(path):
    """True when `path` holds a Hugging Face checkpoint (config.json and its safetensors)."""
    return os.path.isfile(os.path.join(path, "config.json")) and any(
        os.path.isfile(os.path.join(path, name)) for name in (INDEX_FILE, SINGLE_FILE))


def weight_files(hf_dir):
    """The safetensors files of a checkpoint: from the index when sharded, else model.safetensors."""
    index_path = os.path.join(hf_dir, INDEX_FILE)
    if os.path.isfile(index_path):
        weight_map = read_json(index_path).get("weight_map")
        if not weight_map:
            raise CheckpointError(f"{index_path}: no weight_map")
        files = sorted(set(weight_map.values()))
    else:
        files = [SINGLE_FILE]
    paths = [os.path.join(hf_dir, name) for name in files]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint file missing: {path}")
    return paths


def side_files(hf_dir):
    """Names of the small non-weight files (tokenizer, generation config...) in a checkpoint."""
    return sorted(
        name for name in os.listdir(hf_dir)
        if name.endswith(SIDE_FILE_SUFFIXES) and name not in WEIGHT_AND_CONFIG_FILES
        and os.path.isfile(os.path.join(hf_dir, name))
    )


def copy_side_files(src_dir, dst_dir):
    """Copy the side files of checkpoint `src_dir` into `dst_dir`."""
    os.makedirs(dst_dir, exist_ok=True)
    for name in side_files(src_dir):
        shutil.copy2(os.path.join(src_dir, name), os.path.join(dst_dir, name))


def import_hf(hf_dir, param_dtype=None, scan_layers=False, progress=True):
    """Read a Hugging Face directory. Returns (model config, Flax params, original config.json dict).

    `param_dtype` (a WEIGHT_DTYPES name) defaults to the dtype the tensors are stored in, so
    host memory stays close to the checkpoint's size.
    """
    hf_config = read_hf_config(hf_dir)
    cfg = from_hf_config(hf_config, source=os.path.join(hf_dir, "config.json"))
    cfg.scan_layers = scan_layers
    by_key = {spec.hf_key: spec for spec in param_table(cfg)}
    readers = [SafetensorsReader(path) for path in weight_files(hf_dir)]

    stored = {reader.dtype(key) for reader in readers for key in reader.keys()}
    if param_dtype is None:
        if len(stored) != 1 or next(iter(stored)) not in WEIGHT_DTYPES.values():
            raise CheckpointError(f"{hf_dir}: tensors stored as {sorted(map(str, stored))}; pass param_dtype explicitly")
        target = next(iter(stored))
    else:
        target = WEIGHT_DTYPES[param_dtype]
    cfg.param_dtype = {dt: name for name, dt in WEIGHT_DTYPES.items()}[target]

    stacks, seen, tree = {}, set(), {}
    total = sum(len(reader.keys()) for reader in readers)
    with tqdm(total=total, desc=f"import {os.path.basename(os.path.normpath(hf_dir))}", unit="tensor",
              disable=not progress) as bar:
        for reader in readers:
            for key in reader.keys():
                spec = by_key.get(key)
                if spec is None:
                    raise CheckpointError(f"{reader.path}: unexpected tensor {key!r} for a "
                                          f"{hf_config['model_type']} model with {cfg.num_layers} backbone layers "
                                          f"and {cfg.num_mctp_modules} MCTP modules")
                if key in seen:
                    raise CheckpointError(f"{reader.path}: tensor {key!r} appears in more than one file")
                if reader.shape(key) != spec.hf_shape:
                    raise CheckpointError(f"{reader.path}: tensor {key!r} has shape {reader.shape(key)}, "
                                          f"config.json implies {spec.hf_shape}")
                value = spec.to_flax(reader.read(key)).astype(target, copy=False)
                if spec.layer is None:
                    set_path(tree, spec.path, _to_device(value))
                else:
                    if spec.path not in stacks:
                        stacks[spec.path] = np.empty((cfg.num_layers, *value.shape), target)
                    stacks[spec.path][spec.layer] = value
                seen.add(key)
                bar.update()
    missing = [key for key in by_key if key not in seen]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(f"{hf_dir}: missing tensors {shown}")
    while stacks:
        path, stack = stacks.popitem()
        set_path(tree, path, _to_device(stack))
        del stack
    return cfg, tree, hf_config


def _to_device(host_array):
    """A JAX array holding `host_array`, waited for so the host copy can be freed right away
    (asynchronous transfers would otherwise keep every host buffer alive at once)."""
    return jax.block_until_ready(jax.device_put(host_array))


def plan_shards(table, dtype, max_shard_bytes):
    """Split the table, in order, into shards of at most `max_shard_bytes` (a lone larger tensor gets its own)."""
    shards, size = [[]], 0
    for spec in table:
        nbytes = int(np.prod(spec.hf_shape)) * np.dtype(dtype).itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += nbytes
    return shards


def shard_names(count):
    """File names of `count` shards, as transformers names them."""
    if count == 1:
        return [SINGLE_FILE]
    return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


def export_hf(params, cfg, out_dir, dtype="bfloat16", hf_config=None, max_shard_bytes=5 * 2**30,
              copy_side_files_from=None, progress=True):
    """Write `params` as a Hugging Face checkpoint (config.json, safetensors shards, index).

    `hf_config`: an imported config.json whose other fields are kept. `copy_side_files_from`:
    a directory whose tokenizer/generation files are copied alongside. Nothing is left
    half-written: the directory is assembled under a temporary name and renamed.
    """
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"unknown export dtype {dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)}")
    target = WEIGHT_DTYPES[dtype]
    table = param_table(cfg)
    by_key = {spec.hf_key: spec for spec in table}
    shards = plan_shards(table, target, max_shard_bytes)

    def produce(key):
        spec = by_key[key]
        value = get_path(params, spec.path)
        if spec.layer is not None:
            value = value[spec.layer]
        return spec.to_hf(np.asarray(value)).astype(target, copy=False)

    names = shard_names(len(shards))
    with atomic_directory(out_dir, replaceable=is_hf_checkpoint) as tmp:
        with tqdm(total=len(table), desc=f"export {os.path.basename(out_dir)}", unit="tensor",
                  disable=not progress) as bar:
            for name, shard in zip(names, shards):
                def produce_and_count(key):
                    bar.update()
                    return produce(key)

                write_safetensors(os.path.join(tmp, name), [(s.hf_key, s.hf_shape, target) for s in shard],
                                  produce_and_count, metadata={"format": "pt"})
        if len(shards) > 1:
            index = {"metadata": {"total_size": sum(int(np.prod(s.hf_shape)) * target.itemsize for s in table)},
                     "weight_map": {s.hf_key: name for name, shard in zip(names, shards) for s in shard}}
            with open(os.path.join(tmp, INDEX_FILE), "w") as f:
                json.dump(index, f, indent=2)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(to_hf_config(cfg, dtype, base=hf_config), f, indent=2)
        if copy_side_files_from:
            copy_side_files(copy_side_files_from, tmp)
