"""This project's own parameter checkpoints: an orbax pytree plus a metadata JSON.

Layout of a checkpoint directory:
  metadata.json   {"format": "vita_jax.params/1", "kind": ..., plus caller metadata
                   such as the model config, parameter layout, mesh and vocabulary}
  params/         orbax StandardCheckpointer pytree
Writing goes through a temporary directory that is renamed at the end.
"""

import json
import os

import jax
import orbax.checkpoint as ocp

from vita_jax.atomic import atomic_directory
from vita_jax.json_file import read_json

FORMAT = "vita_jax.params/1"
METADATA_FILE = "metadata.json"


def is_param_checkpoint(path, kind=None):
    """True when `path` is a directory written by `save_params` (holding `kind`, when given)."""
    if not os.path.isfile(os.path.join(path, METADATA_FILE)):
        return False
    if kind is None:
        return True
    try:
        return read_metadata(path).get("kind") == kind
    except (OSError, ValueError):
        return False


def save_params(out_dir, params, kind, metadata, before_commit=None):
    """Save `params` (a pytree of arrays) and JSON-serialisable `metadata` under `out_dir`.

    `before_commit(tmp_dir)` may add files before the directory is renamed into place. An existing
    `out_dir` is replaced only when it is a checkpoint of the same kind (see vita_jax.atomic)."""
    with atomic_directory(out_dir, replaceable=lambda path: is_param_checkpoint(path, kind)) as tmp:
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(os.path.join(tmp, "params"), params)
            ckptr.wait_until_finished()
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump({"format": FORMAT, "kind": kind, **metadata}, f, indent=2, sort_keys=True)
        if before_commit is not None:
            before_commit(tmp)


def read_metadata(path, kind=None):
    """Read and check the metadata of a checkpoint; `kind` must match when given."""
    meta_path = os.path.join(path, METADATA_FILE)
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(f"not a vita_jax checkpoint (no {METADATA_FILE}): {path}")
    meta = read_json(meta_path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: unknown checkpoint format {meta.get('format')!r}, expected {FORMAT!r}")
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{meta_path}: checkpoint holds {meta.get('kind')!r}, expected {kind!r}")
    return meta


def load_params(path, kind=None, target=None):
    """Restore (params, metadata). `target`: optional pytree of jax.ShapeDtypeStruct
    (with `.sharding`) to restore onto explicit shardings; default: host arrays as saved."""
    meta = read_metadata(path, kind)
    path = os.path.abspath(path)  # orbax refuses relative paths
    with ocp.StandardCheckpointer() as ckptr:
        if target is None:
            abstract = ckptr.metadata(os.path.join(path, "params")).item_metadata
            device = jax.devices()[0]
            target = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=jax.sharding.SingleDeviceSharding(device)),
                abstract,
            )
        params = ckptr.restore(os.path.join(path, "params"), target)
    return params, meta
