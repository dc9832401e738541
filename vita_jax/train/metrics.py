"""Throughput accounting (tokens/s, model FLOPs, MFU) and the metrics file (one JSON object per line)."""

import json
import os

import jax

from vita_jax.atomic import atomic_file

# Dense bf16 peak FLOP/s per device, by jax device_kind prefix.
PEAK_FLOPS = {
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12, "TPU v6": 918e12,
    "NVIDIA H100": 989e12, "NVIDIA H200": 989e12, "NVIDIA A100": 312e12,
}


def peak_flops_per_device(configured=0.0):
    """The configured peak, else the table's for this device kind, else None (unknown, e.g. CPU)."""
    if configured:
        return float(configured)
    kind = jax.devices()[0].device_kind
    return next((v for k, v in PEAK_FLOPS.items() if kind.startswith(k)), None)


def train_flops_per_token(cfg, seq_len, num_modules, train_backbone):
    """Model FLOPs per trained token: matmuls and causal attention, forward x3 where gradients flow
    (the backbone counts forward only when frozen)."""
    h, q, kv = cfg.hidden_size, cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    layer = 2 * (h * q + 2 * h * kv + q * h + 3 * h * cfg.intermediate_size) + 2 * seq_len * q  # causal half of 4*T*q
    lm_head = 2 * cfg.vocab_size * h
    backbone = cfg.num_layers * layer + (lm_head if train_backbone else 0)
    modules = num_modules * (layer + 2 * 2 * h * h + lm_head)
    return (3 if train_backbone else 1) * backbone + 3 * modules


class MetricsWriter:
    """Appends metric dicts to {workdir}/metrics.jsonl (process 0 only)."""

    def __init__(self, path):
        self.path = path
        self.enabled = jax.process_index() == 0
        if self.enabled:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def drop_after(self, step):
        """Remove the records of steps after `step` (logged by a run interrupted before its next
        checkpoint; the resumed run logs them again), so the file has each step once."""
        if not self.enabled or not os.path.isfile(self.path):
            return
        with open(self.path) as f:
            lines = f.readlines()
        kept = [line for line in lines if _step(line) is None or _step(line) <= step]
        if len(kept) != len(lines):
            with atomic_file(self.path, mode="w", replaceable=lambda _: True) as f:
                f.writelines(kept)

    def write(self, record):
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _step(line):
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
