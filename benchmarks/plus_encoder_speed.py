"""VITA-Audio-Plus speech input speed on this machine: audio seconds per wall second of the
SenseVoice-Small encoder + adapter (and of the host front end).

python -m benchmarks.plus_encoder_speed [--hidden 3584] [--batch 4] [--dtype float32] [--json out.json]

Real encoder geometry (560 -> 512, 4 heads, FFN 2048, 50 + 20 SAN-M layers, FSMN kernel 11) and
the 7B adapter (512 -> 3584 -> 3584) with random weights. Workloads: one 10 s utterance
(T = 167 LFR rows, bucketed to 192, + 4 queries) and a padded batch of `--batch` utterances of
6-14 s. Each runs once to compile, then the best of `--repeats` warm runs is reported with
its CPU seconds (on a busy machine CPU s / wall s shows how many cores the run had).
Single-threaded, immune to other jobs' load:
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" python -m benchmarks.plus_encoder_speed
"""

import argparse
import json
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.plus.adapter import AudioAdapter
from vita_jax.plus.frontend import FEATURE_SIZE, Frontend
from vita_jax.plus.model import feature_bucket
from vita_jax.plus.sensevoice import SenseVoiceConfig, SenseVoiceEncoder


class EncoderAndAdapter(nn.Module):
    config: SenseVoiceConfig
    hidden: int

    @nn.compact
    def __call__(self, features, lengths):
        encoded, lengths = SenseVoiceEncoder(self.config, name="audio_encoder")(features, lengths)
        return AudioAdapter(self.hidden, self.config.dtype, self.config.param_dtype, name="audio_adapter")(encoded)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(run, repeats):
    first, _ = timed(run)
    wall, cpu = min(timed(run) for _ in range(repeats))
    return first - wall, wall, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=3584, help="LLM hidden size (adapter output)")
    parser.add_argument("--batch", type=int, default=4, help="utterances in the batched workload")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="encoder compute dtype")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)

    config = SenseVoiceConfig(dtype=args.dtype)
    model = EncoderAndAdapter(config, args.hidden)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, FEATURE_SIZE)), jnp.ones((1,), jnp.int32))
    params = nn.meta.unbox(params)
    count = sum(x.size for x in jax.tree.leaves(params))
    run = jax.jit(model.apply)
    frontend = Frontend(np.zeros(FEATURE_SIZE, np.float32), np.ones(FEATURE_SIZE, np.float32))
    rng = np.random.default_rng(0)

    rows = []
    for name, seconds in (("single 10 s", [10.0]),
                          (f"batch of {args.batch}", list(np.linspace(6.0, 14.0, args.batch)))):
        waves = [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in seconds]
        feats = [frontend(w) for w in waves]
        lengths = np.array([len(f) for f in feats], np.int32)
        batch = np.zeros((len(feats), feature_bucket(lengths.max()), FEATURE_SIZE), np.float32)
        for i, f in enumerate(feats):
            batch[i, :len(f)] = f
        batch, lengths_j = jnp.asarray(batch), jnp.asarray(lengths)
        compile_s, wall, cpu = measure(lambda: run(params, batch, lengths_j).block_until_ready(), args.repeats)
        front_wall, _ = min(timed(lambda: [frontend(w) for w in waves]) for _ in range(args.repeats))
        audio = float(sum(seconds))
        rows.append({"workload": name, "audio_s": round(audio, 1), "rows": [int(n) for n in lengths],
                     "padded_rows": int(batch.shape[1]) + 4, "compile_s": round(compile_s, 2),
                     "warm_wall_s": round(wall, 3), "audio_s_per_wall_s": round(audio / wall, 2),
                     "warm_cpu_s": round(cpu, 2), "frontend_wall_s": round(front_wall, 3)})
    print(f"encoder + adapter: {count / 1e6:.1f} M parameters, {args.dtype}, hidden {args.hidden}, "
          f"{jax.devices()[0].platform}")
    print("| workload | audio s | LFR rows (padded + 4) | compile s | warm wall s | audio s / wall s | warm CPU s "
          "| front end wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['audio_s']} | {'/'.join(map(str, r['rows']))} ({r['padded_rows']}) | "
              f"{r['compile_s']} | {r['warm_wall_s']} | **{r['audio_s_per_wall_s']}** | {r['warm_cpu_s']} | "
              f"{r['frontend_wall_s']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
