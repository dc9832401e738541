"""Peak host memory of importing a Hugging Face checkpoint, relative to the checkpoint's size.

    python benchmarks/import_memory.py [--config qwen2.5-0.5b] [--dtype bfloat16] [--scan-layers]

Writes a synthetic qwen2_mtp checkpoint of the chosen geometry (random weights) to a temporary
directory, then imports it in a fresh process and reports the growth of that process's peak
resident memory (VmHWM) during `load_pretrained`, divided by the checkpoint's bytes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from vita_jax.configs.model import get_config
from vita_jax.convert.hf_checkpoint import WEIGHT_DTYPES, param_table, plan_shards, shard_names
from vita_jax.convert.safetensors_io import write_safetensors
from vita_jax.model_config import to_hf_config

SHARD_BYTES = 2 * 2**30


def write_synthetic_checkpoint(cfg, out_dir, dtype):
    """Random tensors of every key of the checkpoint, in shards of at most SHARD_BYTES."""
    target = WEIGHT_DTYPES[dtype]
    rng = np.random.default_rng(0)
    shards = plan_shards([(rule.key, rule.shape) for rule in param_table(cfg)], target, SHARD_BYTES)
    weight_map = {}
    for name, shard in zip(shard_names(len(shards)), shards):
        shapes = dict(shard)
        write_safetensors(os.path.join(out_dir, name), [(key, shape, target) for key, shape in shard],
                          lambda key: (rng.standard_normal(shapes[key], np.float32) * 0.02).astype(target))
        weight_map.update({key: name for key, _ in shard})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(to_hf_config(cfg, dtype), f)
    return sum(os.path.getsize(os.path.join(out_dir, n)) for n in set(weight_map.values()))


def rss_bytes(field):
    """VmRSS (current) or VmHWM (peak since the last reset) of this process, from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def measure_import(hf_dir, scan_layers):
    """Runs in a fresh process: prints baseline and peak RSS (bytes) around load_pretrained."""
    import jax

    import vita_jax

    jax.numpy.zeros(1).block_until_ready()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark (VmHWM), which fork would otherwise inherit
    baseline = rss_bytes("VmRSS")
    start = time.perf_counter()
    model = vita_jax.load_pretrained(hf_dir, scan_layers=scan_layers, progress=False)
    jax.block_until_ready(model.params)
    seconds = time.perf_counter() - start
    peak = rss_bytes("VmHWM")
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(model.params))
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": seconds, "param_bytes": param_bytes}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="qwen2.5-0.5b")
    parser.add_argument("--dtype", default="bfloat16", choices=list(WEIGHT_DTYPES))
    parser.add_argument("--scan-layers", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_import(args.measure, args.scan_layers)
        return
    cfg = get_config(args.config)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        start = time.perf_counter()
        ckpt_bytes = write_synthetic_checkpoint(cfg, tmp, args.dtype)
        print(f"synthetic {args.config} checkpoint ({args.dtype}): {ckpt_bytes / 2**30:.3f} GiB, "
              f"written in {time.perf_counter() - start:.1f}s")
        cmd = [sys.executable, __file__, "--measure", tmp] + (["--scan-layers"] if args.scan_layers else [])
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    growth = result["peak"] - result["baseline"]
    print(f"layout: {'scanned' if args.scan_layers else 'unrolled'}; import took {result['seconds']:.1f}s")
    print(f"process RSS before import: {result['baseline'] / 2**30:.3f} GiB, peak: {result['peak'] / 2**30:.3f} GiB")
    print(f"imported parameters: {result['param_bytes'] / 2**30:.3f} GiB")
    print(f"peak growth during import / checkpoint size = {growth / 2**30:.3f} / {ckpt_bytes / 2**30:.3f} GiB "
          f"= {growth / ckpt_bytes:.2f}x")


if __name__ == "__main__":
    main()
