"""A real voice-chat server (tiny random parts, uvicorn on a free localhost port in a thread) and a
small synchronous websocket client speaking its protocol, for tests/test_serve*.py."""

import io
import json

import numpy as np

from vita_jax.cli import voice
from vita_jax.cli.infer import decoding_options
from vita_jax.serve.cli import build_parser
from vita_jax.serve.service import Service

MODES = {"fast": [1, 2], "slow": [1, 1]}  # few module steps: quick compiles (the schedules are tested elsewhere)
MAX_NEW = 96
MAX_AUDIO_S = 4.0


def make_service(root):
    args = build_parser().parse_args(["--demo", "--max-new-tokens", str(MAX_NEW)])
    chat = voice.build_pipeline(args, decoding_options(args), root, random_demo=True)
    service = Service(chat, MODES, max_audio_s=MAX_AUDIO_S, description="tests: tiny random parts", demo=True)
    service.warm_up(["fast"], speech_seconds=1.5, log=lambda line: None)
    return service


def speech(seconds=1.5, rate=16000, seed=0):
    """A voiced-like test signal (harmonics + noise): the tokenizer only needs finite audio."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    wav = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 1100), 1))
    return (0.2 * wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def pcm16_bytes(wav):
    return (np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes()


def wav_file_bytes(wav, rate=16000):
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wav, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def webm_opus_bytes(wav, rate=16000):
    """What a browser's MediaRecorder sends: webm with opus (48 kHz), encoded with PyAV."""
    import av

    from vita_jax.audio.wav_io import resample

    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(resample(wav, rate, 48000)[None], format="flt", layout="mono")
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


class Client:
    """A websocket client: send(), turn() -> the messages of one turn (audio headers carry their samples)."""

    def __init__(self, base_url):
        from websockets.sync.client import connect

        self.connection = connect(base_url.replace("http", "ws", 1) + "/ws", max_size=2**26)
        self.socket = self.connection.__enter__()
        self.ready = self.receive()
        assert self.ready["type"] == "ready", self.ready

    def send(self, message):
        self.socket.send(json.dumps(message) if isinstance(message, dict) else message)

    def receive(self, timeout=120):
        frame = self.socket.recv(timeout=timeout)
        if isinstance(frame, bytes):
            return {"type": "binary", "data": frame}
        return json.loads(frame)

    def send_audio(self, data, fmt="pcm16", sample_rate=16000, frame_bytes=8000):
        self.send({"type": "audio", "format": fmt, **({"sample_rate": sample_rate} if fmt == "pcm16" else {})})
        for start in range(0, len(data), frame_bytes):
            self.send(data[start:start + frame_bytes])

    def collect(self, until=("end", "error"), on_message=None):
        """Messages up to and including the first whose type is in `until`; each audio header gets
        the binary frame that follows it as "wav" (float32)."""
        messages = []
        while True:
            message = self.receive()
            if message["type"] == "binary":
                raise AssertionError(f"a binary frame without an audio header before it (after {messages[-1:]})")
            if message["type"] == "audio":
                frame = self.receive()
                assert frame["type"] == "binary", f"audio header not followed by its samples: {frame}"
                message["wav"] = np.frombuffer(frame["data"], "<f4")
            messages.append(message)
            if on_message is not None:
                on_message(message)
            if message["type"] in until:
                return messages

    def turn(self, **options):
        self.send({"type": "turn", **options})
        return self.collect()

    def close(self):
        self.connection.__exit__(None, None, None)


def by_type(messages, kind):
    return [m for m in messages if m["type"] == kind]
