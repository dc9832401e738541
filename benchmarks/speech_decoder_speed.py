"""Speed of the JAX GLM-4-Voice decoder on this machine: the real config, random weights, float32.

    python -m benchmarks.speech_decoder_speed [--seconds 1 5 20] [--stream-chunks 12] [--context 10]

Offline: real-time factor (audio seconds per wall second; higher is faster) of token2wav for
1, 5 and 20 s of audio, split into flow and HiFT: median and spread of `--repeats` warm runs,
the compile time of the first call reported apart, beside the original GLM-4-Voice PyTorch
code's figures recorded on this machine's kind, if any (`benchmarks/original_reference.py`).
Streaming: 10-code chunks; latency of the first chunk and the cost of every later chunk, warm
(programs compiled by a first pass over the same stream), with the whole history as context
(the original's semantics) and with a bounded context.
"""

import argparse
import shlex
import statistics
import sys

import jax
import numpy as np

from benchmarks.machine import machine_line, repeat, summary, timed
from benchmarks.original_reference import nearest, record_note, this_machine_record
from vita_jax.audio.decoder_config import DecoderConfig, FlowConfig, HiftConfig
from vita_jax.audio.decoder_params import random_decoder_params
from vita_jax.audio.speech_decoder import SpeechDecoder
from vita_jax.audio.streaming_decoder import StreamingDecoder


def offline_row(dec, seconds, rng, repeats):
    n_tokens = int(round(seconds * dec.cfg.flow.input_frame_rate))
    codes = rng.integers(0, dec.cfg.flow.vocab_size, n_tokens)
    mel, first_flow = timed(dec.token2mel, codes)
    wav, first_hift = timed(dec.mel2wav, mel)
    flow_s = repeat(lambda: dec.token2mel(codes), repeats)
    hift_s = repeat(lambda: dec.mel2wav(mel), repeats)
    audio_s = len(wav) / dec.sample_rate
    return {
        "seconds": seconds, "tokens": n_tokens, "frames": mel.shape[1], "audio_s": audio_s,
        "flow_s": flow_s, "hift_s": hift_s, "rtf": [audio_s / (f + h) for f, h in zip(flow_s, hift_s)],
        "compile_s": first_flow + first_hift - min(flow_s) - min(hift_s),
    }


def stream_costs(dec, chunks, context_tokens):
    """Wall seconds of each chunk of a warm stream."""
    stream = StreamingDecoder(dec, context_tokens=context_tokens)
    costs = []
    for i, chunk in enumerate(chunks):
        _, dt = timed(stream.push, chunk, finalize=i == len(chunks) - 1)
        costs.append(dt)
    return costs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[1, 5, 20])
    ap.add_argument("--stream-chunks", type=int, default=12, help="10-code chunks per benchmarked stream (0: none)")
    ap.add_argument("--context", type=int, nargs="+", default=[10], help="bounded stream contexts (codes)")
    ap.add_argument("--repeats", type=int, default=3, help="warm runs per offline length (median and spread)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.stream_chunks < 0:
        ap.error(f"--stream-chunks must be >= 0, got {args.stream_chunks}")
    given = argv if argv is not None else sys.argv[1:]
    print("command: python -m benchmarks.speech_decoder_speed " + " ".join(shlex.quote(a) for a in given))
    print(machine_line())
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s), float32")

    cfg = DecoderConfig(FlowConfig(), HiftConfig())
    params, init_s = timed(random_decoder_params, cfg)
    dec = SpeechDecoder(cfg, params)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    print(f"real config, random weights: {n_params / 1e6:.1f} M parameters (init {init_s:.1f} s)\n")
    record = this_machine_record()

    rng = np.random.default_rng(0)
    print(f"offline token2wav: median (min-max) of {args.repeats} warm runs; compile = first call minus the best"
          f" warm call; {record_note(record)}")
    print("| audio | codes | frames | flow s | HiFT s | RTF (audio s / wall s) | original RTF | ratio | compile s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seconds in args.seconds:
        r = offline_row(dec, seconds, rng, args.repeats)
        ref = nearest(record["decoder"], r["tokens"], tolerance=2) if record else None
        ratio = f"{statistics.median(r['rtf']) / ref:.2f}x" if ref else "-"
        print(f"| {r['audio_s']:.2f} s | {r['tokens']} | {r['frames']} | {summary(r['flow_s'])} | "
              f"{summary(r['hift_s'])} | {summary(r['rtf'])} | {ref or '-'} | {ratio} | {r['compile_s']:.1f} |",
              flush=True)

    if not args.stream_chunks:
        return
    chunks = [rng.integers(0, cfg.flow.vocab_size, 10) for _ in range(args.stream_chunks)]
    print(f"\nstreaming, {args.stream_chunks} chunks of 10 codes (0.8 s of audio each), warm")
    for context in [*args.context, None]:
        _, warm_s = timed(stream_costs, dec, chunks, context)  # compiles every program this stream uses
        costs = stream_costs(dec, chunks, context)
        label = "full history (original)" if context is None else f"last {context} codes"
        original_first = record["first_chunk_s"] if record else "-"
        print(f"context {label}: first chunk {costs[0]:.2f} s (original, recorded: {original_first} s); "
              "per chunk " + " ".join(f"{c:.2f}" for c in costs[1:])
              + f"  (first pass incl. compiles {warm_s:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
