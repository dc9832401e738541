"""GLM-4-Voice decoder checkpoints: `flow.pt` / `hift.pt` state dicts <-> Flax parameter trees.

The Flax trees (see `vita_jax/audio/flow_model.py` and `hift.py`) name their modules after
the PyTorch modules, so the rule table (vita_jax/convert/rules.py) is derived from the tree:
a state-dict key is the Flax module path joined by '.', plus the PyTorch name of the leaf,
and each leaf name has one named transform (`leaf_rule`). Weight norm is kept as its
(weight_g, weight_v) pair, so an import/export round trip returns the input exactly;
`fold_weight_norm=True` on export writes the folded `weight` instead.
"""

import os

import jax
import numpy as np

from vita_jax.audio.decoder_config import DecoderConfig, load_decoder_config
from vita_jax.audio.decoder_params import decoder_param_shapes
from vita_jax.convert.rules import (CONV1D, CONV_TRANSPOSE1D, IDENTITY, TRANSPOSE, ConversionError, DictSource,
                                    RenamedSource, Rule, export_tensors, import_tree)
from vita_jax.param_checkpoint import is_param_checkpoint, load_params

CHECKPOINT_KIND = "glm4voice_decoder"
PARTS = ("flow", "hift")
# Leaves whose PyTorch name and layout are the Flax ones.
SAME_NAME_LEAVES = ("bias", "weight_g", "weight_v", "alpha", "pos_bias_u", "pos_bias_v")
# torch.nn.utils.parametrizations.weight_norm names of the weight-norm pair
PARAMETRIZATION_NAMES = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}


class DecoderCheckpointError(ConversionError):
    """A state dict does not match the decoder structure; the message names file, key and shapes."""


def leaf_rule(name, ndim):
    """(PyTorch leaf name, transform) of a Flax leaf."""
    if name == "kernel":
        return "weight", TRANSPOSE if ndim == 2 else CONV1D
    if name == "transpose_kernel":
        return "weight", CONV_TRANSPOSE1D
    if name in ("embedding", "scale"):
        return "weight", IDENTITY
    if name in SAME_NAME_LEAVES:
        return name, IDENTITY
    raise DecoderCheckpointError(f"no state-dict rule for Flax parameter leaf {name!r}")


def decoder_rules(tree):
    """The rules of every leaf of a Flax parameter tree (arrays or ShapeDtypeStructs), in tree order."""
    rules = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        names = tuple(p.key for p in path)
        torch_name, transform = leaf_rule(names[-1], len(leaf.shape))
        shape = transform.to_original(np.broadcast_to(np.float32(0), leaf.shape)).shape  # a view: nothing allocated
        rules.append(Rule(".".join(names[:-1] + (torch_name,)), names, shape, transform))
    return rules


def canonical_keys(source):
    """The source with new-style weight-norm names (parametrizations.weight.original0/1) seen as
    weight_g / weight_v."""
    renamed = {}
    for key in source.keys():
        canonical = key
        for long, short in PARAMETRIZATION_NAMES.items():
            if key.endswith("." + long):
                canonical = key[: -len(long)] + short
        renamed[canonical] = key
    return RenamedSource(source, renamed)


def import_state_dict(state_dict, target, source):
    """Flax tree for `target` (tree of ShapeDtypeStructs) from `state_dict` (key -> array); missing,
    unexpected and mis-shaped keys are all reported at once, naming `source`."""
    return import_tree(decoder_rules(target), canonical_keys(DictSource(state_dict, source)), "the decoder config",
                       DecoderCheckpointError, dtype=np.float32)


def export_state_dict(params, fold_weight_norm=False):
    """{torch_key: float32 numpy array} in the original layout (weight_g/weight_v unless folded)."""
    out = {key: produce() for key, _, produce in export_tensors(decoder_rules(params), params, dtype=np.float32)}
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
