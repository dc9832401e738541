"""Peak host memory of reading a bfloat16 safetensors file tensor by tensor: this project's
streaming reader (vita_jax/convert/safetensors_io.py, plain reads) against the `safetensors`
package's `safe_open` (memory-mapped), each in a fresh process.

    python benchmarks/safetensors_read_memory.py [--tensors 24] [--rows 4096]

Writes a synthetic file of `--tensors` bfloat16 [rows, rows] tensors, then each reader keeps
every tensor as float32 (as an import into float32 parameters does) and reports the growth of
its process's peak resident memory (VmHWM).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import ml_dtypes
import numpy as np

from vita_jax.convert.safetensors_io import SafetensorsReader, write_safetensors


def peak_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def read_all(path, reader):
    """Every tensor of `path` as float32; prints kept bytes, peak growth and time."""
    base, start, kept = peak_rss(), time.perf_counter(), []
    if reader == "vita_jax":
        source = SafetensorsReader(path)
        kept = [source.read(key).astype(np.float32) for key in source.keys()]
    else:
        from safetensors import safe_open

        with safe_open(path, framework="numpy") as f:
            kept = [f.get_tensor(key).astype(np.float32) for key in f.keys()]
    print(f"{reader:>11}: kept {sum(x.nbytes for x in kept) / 2**30:.2f} GiB, "
          f"peak growth {(peak_rss() - base) / 2**30:.2f} GiB, {time.perf_counter() - start:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tensors", type=int, default=24)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--read", choices=["vita_jax", "safetensors"], help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read_all(args.file, args.read)
        return
    rng = np.random.default_rng(0)
    bf16 = np.dtype(ml_dtypes.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "synthetic.safetensors")
        write_safetensors(path, [(f"t{i}", (args.rows, args.rows), bf16) for i in range(args.tensors)],
                          lambda key: rng.standard_normal((args.rows, args.rows), np.float32).astype(bf16))
        print(f"file: {os.path.getsize(path) / 2**30:.2f} GiB of bfloat16")
        for reader in ("vita_jax", "safetensors"):
            subprocess.run([sys.executable, __file__, "--read", reader, "--file", path], check=True)


if __name__ == "__main__":
    main()
