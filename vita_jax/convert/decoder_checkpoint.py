"""GLM-4-Voice decoder checkpoints: `flow.pt` / `hift.pt` state dicts <-> Flax parameter trees.

The Flax trees (see `vita_jax/audio/flow_model.py` and `hift.py`) name their modules after
the PyTorch modules, so the table between the two is mechanical: a state-dict key is the
Flax module path joined by '.', plus the PyTorch name of the leaf. Each leaf name has one
layout transform (LEAF_RULES). Weight norm is kept as its (weight_g, weight_v) pair, so an
import/export round trip returns the input exactly; `fold_weight_norm=True` on export
writes the folded `weight` instead.
"""

import os

import jax
import numpy as np

from vita_jax.convert.param_paths import get_path, set_path
from vita_jax.audio.decoder_config import DecoderConfig, load_decoder_config
from vita_jax.audio.decoder_params import decoder_param_shapes
from vita_jax.param_checkpoint import is_param_checkpoint, load_params

CHECKPOINT_KIND = "glm4voice_decoder"
PARTS = ("flow", "hift")


class DecoderCheckpointError(ValueError):
    """A state dict does not match the decoder structure; the message names file, key and shapes."""


def _swap_linear_or_conv(x):
    """[in,out] <-> (out,in); [k,in,out] <-> (out,in,k): its own inverse."""
    return x.T if x.ndim == 2 else np.transpose(x, (2, 1, 0))


# Flax leaf name -> (PyTorch leaf name, to_torch, from_torch)
LEAF_RULES = {
    "kernel": ("weight", _swap_linear_or_conv, _swap_linear_or_conv),
    "transpose_kernel": ("weight", lambda x: np.transpose(x, (1, 2, 0)), lambda x: np.transpose(x, (2, 0, 1))),
    "embedding": ("weight", np.asarray, np.asarray),
    "scale": ("weight", np.asarray, np.asarray),
}
_SAME_NAME = ("bias", "weight_g", "weight_v", "alpha", "pos_bias_u", "pos_bias_v")
for _name in _SAME_NAME:
    LEAF_RULES[_name] = (_name, np.asarray, np.asarray)

# torch.nn.utils.parametrizations.weight_norm names of the weight-norm pair
_PARAMETRIZATION_NAMES = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}


def key_table(tree):
    """[(torch_key, flax_path)] for every leaf of a Flax parameter tree (arrays or ShapeDtypeStructs)."""
    rows = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        names = [p.key for p in path]
        if names[-1] not in LEAF_RULES:
            raise DecoderCheckpointError(f"no state-dict rule for Flax parameter {'/'.join(names)}")
        rows.append((".".join(names[:-1] + [LEAF_RULES[names[-1]][0]]), tuple(names)))
    return rows


def torch_shape(leaf_name, flax_shape):
    return LEAF_RULES[leaf_name][1](np.empty(flax_shape, np.float32)).shape


def _canonical_key(key):
    for long, short in _PARAMETRIZATION_NAMES.items():
        if key.endswith("." + long):
            return key[: -len(long)] + short
    return key


def import_state_dict(state_dict, target, source):
    """Flax tree for `target` (tree of ShapeDtypeStructs) from `state_dict` (key -> array).

    Missing, unexpected and mis-shaped keys are all reported at once, naming `source`.
    """
    state = {_canonical_key(k): np.asarray(v, np.float32) for k, v in state_dict.items()}
    leaves = dict(jax.tree_util.tree_flatten_with_path(target)[0])
    table = key_table(target)
    problems = []
    expected = {key for key, _ in table}
    missing = [k for k in (key for key, _ in table) if k not in state]
    extra = sorted(set(state) - expected)
    for label, keys in (("missing", missing), ("unexpected", extra)):
        if keys:
            more = " ..." if len(keys) > 20 else ""
            problems.append(f"{label} keys ({len(keys)}): {', '.join(keys[:20])}{more}")
    params = {}
    for key, path in table:
        if key not in state:
            continue
        leaf = leaves[tuple(jax.tree_util.DictKey(p) for p in path)]
        want = torch_shape(path[-1], leaf.shape)
        if state[key].shape != want:
            problems.append(f"key {key}: shape {state[key].shape} in the checkpoint, expected {want}")
            continue
        set_path(params, path, LEAF_RULES[path[-1]][2](state[key]))
    if problems:
        raise DecoderCheckpointError(f"{source} does not match the decoder config:\n  " + "\n  ".join(problems))
    return params


def export_state_dict(params, fold_weight_norm=False):
    """{torch_key: float32 numpy array} in the original layout (weight_g/weight_v unless folded)."""
    out = {}
    for key, path in key_table(params):
        value = np.asarray(get_path(params, path), np.float32)
        out[key] = np.ascontiguousarray(LEAF_RULES[path[-1]][1](value))
    if fold_weight_norm:
        for key in [k for k in out if k.endswith(".weight_g")]:
            prefix = key[: -len("weight_g")]
            g, v = out.pop(prefix + "weight_g"), out.pop(prefix + "weight_v")
            norm = np.sqrt(np.sum(np.square(v, dtype=np.float32), axis=tuple(range(1, v.ndim)), keepdims=True))
            out[prefix + "weight"] = (v * (g / norm)).astype(np.float32)
    return out


def read_torch_state_dict(path):
    """Tensors of a `torch.save(state_dict)` file as numpy arrays (needs torch, CPU only)."""
    if not os.path.isfile(path):
        raise DecoderCheckpointError(f"checkpoint file not found: {path}")
    try:
        import torch
    except ImportError as err:
        raise DecoderCheckpointError(
            f"reading {path} needs PyTorch; convert once with `python -m conversion.decoder_to_jax` elsewhere"
        ) from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise DecoderCheckpointError(f"cannot read {path} as a torch state dict: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DecoderCheckpointError(f"{path} is not a state dict of tensors")
    return {k: v.detach().float().numpy() for k, v in state.items()}


def write_torch_state_dict(path, state):
    import torch

    from vita_jax.atomic import atomic_file

    with atomic_file(path) as f:
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, f)


def read_original_decoder(decoder_dir):
    """(config, params, config.yaml text) from an original `glm-4-voice-decoder` directory."""
    config_path = os.path.join(decoder_dir, "config.yaml")
    cfg = load_decoder_config(config_path)
    with open(config_path) as f:
        yaml_text = f.read()
    shapes = decoder_param_shapes(cfg)
    params = {
        part: import_state_dict(read_torch_state_dict(os.path.join(decoder_dir, f"{part}.pt")), shapes[part],
                                os.path.join(decoder_dir, f"{part}.pt"))
        for part in PARTS
    }
    return cfg, params, yaml_text


def read_decoder(path):
    """(config, params, config.yaml text) from an original directory or this project's checkpoint."""
    if is_param_checkpoint(path):
        params, meta = load_params(path, kind=CHECKPOINT_KIND)
        params = jax.tree.map(np.asarray, params)
        return DecoderConfig.from_dict(meta["config"]), params, meta.get("config_yaml")
    if not os.path.isdir(path):
        raise DecoderCheckpointError(f"decoder directory not found: {path}")
    return read_original_decoder(path)
