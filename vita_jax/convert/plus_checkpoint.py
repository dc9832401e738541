"""VITA-Audio-Plus Hugging Face folders (`model_type` qwen2_mtp_sensevoice) <-> Flax parameters.

The LLM part (backbone, MCTP modules, shared head) is `hf_checkpoint.param_table`; this file adds
the SenseVoice encoder (`model.audio_model.model.*`) and the adapter (`model.audio_projection.*`).
The CTC head of SenseVoice is never used; its tensors are carried under `params["unused"]` so
that an export reproduces the checkpoint. Beside the weights, the folder must hold SenseVoice's
`am.mvn` (CMVN of the front end); its `config.yaml` (encoder_conf) gives the encoder geometry
(defaults: SenseVoiceSmall). Token ids are read from the tokenizer files by string.
"""

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
from tqdm.auto import tqdm

from vita_jax.atomic import atomic_directory
from vita_jax.convert.hf_checkpoint import (
    INDEX_FILE, WEIGHT_DTYPES, CheckpointError, ParamSpec, copy_side_files, param_table, plan_shards,
    read_hf_config, shard_names, weight_files,
)
from vita_jax.convert.param_paths import get_path, set_path
from vita_jax.convert.safetensors_io import SafetensorsReader, write_safetensors
from vita_jax.model_config import from_hf_config, to_hf_config
from vita_jax.plus.sensevoice import SenseVoiceConfig

PLUS_MODEL_TYPE = "qwen2_mtp_sensevoice"
PLUS_ARCHITECTURE = "Qwen2MTPSenseVoiceForCausalLM"
AUDIO_PREFIX = "model.audio_model.model."
ADAPTER_PREFIX = "model.audio_projection."
UNUSED_PREFIX = AUDIO_PREFIX + "ctc."
CMVN_FILE = "am.mvn"
ENCODER_CONFIG_FILE = "config.yaml"
PLUS_SIDE_FILES = (CMVN_FILE, ENCODER_CONFIG_FILE)  # besides hf_checkpoint's side files


def _same(x):
    return x


def _transpose(x):
    return np.ascontiguousarray(x.T)


def _fsmn_to_flax(w):  # [channels, 1, kernel] -> [kernel, channels]
    return np.ascontiguousarray(w[:, 0, :].T)


def _fsmn_to_hf(k):
    return np.ascontiguousarray(k.T[:, None, :])


def sanm_layer_specs(cfg, hf_prefix, path, layer, input_size):
    """The 13 tensors of one SAN-M layer."""
    d, units = cfg.output_size, cfg.linear_units

    def spec(key, sub, shape, to_flax=_same, to_hf=_same):
        return ParamSpec(hf_prefix + key, path + sub, layer, shape, to_flax, to_hf)

    return [
        spec("norm1.weight", ("norm1", "scale"), (input_size,)),
        spec("norm1.bias", ("norm1", "bias"), (input_size,)),
        spec("self_attn.linear_q_k_v.weight", ("linear_q_k_v", "kernel"), (3 * d, input_size), _transpose, _transpose),
        spec("self_attn.linear_q_k_v.bias", ("linear_q_k_v", "bias"), (3 * d,)),
        spec("self_attn.fsmn_block.weight", ("fsmn_block",), (d, 1, cfg.kernel_size), _fsmn_to_flax, _fsmn_to_hf),
        spec("self_attn.linear_out.weight", ("linear_out", "kernel"), (d, d), _transpose, _transpose),
        spec("self_attn.linear_out.bias", ("linear_out", "bias"), (d,)),
        spec("norm2.weight", ("norm2", "scale"), (d,)),
        spec("norm2.bias", ("norm2", "bias"), (d,)),
        spec("feed_forward.w_1.weight", ("w_1", "kernel"), (units, d), _transpose, _transpose),
        spec("feed_forward.w_1.bias", ("w_1", "bias"), (units,)),
        spec("feed_forward.w_2.weight", ("w_2", "kernel"), (d, units), _transpose, _transpose),
        spec("feed_forward.w_2.bias", ("w_2", "bias"), (d,)),
    ]


def encoder_table(cfg, prefix=AUDIO_PREFIX, path=("audio_encoder",)):
    """SenseVoice encoder tensors (query table, encoders0, stacked encoders / tp_encoders, norms)."""
    d = cfg.output_size
    table = [ParamSpec(prefix + "embed.weight", path + ("embed",), None, (cfg.query_rows, cfg.input_size),
                       _same, _same)]
    table += sanm_layer_specs(cfg, prefix + "encoder.encoders0.0.", path + ("encoders0",), None, cfg.input_size)
    for i in range(cfg.num_blocks - 1):
        table += sanm_layer_specs(cfg, f"{prefix}encoder.encoders.{i}.", path + ("encoders", "layer"), i, d)
    for i in range(cfg.tp_blocks):
        table += sanm_layer_specs(cfg, f"{prefix}encoder.tp_encoders.{i}.", path + ("tp_encoders", "layer"), i, d)
    for norm in ("after_norm", "tp_norm"):
        table += [ParamSpec(f"{prefix}encoder.{norm}.weight", path + (norm, "scale"), None, (d,), _same, _same),
                  ParamSpec(f"{prefix}encoder.{norm}.bias", path + (norm, "bias"), None, (d,), _same, _same)]
    return table


def adapter_table(cfg, hidden, prefix=ADAPTER_PREFIX, path=("audio_adapter",)):
    d = cfg.output_size
    return [
        ParamSpec(prefix + "pre_proj_layernorm.weight", path + ("pre_proj_layernorm", "scale"), None, (d,), _same, _same),
        ParamSpec(prefix + "pre_proj_layernorm.bias", path + ("pre_proj_layernorm", "bias"), None, (d,), _same, _same),
        ParamSpec(prefix + "mlp.0.weight", path + ("mlp_0", "kernel"), None, (hidden, d), _transpose, _transpose),
        ParamSpec(prefix + "mlp.2.weight", path + ("mlp_2", "kernel"), None, (hidden, hidden), _transpose, _transpose),
    ]


def plus_table(cfg, audio_cfg):
    """Every tensor of a Plus checkpoint except the carried (unused) CTC head."""
    return param_table(cfg) + encoder_table(audio_cfg) + adapter_table(audio_cfg, cfg.hidden_size)


def unused_path(key):
    return ("unused", *key[len(AUDIO_PREFIX):].split("."))


def llm_config_from_hf(hf, source):
    """The LLM config of a Plus config.json (its fields are those of qwen2_mtp)."""
    if hf.get("model_type") != PLUS_MODEL_TYPE:
        raise ValueError(f"{source}: model_type {hf.get('model_type')!r} is not a VITA-Audio-Plus checkpoint "
                         f"({PLUS_MODEL_TYPE!r})")
    return from_hf_config({**hf, "model_type": "qwen2_mtp"}, source=source)


def audio_config_from_dir(folder, shapes, **overrides):
    """SenseVoiceConfig of a Plus folder: the geometry from the tensor shapes (`shapes`: key ->
    shape), the number of heads from `config.yaml` encoder_conf (SenseVoiceSmall's 4 without it)."""
    fields = {}
    path = os.path.join(folder, ENCODER_CONFIG_FILE)
    if os.path.isfile(path):
        import yaml

        with open(path) as f:
            conf = (yaml.safe_load(f) or {}).get("encoder_conf") or {}
        if conf.get("sanm_shfit", 0):
            raise ValueError(f"{path}: sanm_shfit {conf['sanm_shfit']} is not supported (SenseVoice uses 0)")
        if "attention_heads" in conf:
            fields["attention_heads"] = int(conf["attention_heads"])
    first = AUDIO_PREFIX + "encoder.encoders0.0."
    if first + "feed_forward.w_1.weight" in shapes and first + "self_attn.fsmn_block.weight" in shapes:

        def layers(name):
            return len({key.split(".")[5] for key in shapes if key.startswith(f"{AUDIO_PREFIX}encoder.{name}.")})

        fields.update(input_size=shapes[first + "norm1.weight"][0], output_size=shapes[first + "norm2.weight"][0],
                      linear_units=shapes[first + "feed_forward.w_1.weight"][0],
                      kernel_size=shapes[first + "self_attn.fsmn_block.weight"][2],
                      num_blocks=1 + layers("encoders"), tp_blocks=layers("tp_encoders"))
        if AUDIO_PREFIX + "embed.weight" in shapes:
            fields["query_rows"] = shapes[AUDIO_PREFIX + "embed.weight"][0]
    return SenseVoiceConfig(**{**fields, **overrides})


def encoder_config_yaml(cfg):
    """A SenseVoice `config.yaml` (encoder_conf only) for an export whose source had none."""
    return "".join(["encoder: SenseVoiceEncoderSmall\nencoder_conf:\n"] + [
        f"    {name}: {getattr(cfg, name)}\n"
        for name in ("output_size", "attention_heads", "linear_units", "num_blocks", "tp_blocks", "kernel_size")
    ] + ["    sanm_shfit: 0\n"])


def import_plus_hf(folder, param_dtype=None, scan_layers=False, audio_overrides=None, progress=True):
    """Read a Plus folder -> (LLM config, SenseVoiceConfig, params, config.json dict).
    `param_dtype` defaults to the dtype the tensors are stored in."""
    hf_config = read_hf_config(folder)
    cfg = llm_config_from_hf(hf_config, os.path.join(folder, "config.json"))
    cfg.scan_layers = scan_layers
    readers = [SafetensorsReader(path) for path in weight_files(folder)]
    stored = {reader.dtype(key) for reader in readers for key in reader.keys()}
    if param_dtype is None:
        if len(stored) != 1 or next(iter(stored)) not in WEIGHT_DTYPES.values():
            raise CheckpointError(f"{folder}: tensors stored as {sorted(map(str, stored))}; pass param_dtype explicitly")
        target = next(iter(stored))
    else:
        target = WEIGHT_DTYPES[param_dtype]
    cfg.param_dtype = {dt: name for name, dt in WEIGHT_DTYPES.items()}[target]
    shapes = {key: reader.shape(key) for reader in readers for key in reader.keys()}
    audio_cfg = audio_config_from_dir(folder, shapes, param_dtype=cfg.param_dtype, **(audio_overrides or {}))
    by_key = {spec.hf_key: spec for spec in plus_table(cfg, audio_cfg)}
    missing = [key for key in by_key if key not in shapes]
    if missing:
        audio_missing = [key for key in missing if key.startswith((AUDIO_PREFIX, ADAPTER_PREFIX))]
        what = "the audio weights (encoder / adapter)" if audio_missing else "tensors"
        shown = ", ".join((audio_missing or missing)[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise CheckpointError(f"{folder}: missing {what}: {shown}")
    stack_sizes = {}
    for spec in by_key.values():
        if spec.layer is not None:
            stack_sizes[spec.path] = max(stack_sizes.get(spec.path, 0), spec.layer + 1)

    tree, stacks, seen = {}, {}, set()
    total = sum(len(reader.keys()) for reader in readers)
    with tqdm(total=total, desc=f"import {os.path.basename(os.path.normpath(folder))}", unit="tensor",
              disable=not progress) as bar:
        for reader in readers:
            for key in reader.keys():
                if key in seen:
                    raise CheckpointError(f"{reader.path}: tensor {key!r} appears in more than one file")
                seen.add(key)
                bar.update()
                if key.startswith(UNUSED_PREFIX):
                    set_path(tree, unused_path(key), _on_device(reader.read(key).astype(target, copy=False)))
                    continue
                spec = by_key.get(key)
                if spec is None:
                    raise CheckpointError(f"{reader.path}: unexpected tensor {key!r} for a {PLUS_MODEL_TYPE} model "
                                          f"({cfg.num_layers} backbone layers, {cfg.num_mctp_modules} MCTP modules, "
                                          f"encoder {audio_cfg.num_blocks}+{audio_cfg.tp_blocks} layers)")
                if reader.shape(key) != spec.hf_shape:
                    raise CheckpointError(f"{reader.path}: tensor {key!r} has shape {reader.shape(key)}, "
                                          f"config.json / config.yaml imply {spec.hf_shape}")
                value = spec.to_flax(reader.read(key)).astype(target, copy=False)
                if spec.layer is None:
                    set_path(tree, spec.path, _on_device(value))
                else:
                    if spec.path not in stacks:
                        stacks[spec.path] = np.empty((stack_sizes[spec.path], *value.shape), target)
                    stacks[spec.path][spec.layer] = value
    while stacks:
        path, stack = stacks.popitem()
        set_path(tree, path, _on_device(stack))
    return cfg, audio_cfg, tree, hf_config


def _on_device(host_array):
    return jax.block_until_ready(jax.device_put(host_array))


def _unused_specs(params):
    """ParamSpecs of the carried tensors in `params["unused"]`, in key order."""
    flat = jax.tree_util.tree_flatten_with_path(params.get("unused", {}))[0]
    specs = []
    for path, leaf in flat:
        names = tuple(p.key for p in path)
        specs.append(ParamSpec(AUDIO_PREFIX + ".".join(names), ("unused", *names), None, tuple(leaf.shape),
                               _same, _same))
    return sorted(specs, key=lambda s: s.hf_key)


def plus_hf_config(cfg, torch_dtype, base=None):
    """config.json of a Plus export: qwen2_mtp fields, Plus model_type and architecture."""
    hf = to_hf_config(cfg, torch_dtype, base=base)
    hf.update(model_type=PLUS_MODEL_TYPE, architectures=[PLUS_ARCHITECTURE])
    hf.setdefault("num_nextn_predict_layers", cfg.num_mctp_modules)
    return hf


def export_plus_hf(params, cfg, audio_cfg, out_dir, dtype="bfloat16", hf_config=None, max_shard_bytes=5 * 2**30,
                   copy_side_files_from=None, progress=True):
    """Write a Plus Hugging Face folder (config.json, safetensors shards + index, side files incl.
    am.mvn / config.yaml) under a temporary name, renamed at the end."""
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"unknown export dtype {dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)}")
    target = WEIGHT_DTYPES[dtype]
    table = plus_table(cfg, audio_cfg) + _unused_specs(params)
    by_key = {spec.hf_key: spec for spec in table}
    shards = plan_shards(table, target, max_shard_bytes)
    names = shard_names(len(shards))

    def produce(key):
        spec = by_key[key]
        value = get_path(params, spec.path)
        if spec.layer is not None:
            value = value[spec.layer]
        return spec.to_hf(np.asarray(value)).astype(target, copy=False)

    with atomic_directory(out_dir) as tmp:
        for name, shard in tqdm(list(zip(names, shards)), desc=f"export {os.path.basename(out_dir)}",
                                unit="shard", disable=not progress):
            write_safetensors(os.path.join(tmp, name), [(s.hf_key, s.hf_shape, target) for s in shard], produce,
                              metadata={"format": "pt"})
        if len(shards) > 1:
            index = {"metadata": {"total_size": sum(int(np.prod(s.hf_shape)) * target.itemsize for s in table)},
                     "weight_map": {s.hf_key: name for name, shard in zip(names, shards) for s in shard}}
            with open(os.path.join(tmp, INDEX_FILE), "w") as f:
                json.dump(index, f, indent=2)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(plus_hf_config(cfg, dtype, base=hf_config), f, indent=2)
        if copy_side_files_from:
            copy_plus_side_files(copy_side_files_from, tmp)
        if not os.path.isfile(os.path.join(tmp, ENCODER_CONFIG_FILE)):
            with open(os.path.join(tmp, ENCODER_CONFIG_FILE), "w") as f:
                f.write(encoder_config_yaml(audio_cfg))


def copy_plus_side_files(src_dir, dst_dir):
    """Tokenizer / generation files plus SenseVoice's am.mvn and config.yaml."""
    copy_side_files(src_dir, dst_dir)
    for name in PLUS_SIDE_FILES:
        if os.path.isfile(os.path.join(src_dir, name)):
            shutil.copy2(os.path.join(src_dir, name), os.path.join(dst_dir, name))


@dataclasses.dataclass(frozen=True)
class PlusTokens:
    """Special token ids of a Plus tokenizer, read by string."""

    begin_of_audio: int
    end_of_audio: int
    context_of_audio: int
    audio_tag: int
    audio_0: int
    num_audio_codes: int
    eos_ids: tuple


TOKEN_STRINGS = {"begin_of_audio": "<|begin_of_audio|>", "end_of_audio": "<|end_of_audio|>",
                 "context_of_audio": "<|context_of_audio|>", "audio_tag": "<|audio|>", "audio_0": "<|audio_0|>"}
EOS_STRINGS = ("<|im_end|>", "<|endoftext|>")


def tokenizer_vocabulary(folder):
    """{token string: id} of the added tokens in `added_tokens.json`, `tokenizer.json` or
    `tokenizer_config.json` of `folder`; (mapping, files read)."""
    vocab, files = {}, []
    path = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(path):
        with open(path) as f:
            vocab.update({t["content"]: int(t["id"]) for t in json.load(f).get("added_tokens", [])})
        files.append(path)
    path = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(path):
        with open(path) as f:
            decoder = json.load(f).get("added_tokens_decoder", {})
        vocab.update({t["content"]: int(i) for i, t in decoder.items()})
        files.append(path)
    path = os.path.join(folder, "added_tokens.json")
    if os.path.isfile(path):
        with open(path) as f:
            vocab.update({k: int(v) for k, v in json.load(f).items()})
        files.append(path)
    return vocab, files


def read_plus_tokens(folder):
    """PlusTokens of the tokenizer files in `folder` (ValueError naming the files and the missing token)."""
    vocab, files = tokenizer_vocabulary(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no tokenizer file (added_tokens.json, tokenizer.json or "
                                f"tokenizer_config.json) to read the special token ids from")
    ids = {}
    for field, text in TOKEN_STRINGS.items():
        if text not in vocab:
            raise ValueError(f"{', '.join(files)}: no token {text!r}")
        ids[field] = vocab[text]
    count = 0
    while vocab.get(f"<|audio_{count}|>") == ids["audio_0"] + count:
        count += 1
    eos = tuple(vocab[text] for text in EOS_STRINGS if text in vocab)
    return PlusTokens(**ids, num_audio_codes=count, eos_ids=eos)
