"""Speech-tokenizer speed on this machine: audio seconds tokenized per wall second.

python -m benchmarks.speech_tokenizer_speed [--files 32] [--torch-reference]

Real GLM-4-Voice tokenizer geometry (d_model 1280, 16 layers, 16384 codes) with random
weights, float32. Each workload runs three times: the first pass includes XLA compilation of its
shape buckets, the best of two more is the warm figure; compile time = first - warm. Inputs are
16 kHz wav files written to a temporary directory (reading and features included).
On a busy machine compare CPU seconds, e.g. single-threaded:
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
    python -m benchmarks.speech_tokenizer_speed --torch-reference --torch-threads 1
"""

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

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


def timed(fn):
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(name, run, audio_seconds, repeats=2):
    """First call (compiles), then the best of `repeats` warm calls."""
    first, _ = timed(run)
    wall, cpu = min(timed(run) for _ in range(repeats))
    return name, audio_seconds, first - wall, wall, cpu


def torch_reference_seconds(config, seconds, threads):
    """Warm (wall, CPU) seconds of the PyTorch reference (tests/torch_refs) on one segment, same geometry."""
    import torch
    from transformers import WhisperFeatureExtractor

    from tests.torch_refs.whisper_vq_ref import WhisperVQRef, tiny_hf_config

    hf = tiny_hf_config(
        d_model=config.d_model, heads=config.num_heads, ffn=config.ffn_dim, layers=config.num_layers,
        quantize_position=config.num_layers, codes=config.codebook_size,
    )
    model = WhisperVQRef(hf).eval()
    wav = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * 16000))).astype(np.float32)
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)

    def run():
        out = extractor(wav, sampling_rate=16000, return_tensors="pt", padding="longest", pad_to_multiple_of=1280,
                        return_attention_mask=True)
        model(out["input_features"], out["attention_mask"])

    torch.set_num_threads(threads)
    run()
    return timed(run)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=32, help="files in the batched workload")
    parser.add_argument("--torch-reference", action="store_true", help="also time the PyTorch reference on 30 s")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count(), help="threads of the PyTorch reference")
    args = parser.parse_args(argv)
    config = WhisperVQConfig()
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, {os.cpu_count()} cores; {config}")
    start = time.perf_counter()
    tok = random_tokenizer(config)
    print(f"random init of the real geometry: {time.perf_counter() - start:.1f} s")
    rows, load_before = [], f"{os.getloadavg()[0]:.2f}"
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (30.0, 10.0, 4.0):
            (path,) = write_files(tmp, [seconds], seed=int(seconds))
            rows.append(measure(f"single file, {seconds:.0f} s", lambda p=path: tok.encode(p), seconds))
        durations = np.random.default_rng(1).uniform(2.0, 15.0, args.files)
        paths = write_files(tmp, durations, seed=2)
        rows.append(
            measure(f"batch of {args.files} files, 2-15 s", lambda: tok.encode_batch(paths), float(durations.sum()))
        )
    print(f"\nload average before/after: {load_before} / {os.getloadavg()[0]:.2f} (other processes share the cores)")
    print("| workload | audio s | compile s | warm wall s | audio s / wall s | warm CPU s |\n|---|---|---|---|---|---|")
    for name, audio, compile_s, wall, cpu in rows:
        print(f"| {name} | {audio:.1f} | {compile_s:.1f} | {wall:.2f} | {audio / wall:.1f} | {cpu:.2f} |")
    if args.torch_reference:
        wall, cpu = torch_reference_seconds(config, 30.0, args.torch_threads)
        print(f"| PyTorch reference, single 30 s | 30.0 | - | {wall:.2f} | {30.0 / wall:.1f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
