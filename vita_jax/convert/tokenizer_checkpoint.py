"""GLM-4-Voice tokenizer checkpoints: the original layout <-> this project's Flax tree.

Original layout (`glm-4-voice-tokenizer`): `config.json`, `preprocessor_config.json`,
`*.safetensors` with keys as in glm4voice-tokenizer-state-dict.tsv, either bare
(`conv1.weight`) or as in a full WhisperVQ checkpoint (`model.encoder.conv1.weight`,
whose decoder, `layer_norm.*` and layers >= quantize_position are skipped).

Flax tree: {"params": the WhisperVQEncoder params (layers stacked on axis 0),
            "unused": tensors inference never reads (`embed_positions2`, the VQ's EMA
                      buffers), carried so that export reproduces the original file}.
This project's checkpoint: `save_params(kind="glm4voice_tokenizer")` with the original
config files in its metadata.
"""

import dataclasses
import glob
import json
import os


from vita_jax import json_file
from vita_jax.atomic import atomic_directory
from vita_jax.convert.rules import (CONV1D, TRANSPOSE, ConversionError, RenamedSource, Rule,
                                    export_tensors, import_tree)
from vita_jax.convert.safetensors_io import SafetensorsError, SafetensorsSource, write_safetensors
from vita_jax.audio.features import FeatureConfig
from vita_jax.audio.whisper_vq import WhisperVQConfig
from vita_jax.param_checkpoint import is_param_checkpoint, load_params, save_params

KIND = "glm4voice_tokenizer"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
WEIGHTS_FILE = "model.safetensors"
FULL_MODEL_PREFIX = "model.encoder."


class TokenizerCheckpointError(ConversionError):
    """A tokenizer checkpoint does not match the spec's structure; the message names the file."""


# ---- config.json / preprocessor_config.json -------------------------------------------

# Fields whose value is fixed by the architecture this implementation builds (spec section 0).
# A value of None in the second position means: the field may be absent (HF default applies).
STRUCTURE_FIELDS = {
    "encoder_causal_convolution": (True, False),
    "encoder_causal_attention": (False, True),
    "quantize_causal_encoder": (False, True),
    "pooling_type": ("avg", False),
    "quantize_encoder_only": (True, False),
    "activation_function": ("gelu", True),
    "scale_embedding": (False, True),
}
SIZE_FIELDS = (
    "num_mel_bins",
    "d_model",
    "encoder_attention_heads",
    "encoder_ffn_dim",
    "encoder_layers",
    "max_source_positions",
    "quantize_causal_block_size",
    "pooling_kernel_size",
    "pooling_position",
    "quantize_position",
    "quantize_vocab_size",
)
PREPROCESSOR_FIELDS = ("feature_size", "sampling_rate", "n_fft", "hop_length", "chunk_length")


def read_json(path):
    """Parse a JSON object from `path`, naming the file on failure."""
    try:
        return json_file.read_json(path)
    except json_file.JsonFileError as err:
        raise TokenizerCheckpointError(str(err)) from err


def model_config_from_hf(hf_config, source):
    """Check `config.json` (dict) against the spec's structure; return the encoder sizes."""
    for field, (expected, may_be_absent) in STRUCTURE_FIELDS.items():
        if field not in hf_config:
            if may_be_absent:
                continue
            raise TokenizerCheckpointError(f"{source}: field {field!r} is missing (the spec requires {expected!r})")
        if hf_config[field] != expected:
            raise TokenizerCheckpointError(
                f"{source}: field {field!r} is {hf_config[field]!r}; "
                f"the GLM-4-Voice tokenizer structure needs {expected!r}"
            )
    for field in SIZE_FIELDS:
        value = hf_config.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise TokenizerCheckpointError(f"{source}: field {field!r} must be a positive integer, got {value!r}")
    c = hf_config
    checks = [
        (c["pooling_position"] == c["quantize_position"], "'pooling_position' must equal 'quantize_position'"),
        (c["quantize_position"] <= c["encoder_layers"], "'quantize_position' exceeds 'encoder_layers'"),
        (c["d_model"] % c["encoder_attention_heads"] == 0, "'d_model' is not divisible by 'encoder_attention_heads'"),
        (
            c["max_source_positions"] % c["pooling_kernel_size"] == 0,
            "'max_source_positions' is not a multiple of 'pooling_kernel_size'",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise TokenizerCheckpointError(f"{source}: {message} ({ {k: c[k] for k in SIZE_FIELDS} })")
    return WhisperVQConfig(
        num_mel_bins=c["num_mel_bins"],
        d_model=c["d_model"],
        num_heads=c["encoder_attention_heads"],
        ffn_dim=c["encoder_ffn_dim"],
        num_layers=c["quantize_position"],
        max_source_positions=c["max_source_positions"],
        block_size=c["quantize_causal_block_size"],
        pool_size=c["pooling_kernel_size"],
        codebook_size=c["quantize_vocab_size"],
    )


def feature_config_from_hf(preprocessor, model_config, source):
    """Check `preprocessor_config.json` (dict) against the encoder; return the feature settings."""
    for field in PREPROCESSOR_FIELDS:
        value = preprocessor.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise TokenizerCheckpointError(f"{source}: field {field!r} must be a positive integer, got {value!r}")
    if preprocessor.get("padding_value", 0.0) != 0.0:
        raise TokenizerCheckpointError(
            f"{source}: field 'padding_value' must be 0.0, got {preprocessor['padding_value']!r}"
        )
    features = FeatureConfig(
        n_mels=preprocessor["feature_size"],
        sampling_rate=preprocessor["sampling_rate"],
        n_fft=preprocessor["n_fft"],
        hop_length=preprocessor["hop_length"],
        chunk_length=preprocessor["chunk_length"],
    )
    if features.n_mels != model_config.num_mel_bins:
        raise TokenizerCheckpointError(
            f"{source}: 'feature_size' {features.n_mels} differs from "
            f"the model's 'num_mel_bins' {model_config.num_mel_bins}"
        )
    positions = features.segment_samples // features.hop_length // 2
    if positions > model_config.max_source_positions:
        raise TokenizerCheckpointError(
            f"{source}: a {features.chunk_length} s segment needs {positions} positions, "
            f"more than max_source_positions={model_config.max_source_positions}"
        )
    return features


# ---- the key table -----------------------------------------------------------------------

# Rules with symbolic shapes, resolved per config by `tokenizer_rules`.
GLOBAL_RULES = (
    Rule("conv1.weight", ("params", "conv1", "kernel"), ("d", "mels", 3), CONV1D),
    Rule("conv1.bias", ("params", "conv1", "bias"), ("d",)),
    Rule("conv2.weight", ("params", "conv2", "kernel"), ("d", "d", 3), CONV1D),
    Rule("conv2.bias", ("params", "conv2", "bias"), ("d",)),
    Rule("embed_positions.weight", ("params", "embed_positions"), ("positions", "d")),
    Rule("codebook.weight", ("params", "codebook"), ("codes", "d")),
    Rule("embed_positions2.weight", ("unused", "embed_positions2"), ("pooled_positions", "d"), optional=True),
    Rule("ema_count", ("unused", "ema_count"), ("codes",), optional=True),
    Rule("ema_weight", ("unused", "ema_weight"), ("codes", "d"), optional=True),
)

# Per layer: key "layers.{i}.<key>" <-> row i of the stacked ("params", "layers", *path).
LAYER_RULES = (
    Rule("self_attn.q_proj.weight", ("self_attn", "q_proj", "kernel"), ("d", "d"), TRANSPOSE),
    Rule("self_attn.q_proj.bias", ("self_attn", "q_proj", "bias"), ("d",)),
    Rule("self_attn.k_proj.weight", ("self_attn", "k_proj", "kernel"), ("d", "d"), TRANSPOSE),
    Rule("self_attn.v_proj.weight", ("self_attn", "v_proj", "kernel"), ("d", "d"), TRANSPOSE),
    Rule("self_attn.v_proj.bias", ("self_attn", "v_proj", "bias"), ("d",)),
    Rule("self_attn.out_proj.weight", ("self_attn", "out_proj", "kernel"), ("d", "d"), TRANSPOSE),
    Rule("self_attn.out_proj.bias", ("self_attn", "out_proj", "bias"), ("d",)),
    Rule("self_attn_layer_norm.weight", ("self_attn_layer_norm", "scale"), ("d",)),
    Rule("self_attn_layer_norm.bias", ("self_attn_layer_norm", "bias"), ("d",)),
    Rule("fc1.weight", ("fc1", "kernel"), ("ffn", "d"), TRANSPOSE),
    Rule("fc1.bias", ("fc1", "bias"), ("ffn",)),
    Rule("fc2.weight", ("fc2", "kernel"), ("d", "ffn"), TRANSPOSE),
    Rule("fc2.bias", ("fc2", "bias"), ("d",)),
    Rule("final_layer_norm.weight", ("final_layer_norm", "scale"), ("d",)),
    Rule("final_layer_norm.bias", ("final_layer_norm", "bias"), ("d",)),
)


def tokenizer_rules(config):
    """The rules of every tensor for `config`, shapes resolved, layers as rows of stacked leaves."""
    sizes = {
        "d": config.d_model,
        "mels": config.num_mel_bins,
        "ffn": config.ffn_dim,
        "codes": config.codebook_size,
        "positions": config.max_source_positions,
        "pooled_positions": config.max_source_positions // config.pool_size,
    }

    def resolved(rule, **changes):
        return dataclasses.replace(rule, shape=tuple(sizes.get(dim, dim) for dim in rule.shape), **changes)

    rules = [resolved(rule) for rule in GLOBAL_RULES]
    for i in range(config.num_layers):
        rules += [resolved(rule, key=f"layers.{i}.{rule.key}", path=("params", "layers", *rule.path), layer=i)
                  for rule in LAYER_RULES]
    return rules


def encoder_keys(source, config):
    """The source seen with bare keys: a full WhisperVQ checkpoint's `model.encoder.` prefix is
    stripped and what the encoder-only model lacks (decoder, proj_out, `layer_norm.*`, layers
    >= quantize_position, in either layout) is left out."""
    full = any(key.startswith(FULL_MODEL_PREFIX) for key in source.keys())
    renamed = {}
    for key in source.keys():
        if full and not key.startswith(FULL_MODEL_PREFIX):
            continue  # decoder, proj_out
        bare = key[len(FULL_MODEL_PREFIX):] if full else key
        if full and bare.startswith("layer_norm."):
            continue
        if bare.startswith("layers.") and int(bare.split(".")[1]) >= config.num_layers:
            continue
        renamed[bare] = key
    if full and not renamed:
        raise TokenizerCheckpointError(f"{source.name}: no '{FULL_MODEL_PREFIX}*' tensors found")
    return RenamedSource(source, renamed)


def tree_to_state_dict(tree, config):
    """{"params", "unused"} -> original (bare) state dict of contiguous numpy arrays."""
    return {key: produce() for key, _, produce in export_tensors(tokenizer_rules(config), tree)}


# ---- directories ---------------------------------------------------------------------------


@dataclasses.dataclass
class TokenizerCheckpoint:
    """Everything a tokenizer needs: the Flax tree and the (checked) original config files."""

    tree: dict
    model_config: WhisperVQConfig
    feature_config: FeatureConfig
    hf_config: dict
    preprocessor_config: dict


def read_configs(hf_config, preprocessor, config_source, preprocessor_source):
    model_config = model_config_from_hf(hf_config, config_source)
    return model_config, feature_config_from_hf(preprocessor, model_config, preprocessor_source)


def weights_source(tokenizer_dir):
    """The tensors of the `*.safetensors` files in a directory, read on demand."""
    files = sorted(glob.glob(os.path.join(tokenizer_dir, "*.safetensors")))
    if not files:
        raise TokenizerCheckpointError(f"no *.safetensors file in {tokenizer_dir}")
    try:
        return SafetensorsSource(files, tokenizer_dir)
    except SafetensorsError as err:
        raise TokenizerCheckpointError(f"cannot read {err}") from err


def import_hf_dir(tokenizer_dir):
    """Read an original `glm-4-voice-tokenizer` directory."""
    config_path = os.path.join(tokenizer_dir, CONFIG_FILE)
    preprocessor_path = os.path.join(tokenizer_dir, PREPROCESSOR_FILE)
    hf_config, preprocessor = read_json(config_path), read_json(preprocessor_path)
    model_config, feature_config = read_configs(hf_config, preprocessor, config_path, preprocessor_path)
    source = encoder_keys(weights_source(tokenizer_dir), model_config)
    tree = import_tree(tokenizer_rules(model_config), source, "config.json", TokenizerCheckpointError)
    return TokenizerCheckpoint(tree, model_config, feature_config, hf_config, preprocessor)


def load_checkpoint(path):
    """Either an original tokenizer directory or this project's converted checkpoint."""
    if not os.path.isdir(path):
        raise TokenizerCheckpointError(f"tokenizer directory not found: {path}")
    if not is_param_checkpoint(path):
        return import_hf_dir(path)
    tree, meta = load_params(path, kind=KIND)
    source = os.path.join(path, "metadata.json")
    model_config, feature_config = read_configs(meta["hf_config"], meta["preprocessor_config"], source, source)
    return TokenizerCheckpoint(tree, model_config, feature_config, meta["hf_config"], meta["preprocessor_config"])


def save_checkpoint(out_dir, checkpoint):
    """Write this project's checkpoint (orbax tree + the original config files as metadata)."""
    metadata = {
        "hf_config": checkpoint.hf_config,
        "preprocessor_config": checkpoint.preprocessor_config,
        "model_config": dataclasses.asdict(checkpoint.model_config),
    }
    save_params(out_dir, checkpoint.tree, KIND, metadata)


def export_hf_dir(out_dir, checkpoint):
    """Write the original layout: config.json, preprocessor_config.json, model.safetensors."""
    state_dict = tree_to_state_dict(checkpoint.tree, checkpoint.model_config)
    def is_original_layout(path):
        return all(os.path.isfile(os.path.join(path, name)) for name in (CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE))

    with atomic_directory(out_dir, replaceable=is_original_layout) as tmp:
        for name, data in ((CONFIG_FILE, checkpoint.hf_config), (PREPROCESSOR_FILE, checkpoint.preprocessor_config)):
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
        write_safetensors(os.path.join(tmp, WEIGHTS_FILE), [(k, v.shape, v.dtype) for k, v in state_dict.items()],
                          state_dict.get, metadata={"format": "pt"})
