"""Hugging Face Qwen2 / Qwen2-MTP checkpoints <-> Flax parameters of `VitaAudio`.

The mapping is one table of rules (`param_table`, see vita_jax/convert/rules.py): each Hugging
Face key with its path in the Flax tree, its row when backbone layers are stacked (scanned
layout) and a named transform. Import streams tensor by tensor; export writes sharded
safetensors through a temporary directory that is renamed at the end.
"""

import json
import os
import shutil

import jax
import numpy as np
from tqdm.auto import tqdm

from vita_jax.atomic import atomic_directory
from vita_jax.convert.rules import IDENTITY, TRANSPOSE, ConversionError, Rule, Transform, export_tensors, import_tree
from vita_jax.convert.safetensors_io import SafetensorsSource, write_safetensors
from vita_jax.json_file import read_json
from vita_jax.model_config import from_hf_config, to_hf_config
from vita_jax.nn.dtypes import DTYPES

WEIGHT_DTYPES = {name: np.dtype(dtype) for name, dtype in DTYPES.items()}
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Files beside the weights that travel with a checkpoint (tokenizer, generation config, ...).
SIDE_FILE_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".py")
WEIGHT_AND_CONFIG_FILES = ("config.json", INDEX_FILE)


class CheckpointError(ConversionError):
    """A checkpoint that does not match its config; the message names the key, file and shapes."""


def split_heads(e, heads, d):
    """q/k/v weight [heads*d, e] <-> kernel [e, heads, d]."""
    return Transform("split_heads", lambda w: w.T.reshape(e, heads, d), lambda k: k.reshape(e, heads * d).T)


def split_head_bias(heads, d):
    """q/k/v bias [heads*d] <-> [heads, d]."""
    return Transform("split_head_bias", lambda b: b.reshape(heads, d), lambda b: b.reshape(heads * d))


def merge_heads(e, heads, d):
    """o_proj weight [e, heads*d] <-> kernel [heads, d, e]."""
    return Transform("merge_heads", lambda w: w.T.reshape(heads, d, e), lambda k: k.reshape(heads * d, e).T)


def _layer_rules(cfg, hf_prefix, flax_prefix, layer):
    """The 12 tensors of one decoder layer."""
    e, d, m = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size
    h, kv = cfg.num_heads, cfg.num_kv_heads

    def rule(hf, path, shape, transform):
        return Rule(hf_prefix + hf, flax_prefix + path, shape, transform, layer)

    attn = ("self_attn",)
    return [
        rule("self_attn.q_proj.weight", attn + ("q_proj", "kernel"), (h * d, e), split_heads(e, h, d)),
        rule("self_attn.q_proj.bias", attn + ("q_proj", "bias"), (h * d,), split_head_bias(h, d)),
        rule("self_attn.k_proj.weight", attn + ("k_proj", "kernel"), (kv * d, e), split_heads(e, kv, d)),
        rule("self_attn.k_proj.bias", attn + ("k_proj", "bias"), (kv * d,), split_head_bias(kv, d)),
        rule("self_attn.v_proj.weight", attn + ("v_proj", "kernel"), (kv * d, e), split_heads(e, kv, d)),
        rule("self_attn.v_proj.bias", attn + ("v_proj", "bias"), (kv * d,), split_head_bias(kv, d)),
        rule("self_attn.o_proj.weight", attn + ("o_proj", "kernel"), (e, h * d), merge_heads(e, h, d)),
        rule("mlp.gate_proj.weight", ("mlp", "gate_proj", "kernel"), (m, e), TRANSPOSE),
        rule("mlp.up_proj.weight", ("mlp", "up_proj", "kernel"), (m, e), TRANSPOSE),
        rule("mlp.down_proj.weight", ("mlp", "down_proj", "kernel"), (e, m), TRANSPOSE),
        rule("input_layernorm.weight", ("input_layernorm", "weight"), (e,), IDENTITY),
        rule("post_attention_layernorm.weight", ("post_attention_layernorm", "weight"), (e,), IDENTITY),
    ]


def param_table(cfg):
    """The rules of every tensor of the checkpoint for `cfg`, in Hugging Face order."""
    e, v = cfg.hidden_size, cfg.vocab_size
    table = [Rule("model.embed_tokens.weight", ("backbone", "embed_tokens", "embedding"), (v, e))]
    for i in range(cfg.num_layers):
        if cfg.scan_layers:
            table += _layer_rules(cfg, f"model.layers.{i}.", ("backbone", "layers", "layer"), i)
        else:
            table += _layer_rules(cfg, f"model.layers.{i}.", ("backbone", f"layers_{i}"), None)
    for k in range(cfg.num_mctp_modules):
        table += _layer_rules(cfg, f"model.layers.{cfg.num_layers + k}.", (f"mctp_{k}", "layer"), None)
    table.append(Rule("model.norm.weight", ("backbone", "norm", "weight"), (e,)))
    table.append(Rule("lm_head.weight", ("backbone", "lm_head", "weight"), (v, e)))
    for k in range(cfg.num_mctp_modules):
        table += [
            Rule(f"mtp_projs.{k}.weight", (f"mctp_{k}", "proj", "kernel"), (e, 2 * e), TRANSPOSE),
            Rule(f"mtp_embed_norms.{k}.weight", (f"mctp_{k}", "embed_norm", "weight"), (e,)),
            Rule(f"mtp_hidden_norms.{k}.weight", (f"mctp_{k}", "hidden_norm", "weight"), (e,)),
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
    cfg = cfg.replace(scan_layers=scan_layers)
    source = SafetensorsSource(weight_files(hf_dir), hf_dir)
    target = stored_dtype(source, param_dtype)
    cfg = cfg.replace(param_dtype={dt: name for name, dt in WEIGHT_DTYPES.items()}[target])
    what = (f"config.json ({hf_config['model_type']}, {cfg.num_layers} backbone layers, "
            f"{cfg.num_mctp_modules} MCTP modules)")
    with tqdm(total=len(source.keys()), desc=f"import {os.path.basename(os.path.normpath(hf_dir))}",
              unit="tensor", disable=not progress) as bar:
        tree = import_tree(param_table(cfg), source, what, CheckpointError, dtype=target, place=place_on_device,
                           on_tensor=bar.update)
    return cfg, tree, hf_config


def stored_dtype(source, param_dtype=None):
    """The numpy dtype to import into: `param_dtype` (a WEIGHT_DTYPES name), else the one dtype
    the source's tensors are stored in."""
    if param_dtype is not None:
        return WEIGHT_DTYPES[param_dtype]
    stored = {source.dtype(key) for key in source.keys()}
    if len(stored) != 1 or next(iter(stored)) not in WEIGHT_DTYPES.values():
        raise CheckpointError(f"{source.name}: tensors stored as {sorted(map(str, stored))}; pass param_dtype explicitly")
    return next(iter(stored))


def place_on_device(host_array):
    """A JAX array holding `host_array`, waited for so the host copy can be freed right away
    (asynchronous transfers would otherwise keep every host buffer alive at once)."""
    return jax.block_until_ready(jax.device_put(host_array))


def plan_shards(tensors, dtype, max_shard_bytes):
    """Split (key, shape, ...) entries, in order, into shards of at most `max_shard_bytes` (a lone
    larger tensor gets its own)."""
    shards, size = [[]], 0
    for entry in tensors:
        nbytes = int(np.prod(entry[1])) * np.dtype(dtype).itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += nbytes
    return shards


def shard_names(count):
    """File names of `count` shards, as transformers names them."""
    if count == 1:
        return [SINGLE_FILE]
    return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


def write_weights(out_dir, tensors, dtype, max_shard_bytes, label, progress=True):
    """Write (key, shape, produce) tensors of `dtype` into `out_dir` as safetensors shards of at most
    `max_shard_bytes` (named as transformers names them) plus the index when there are several."""
    shards = plan_shards(tensors, dtype, max_shard_bytes)
    names = shard_names(len(shards))
    with tqdm(total=len(tensors), desc=label, unit="tensor", disable=not progress) as bar:
        for name, shard in zip(names, shards):
            produce = {key: make for key, _, make in shard}

            def produce_and_count(key, produce=produce):
                bar.update()
                return produce[key]()

            write_safetensors(os.path.join(out_dir, name), [(key, shape, dtype) for key, shape, _ in shard],
                              produce_and_count, metadata={"format": "pt"})
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(int(np.prod(shape)) * dtype.itemsize for _, shape, _ in tensors)},
                 "weight_map": {key: name for name, shard in zip(names, shards) for key, _, _ in shard}}
        with open(os.path.join(out_dir, INDEX_FILE), "w") as f:
            json.dump(index, f, indent=2)


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
    tensors = export_tensors(param_table(cfg), params, dtype=target)
    with atomic_directory(out_dir, replaceable=is_hf_checkpoint) as tmp:
        write_weights(tmp, tensors, target, max_shard_bytes, f"export {os.path.basename(out_dir)}", progress)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(to_hf_config(cfg, dtype, base=hf_config), f, indent=2)
        if copy_side_files_from:
            copy_side_files(copy_side_files_from, tmp)
