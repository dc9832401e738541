"""What the voice-chat server adds to the pipeline's own time to first audio, in one run.

    python benchmarks/serve_latency.py [--mode turbo] [--turns 8] [--json out.json]

The demo's tiny random parts (`python -m vita_jax.serve --demo`: forced Boost interleaving,
bounded streaming, 1 flow step), compiled ahead. Then, alternating turn by turn so that load on a
shared machine hits both alike, the same spoken question (2 s, 16 kHz, a fresh conversation each):
  - pipeline: `VoiceChat.chat_stream(speech=array)` called directly; first audio = from the call to
    the first AudioChunk in the caller's hand;
  - server: a websocket client on localhost (uvicorn in a thread of this process) that has already
    sent the recording as pcm16 frames; first audio = from sending {"type": "turn"} to the first
    audio chunk's samples arriving. The same turn's own pipeline figure (timings.first_audio_s,
    from the input read) gives a second, same-turn measure of what the server adds (input decode,
    queue, thread hand-offs, JSON + binary framing, the socket).
Prints the medians (ms) and the target (server adds <= 50 ms).
"""

import argparse
import json
import statistics
import tempfile
import time


import numpy as np

from vita_jax.pipeline import AudioChunk
from vita_jax.serve.app import create_app
from vita_jax.serve.background import serving
from vita_jax.serve.cli import build_parser, load_service

TARGET_MS = 50.0


def question(seconds=2.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    wav = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 1100), 1))
    return (0.2 * wav + 0.01 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


def pipeline_first_audio(service, wav, mode):
    session = service.new_session()
    start = time.perf_counter()
    events = service.events(session, "chat", mode, wav=wav, rate=16000)
    try:
        for event in events:
            if isinstance(event, AudioChunk):
                return time.perf_counter() - start
    finally:
        events.close()
    raise RuntimeError("the pipeline produced no audio")


def server_first_audio(base_url, wav, mode):
    """(client-measured first audio, the same turn's pipeline first_audio_s)."""
    from websockets.sync.client import connect

    with connect(base_url.replace("http", "ws", 1) + "/ws", max_size=2**26) as socket:
        assert json.loads(socket.recv())["type"] == "ready"
        socket.send(json.dumps({"type": "audio", "format": "pcm16", "sample_rate": 16000}))
        socket.send((np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes())
        start = time.perf_counter()
        socket.send(json.dumps({"type": "turn", "mode": mode}))
        first = None
        while True:
            frame = socket.recv()
            if isinstance(frame, bytes):
                first = time.perf_counter() - start if first is None else first
                continue
            message = json.loads(frame)
            if message["type"] == "error":
                raise RuntimeError(message["message"])
            if message["type"] == "end":
                return first, message["timings"]["first_audio_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="turbo")
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    wav = question()
    with tempfile.TemporaryDirectory() as root:
        serve_args = build_parser().parse_args(["--demo", "--mode", args.mode,
                                                "--max-new-tokens", str(args.max_new_tokens),
                                                "--warmup-prompt-tokens", "0"])
        service = load_service(serve_args, root, log=lambda line: print(line, flush=True))
        direct, served, served_pipeline = [], [], []
        with serving(create_app(service)) as base_url:
            server_first_audio(base_url, wav, args.mode)  # warm the socket path
            for _ in range(args.turns):
                direct.append(pipeline_first_audio(service, wav, args.mode))
                client, own = server_first_audio(base_url, wav, args.mode)
                served.append(client)
                served_pipeline.append(own)
    ms = lambda values: 1e3 * statistics.median(values)  # noqa: E731
    added_same_turn = [c - p for c, p in zip(served, served_pipeline)]
    report = {"mode": args.mode, "turns": args.turns, "pipeline_first_audio_ms": ms(direct),
              "server_first_audio_ms": ms(served), "server_turn_pipeline_first_audio_ms": ms(served_pipeline),
              "added_ms": ms(served) - ms(direct), "added_same_turn_ms": ms(added_same_turn),
              "target_added_ms": TARGET_MS}
    print(f"tiny demo parts, mode {args.mode}, {args.turns} turns each (medians; the machine may be shared):")
    print(f"  pipeline alone, first audio          {report['pipeline_first_audio_ms']:8.1f} ms")
    print(f"  through the server, first audio      {report['server_first_audio_ms']:8.1f} ms "
          f"(its pipeline: {report['server_turn_pipeline_first_audio_ms']:.1f} ms)")
    print(f"  added by the server                  {report['added_ms']:8.1f} ms vs the pipeline alone, "
          f"{report['added_same_turn_ms']:.1f} ms within the same turn (target <= {TARGET_MS:.0f} ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
