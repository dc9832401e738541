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
from tqdm.auto import tqdm

from vita_jax.atomic import atomic_directory
from vita_jax.convert.hf_checkpoint import (
    WEIGHT_DTYPES, CheckpointError, copy_side_files, param_table, place_on_device, read_hf_config, stored_dtype,
    weight_files, write_weights,
)
from vita_jax.convert.rules import IDENTITY, TRANSPOSE, Rule, Transform, export_tensors, import_tree
from vita_jax.convert.safetensors_io import SafetensorsSource
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
# FSMN memory block: depthwise Conv1d weight [channels, 1, kernel] <-> kernel [kernel, channels]
FSMN = Transform("fsmn", lambda w: w[:, 0, :].T, lambda k: k.T[:, None, :])


def sanm_layer_rules(cfg, hf_prefix, path, layer, input_size):
    """The 13 tensors of one SAN-M layer."""
    d, units = cfg.output_size, cfg.linear_units

    def rule(key, sub, shape, transform=None):
        return Rule(hf_prefix + key, path + sub, shape, transform or IDENTITY, layer)

    return [
        rule("norm1.weight", ("norm1", "scale"), (input_size,)),
        rule("norm1.bias", ("norm1", "bias"), (input_size,)),
        rule("self_attn.linear_q_k_v.weight", ("linear_q_k_v", "kernel"), (3 * d, input_size), TRANSPOSE),
        rule("self_attn.linear_q_k_v.bias", ("linear_q_k_v", "bias"), (3 * d,)),
        rule("self_attn.fsmn_block.weight", ("fsmn_block",), (d, 1, cfg.kernel_size), FSMN),
        rule("self_attn.linear_out.weight", ("linear_out", "kernel"), (d, d), TRANSPOSE),
        rule("self_attn.linear_out.bias", ("linear_out", "bias"), (d,)),
        rule("norm2.weight", ("norm2", "scale"), (d,)),
        rule("norm2.bias", ("norm2", "bias"), (d,)),
        rule("feed_forward.w_1.weight", ("w_1", "kernel"), (units, d), TRANSPOSE),
        rule("feed_forward.w_1.bias", ("w_1", "bias"), (units,)),
        rule("feed_forward.w_2.weight", ("w_2", "kernel"), (d, units), TRANSPOSE),
        rule("feed_forward.w_2.bias", ("w_2", "bias"), (d,)),
    ]


def encoder_table(cfg, prefix=AUDIO_PREFIX, path=("audio_encoder",)):
    """SenseVoice encoder rules (query table, encoders0, stacked encoders / tp_encoders, norms)."""
    d = cfg.output_size
    table = [Rule(prefix + "embed.weight", path + ("embed",), (cfg.query_rows, cfg.input_size))]
    table += sanm_layer_rules(cfg, prefix + "encoder.encoders0.0.", path + ("encoders0",), None, cfg.input_size)
    for i in range(cfg.num_blocks - 1):
        table += sanm_layer_rules(cfg, f"{prefix}encoder.encoders.{i}.", path + ("encoders", "layer"), i, d)
    for i in range(cfg.tp_blocks):
        table += sanm_layer_rules(cfg, f"{prefix}encoder.tp_encoders.{i}.", path + ("tp_encoders", "layer"), i, d)
    for norm in ("after_norm", "tp_norm"):
        table += [Rule(f"{prefix}encoder.{norm}.weight", path + (norm, "scale"), (d,)),
                  Rule(f"{prefix}encoder.{norm}.bias", path + (norm, "bias"), (d,))]
    return table


def adapter_table(cfg, hidden, prefix=ADAPTER_PREFIX, path=("audio_adapter",)):
    d = cfg.output_size
    return [
        Rule(prefix + "pre_proj_layernorm.weight", path + ("pre_proj_layernorm", "scale"), (d,)),
        Rule(prefix + "pre_proj_layernorm.bias", path + ("pre_proj_layernorm", "bias"), (d,)),
        Rule(prefix + "mlp.0.weight", path + ("mlp_0", "kernel"), (hidden, d), TRANSPOSE),
        Rule(prefix + "mlp.2.weight", path + ("mlp_2", "kernel"), (hidden, hidden), TRANSPOSE),
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
    cfg = llm_config_from_hf(hf_config, os.path.join(folder, "config.json")).replace(scan_layers=scan_layers)
    source = SafetensorsSource(weight_files(folder), folder)
    target = stored_dtype(source, param_dtype)
    cfg = cfg.replace(param_dtype={dt: name for name, dt in WEIGHT_DTYPES.items()}[target])
    shapes = {key: source.shape(key) for key in source.keys()}
    audio_cfg = audio_config_from_dir(folder, shapes, param_dtype=cfg.param_dtype, **(audio_overrides or {}))
    rules = plus_table(cfg, audio_cfg)
    audio_missing = [r.key for r in rules if r.key.startswith((AUDIO_PREFIX, ADAPTER_PREFIX)) and r.key not in shapes]
    if audio_missing:
        raise CheckpointError(f"{folder}: missing the audio weights (encoder / adapter): {len(audio_missing)} "
                              f"tensors such as {', '.join(audio_missing[:3])}")
    rules += [Rule(key, unused_path(key), shape) for key, shape in shapes.items() if key.startswith(UNUSED_PREFIX)]
    what = (f"config.json / config.yaml ({PLUS_MODEL_TYPE}, {cfg.num_layers} backbone layers, "
            f"{cfg.num_mctp_modules} MCTP modules, encoder {audio_cfg.num_blocks}+{audio_cfg.tp_blocks} layers)")
    with tqdm(total=len(shapes), desc=f"import {os.path.basename(os.path.normpath(folder))}", unit="tensor",
              disable=not progress) as bar:
        tree = import_tree(rules, source, what, CheckpointError, dtype=target, place=place_on_device,
                           on_tensor=bar.update)
    return cfg, audio_cfg, tree, hf_config


def unused_rules(params):
    """Rules of the carried tensors in `params["unused"]`, in key order."""
    flat = jax.tree_util.tree_flatten_with_path(params.get("unused", {}))[0]
    rules = [Rule(AUDIO_PREFIX + ".".join(p.key for p in path), ("unused", *(p.key for p in path)), tuple(leaf.shape))
             for path, leaf in flat]
    return sorted(rules, key=lambda rule: rule.key)


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
    tensors = export_tensors(plus_table(cfg, audio_cfg) + unused_rules(params), params, dtype=target)
    with atomic_directory(out_dir) as tmp:
        write_weights(tmp, tensors, target, max_shard_bytes, f"export {os.path.basename(out_dir)}", progress)
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
