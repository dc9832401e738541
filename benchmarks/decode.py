"""Decoding latency per mode, beside the bandwidth floor.

    python benchmarks/decode.py --config tiny --config qwen2.5-0.5b [--json out.json]

For each model geometry (random weights, K=10 modules, the full 168072-token vocabulary unless
--vocab-size says otherwise) and each mode: compile time (ahead of time, apart from running),
time to first token, time to the first audio chunk, tokens/s over a fixed number of new tokens
(eos disabled; modes timed in interleaved rounds after a warm-up, the best run of each kept),
backbone and module forwards run, the program's memory (XLA's arguments + temps + outputs) and
the process's peak RSS.

Time to the first audio chunk: with real weights, the first <|end_of_audio|>; random weights
never emit one, so here it is the time until the first 11 new tokens exist (1 text token +
<|begin_of_audio|> + 8 codes + <|end_of_audio|>: the first chunk of Boost and Turbo, spec
section 8), measured on the streamed events.

Bandwidth floor: bytes of weights read per generated token (each backbone forward reads the
backbone's layers and the lm_head; each module forward its layer, projection and the lm_head;
the embedding is gathered, not read) divided by the measured copy bandwidth (numpy copy of a
256 MiB array, the best of a measurement before the runs and one in every round). The machine
may be shared: other processes' load lowers every number.
"""

import argparse
import json
import math
import os
import resource
import time

import numpy as np

from vita_jax.configs.model import get_config
from vita_jax import VitaAudioModel
from vita_jax.decode import TextEvent, decode, stream
from vita_jax.decode.decoder import compile_ahead, prepare

MODES = ("vanilla", "balance", "boost", "turbo", "lossless")
FIRST_CHUNK_TOKENS = 11


def copy_bandwidth(megabytes=256, repeats=5):
    """Bytes per second of the best of `repeats` numpy copies of a `megabytes` MiB array."""
    src = np.ones(megabytes * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return src.nbytes / best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def nbytes(tree):
    import jax

    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def weight_bytes(params):
    """(bytes one backbone forward reads, bytes one module forward reads)."""
    backbone = {k: v for k, v in params["backbone"].items() if k != "embed_tokens"}
    shared = nbytes(params["backbone"]["lm_head"]) + nbytes(params["backbone"]["norm"])
    return nbytes(backbone), nbytes(params["mctp_0"]) + shared


def streamed_latency(model, prompt, options, executable):
    """(seconds to the first token, seconds until FIRST_CHUNK_TOKENS tokens exist, total seconds)."""
    start = time.perf_counter()
    first = chunk = None
    count = 0
    for event in stream(model, prompt, executable=executable, **options):
        if isinstance(event, TextEvent):
            now = time.perf_counter() - start
            count += len(event.token_ids)
            first = now if first is None else first
            if chunk is None and count >= FIRST_CHUNK_TOKENS:
                chunk = now
    return first, chunk, time.perf_counter() - start


def prepare_mode(model, mode, prompt, new_tokens):
    """Compile one mode ahead of time and warm it up (first touch of the program's memory)."""
    options = dict(mode=mode, max_new_tokens=new_tokens, eos_token_ids=())
    request = prepare(model, prompt, **options)
    start = time.perf_counter()
    executable = compile_ahead(model, request)
    compile_s = time.perf_counter() - start
    memory = executable.decode.memory_analysis()
    program_bytes = memory.argument_size_in_bytes + memory.temp_size_in_bytes + memory.output_size_in_bytes
    result = decode(model, prompt, executable=executable, **options)
    streamed_latency(model, prompt, options, executable)
    return {"mode": mode, "options": options, "executable": executable, "result": result,
            "compile_s": compile_s, "program_memory_mb": program_bytes / 2**20,
            "seconds": math.inf, "ttft_ms": math.inf, "first_chunk_ms": math.inf}


def time_mode(model, prompt, entry):
    """One timed run and one streamed run of a prepared mode; keep the best of each figure."""
    start = time.perf_counter()
    decode(model, prompt, executable=entry["executable"], **entry["options"])
    entry["seconds"] = min(entry["seconds"], time.perf_counter() - start)
    first, chunk, _ = streamed_latency(model, prompt, entry["options"], entry["executable"])
    entry["ttft_ms"] = min(entry["ttft_ms"], 1e3 * first)
    entry["first_chunk_ms"] = min(entry["first_chunk_ms"], 1e3 * chunk)


def summary(entry, bandwidth, per_forward):
    result = entry["result"]
    tokens = int(result.num_tokens[0])
    read = result.backbone_forwards * per_forward[0] + sum(result.module_forwards) * per_forward[1]
    floor_tok_s = tokens / (read / bandwidth)
    return {
        "mode": entry["mode"], "compile_s": entry["compile_s"], "ttft_ms": entry["ttft_ms"],
        "first_chunk_ms": entry["first_chunk_ms"], "tokens": tokens, "seconds": entry["seconds"],
        "tokens_per_s": tokens / entry["seconds"],
        "backbone_forwards": result.backbone_forwards, "module_forwards": sum(result.module_forwards),
        "weights_read_per_token_gb": read / tokens / 1e9, "floor_tokens_per_s": floor_tok_s,
        "fraction_of_floor": tokens / entry["seconds"] / floor_tok_s,
        "program_memory_mb": entry["program_memory_mb"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "acceptance": result.acceptance,
    }


def bench_config(name, args, bandwidth):
    """Compile every mode, then time them in interleaved rounds (so that a burst of load from
    other processes hits every mode alike) and keep each one's best."""
    config = get_config(name).replace(vocab_size=args.vocab_size, num_mctp_modules=args.num_modules)
    model = VitaAudioModel.random(config, seed=0)
    per_forward = weight_bytes(model.params)
    prompt = np.random.default_rng(0).integers(0, min(config.vocab_size, 151643), (1, args.prompt_length))
    entries = [prepare_mode(model, mode, prompt, args.new_tokens) for mode in args.modes]
    for _ in range(args.repeats):
        bandwidth = max(bandwidth, copy_bandwidth())
        for entry in entries:
            time_mode(model, prompt, entry)
    rows = [summary(entry, bandwidth, per_forward) for entry in entries]
    for row in rows:
        print_row(name, row, rows[0])
    print(f"{name}: copy bandwidth {bandwidth / 1e9:.1f} GB/s (best of every round's measurement)")
    return {"config": name, "copy_bandwidth_gb_s": bandwidth / 1e9, "hidden_size": config.hidden_size, "num_layers": config.num_layers,
            "vocab_size": config.vocab_size, "num_modules": config.num_mctp_modules,
            "backbone_forward_gb": per_forward[0] / 1e9, "module_forward_gb": per_forward[1] / 1e9, "modes": rows}


HEADER = (f"{'config':<13} {'mode':<9} {'compile s':>9} {'TTFT ms':>9} {'chunk ms':>9} {'tok/s':>8} "
          f"{'x vanilla':>9} {'bb fwd':>6} {'mod fwd':>7} {'GB/tok':>6} {'floor t/s':>9} {'% floor':>7} "
          f"{'prog MB':>8} {'RSS MB':>7}  acceptance")


def print_row(name, row, vanilla):
    acceptance = "" if row["acceptance"] is None else " ".join(f"{a:.2f}" for a in row["acceptance"])
    print(f"{name:<13} {row['mode']:<9} {row['compile_s']:>9.1f} {row['ttft_ms']:>9.1f} "
          f"{row['first_chunk_ms']:>9.1f} {row['tokens_per_s']:>8.1f} "
          f"{row['tokens_per_s'] / vanilla['tokens_per_s']:>9.2f} {row['backbone_forwards']:>6} "
          f"{row['module_forwards']:>7} {row['weights_read_per_token_gb']:>6.3f} {row['floor_tokens_per_s']:>9.1f} "
          f"{100 * row['fraction_of_floor']:>6.0f}% {row['program_memory_mb']:>8.0f} {row['peak_rss_mb']:>7.0f}  "
          f"{acceptance}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", help="model geometry (repeatable); default tiny")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes (first is the baseline)")
    parser.add_argument("--vocab-size", type=int, default=168072)
    parser.add_argument("--num-modules", type=int, default=10)
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=4,
                        help="rounds of timed runs over all modes; each mode's best is reported (other "
                             "processes' load only slows runs down)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bandwidth = copy_bandwidth()
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s; batch 1, float32, random weights, prompt "
          f"{args.prompt_length} tokens, {args.new_tokens} new tokens, eos disabled; chunk = first "
          f"{FIRST_CHUNK_TOKENS} tokens; load average {os.getloadavg()[0]:.1f}")
    print(HEADER)
    results = [bench_config(name, args, bandwidth) for name in (args.config or ["tiny"])]
    report = {"copy_bandwidth_gb_s": bandwidth / 1e9, "prompt_length": args.prompt_length,
              "new_tokens": args.new_tokens, "load_average": os.getloadavg(), "configs": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
