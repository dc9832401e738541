"""What makes two run configs the same run: a resumed run must match its checkpoint's config in
these fields (steps, schedule, data, model...), and the automatic workdir of a config is named
after them, so unrelated runs never share one.

Fields that only tune how a run executes (workdir, logging, checkpoint cadence, mesh, export,
distributed setup, data loader threads, rematerialization, microbatches) may change on resume.
"""

import hashlib
import json
import os
import tempfile

EXECUTION_FIELDS = ("train.workdir", "train.log_every", "train.peak_flops_per_device", "train.microbatches",
                    "checkpoint.", "export.", "mesh.", "distributed.", "data.worker_count", "data.read_threads",
                    "data.code_cache", "model.remat")
RESUME_HINT = "give another --config.train.workdir to start a fresh run there"


class RunConfigMismatch(ValueError):
    """The workdir holds checkpoints of a run with other settings."""

    exit_status = 2  # a command-line problem: the flags do not describe the run in that workdir


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_fields(config_dict):
    """{dotted field: JSON value} of the fields that define the run."""
    flat = _flatten(json.loads(json.dumps(config_dict)))
    return {k: v for k, v in flat.items() if not any(k == f or (f.endswith(".") and k.startswith(f))
                                                     for f in EXECUTION_FIELDS)}


def config_differences(saved, current):
    """['train.steps: 20 in the checkpoint, 30 now', ...] for the run fields that differ."""
    saved, current = run_fields(saved), run_fields(current)
    return [f"{k}: {json.dumps(saved.get(k))} in the checkpoint, {json.dumps(current.get(k))} now"
            for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]


def check_resumable(saved, current, directory):
    differences = config_differences(saved, current)
    if differences:
        raise RunConfigMismatch(f"{directory} holds a run with other settings ({'; '.join(differences)}): "
                                f"rerun with the same settings to resume, or {RESUME_HINT}")


def run_id(config_dict):
    """A short hash of the run fields."""
    text = json.dumps(run_fields(config_dict), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def resolve_workdir(cfg):
    """cfg.train.workdir, or when empty one named after the stage and the run fields under the
    system temp directory: rerunning the same config resumes it, another config gets its own."""
    if cfg.train.workdir:
        return cfg.train.workdir
    return os.path.join(tempfile.gettempdir(), "vita_jax_runs", f"{cfg.stage}-{run_id(cfg.to_dict())}")
