"""Speech-tokenizer speed on this machine: audio seconds tokenized per wall second.

python -m benchmarks.speech_tokenizer_speed [--files 32] [--repeats 3]

Real GLM-4-Voice tokenizer geometry (d_model 1280, 16 layers, 16384 codes) with random
weights, float32. Each workload runs once to compile its shape buckets, then `--repeats` warm
times: median and spread; compile time = first - fastest warm. The batch of files is also
tokenized one file at a time: the batched path must be at least as fast per audio second.
Inputs are 16 kHz wav files written to a temporary directory (reading and features included).
The original GLM-4-Voice code's figures recorded on this machine's kind, if any
(`benchmarks/original_reference.py`), are printed beside them.
"""

import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import machine_line, repeat, summary
from benchmarks.original_reference import record_note, this_machine_record
from vita_jax.audio.features import FeatureConfig
from vita_jax.audio.speech_tokenizer import SpeechTokenizer
from vita_jax.audio.wav_io import write_wav
from vita_jax.audio.whisper_vq import WhisperVQConfig, WhisperVQEncoder


def random_tokenizer(config):
    model = WhisperVQEncoder(config)
    frames = 8
    variables = jax.jit(model.init)(
        jax.random.key(0), jnp.zeros((1, frames, config.num_mel_bins)), jnp.ones((1, frames), bool)
    )
    return SpeechTokenizer(variables["params"], config, FeatureConfig(n_mels=config.num_mel_bins))


def write_files(directory, seconds, seed=0):
    """White-noise wav files of the given durations (content does not change the cost)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i, duration in enumerate(seconds):
        path = os.path.join(directory, f"utt{i:04d}.wav")
        write_wav(path, (0.1 * rng.standard_normal(int(duration * 16000))).astype(np.float32), 16000)
        paths.append(path)
    return paths


def measure(name, run, audio_seconds, repeats):
    """First call (compiles), then `repeats` warm calls."""
    (first,) = repeat(run, 1)
    walls = repeat(run, repeats)
    return name, audio_seconds, first - min(walls), walls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=32, help="files in the batched workload")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per workload (median and spread)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    config = WhisperVQConfig()
    print(machine_line())
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}; {config}")
    start = time.perf_counter()
    tok = random_tokenizer(config)
    print(f"random init of the real geometry: {time.perf_counter() - start:.1f} s")
    rows, load_before = [], f"{os.getloadavg()[0]:.2f}"
    record = this_machine_record()
    original = {f"single file, {s} s": speed for s, speed in (record["tokenizer"] if record else {}).items()}
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (30, 10, 4):
            (path,) = write_files(tmp, [seconds], seed=seconds)
            rows.append(measure(f"single file, {seconds} s", lambda p=path: tok.encode(p), seconds, args.repeats))
        durations = np.random.default_rng(1).uniform(2.0, 15.0, args.files)
        paths = write_files(tmp, durations, seed=2)
        for name, run in ((f"batch of {args.files} files, 2-15 s", lambda: tok.encode_batch(paths)),
                          (f"the same {args.files} files one at a time", lambda: [tok.encode(p) for p in paths])):
            rows.append(measure(name, run, float(durations.sum()), args.repeats))
    print(f"\nload average before/after: {load_before} / {os.getloadavg()[0]:.2f} (other processes share the cores)")
    print(f"median (min-max) of {args.repeats} warm runs; {record_note(record)}")
    print("| workload | audio s | compile s | warm wall s | audio s / wall s | original | ratio |\n"
          "|---|---|---|---|---|---|---|")
    for name, audio, compile_s, walls in rows:
        speeds = [audio / w for w in walls]
        ref = original.get(name)
        ratio = f"{statistics.median(speeds) / ref:.2f}x" if ref else "-"
        print(f"| {name} | {audio:.1f} | {compile_s:.1f} | {summary(walls)} | {summary(speeds)} | {ref or '-'} "
              f"| {ratio} |")


if __name__ == "__main__":
    main()
