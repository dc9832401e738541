"""What a benchmark ran on, and repeated timings summarised: shared by the speed benchmarks.

Speed figures are only comparable side by side on one machine, so every benchmark prints
`machine_line()` (CPU model and vector extensions, cores, a measured memory copy bandwidth,
load average) and reports the median and spread of several warm runs.
"""

import os
import platform
import statistics
import time

import numpy as np

VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "asimd", "sve")


def cpu_model_and_flags():
    """(model name, the vector-extension flags present) from /proc/cpuinfo, else platform's."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, [f for f in VECTOR_FLAGS if f in flags]


def copy_bandwidth_gb_s(megabytes=256, repeats=5):
    """Best of `repeats` numpy copies of a `megabytes` buffer: GB/s read + written."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    best = min(_timed_copy(src, dst) for _ in range(repeats))
    return 2 * src.nbytes / best / 1e9


def _timed_copy(src, dst):
    start = time.perf_counter()
    np.copyto(dst, src)
    return time.perf_counter() - start


def machine_line():
    """One line: CPU, vector extensions, cores, copy bandwidth, load average."""
    model, flags = cpu_model_and_flags()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {model}; {os.cpu_count()} cores; {' '.join(flags) or 'no listed vector flags'}; "
            f"copy bandwidth {copy_bandwidth_gb_s():.1f} GB/s; load average {load:.2f}")


def timed(fn, *args, **kwargs):
    """fn's result and the wall seconds it took."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def repeat(fn, repeats):
    """Wall seconds of `repeats` calls of fn() (call it once before to compile)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def summary(values, digits=2):
    """'median (min-max, n runs)' of a list of numbers."""
    median, low, high = (f"{x:.{digits}f}" for x in (statistics.median(values), min(values), max(values)))
    return f"{median} ({low}-{high}, n={len(values)})"
