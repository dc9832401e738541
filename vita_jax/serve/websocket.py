"""The websocket protocol of `/ws` (docs/serving.md): one conversation per connection.

Client -> server (JSON text frames, plus binary frames of audio):
    {"type": "audio", "format": "pcm16", "sample_rate": 48000}   starts a recording; the binary frames
        that follow are its bytes (pcm16: little-endian 16-bit mono; or "webm"/"ogg"/"wav"/...: a
        container, e.g. MediaRecorder's webm/opus, decoded with PyAV when the turn starts)
    {"type": "turn", "task": "chat"|"asr"|"tts", "text": "...", "mode": "turbo", "transcribe": true}
        runs the recording (if any) and/or the text; tts: the recording is the voice prompt
    {"type": "interrupt"}   stops the running turn at the pipeline's next cycle (barge-in)
    {"type": "reset"}       forgets this connection's conversation (after the running turn)
    {"type": "ping"}
Server -> client:
    ready, queued {position}, start {turn}, note, text {text, time_s}, audio {index, samples, sample_rate,
    start_s, ready_s} followed by one binary frame (float32 little-endian samples), user_text (the
    question transcribed, after a spoken chat turn with "transcribe"), end {text, interrupted,
    timings, ...}, reset, pong, error {message[, turn][, refused: "turn"]}: a failed turn ends with
    its error (carrying its id); a turn request refused before queueing gets refused="turn".
    Every message about a turn carries its id "turn" (1, 2, ... per connection).
"""

import asyncio
import contextlib
import json
import logging
import threading
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from vita_jax.pipeline import AudioChunk, Note, TextDelta, TurnEnd
from vita_jax.serve.audio_input import AudioInputError, check_format, check_upload_size, decode_audio
from vita_jax.serve.service import run_in_thread

log = logging.getLogger("vita_jax.serve")


class Connection:
    def __init__(self, websocket: WebSocket, service):
        self.websocket, self.service = websocket, service
        self.session = service.new_session()
        self.recording = None       # {"format", "sample_rate", "data": bytearray, "refused": bool}
        self.cancel = None          # the running turn's threading.Event
        self.requests = asyncio.Queue()
        self.send_lock = asyncio.Lock()
        self.turns = 0

    async def send(self, message, binary=None):
        async with self.send_lock:  # an audio header and its samples stay adjacent
            await self.websocket.send_text(json.dumps(message))
            if binary is not None:
                await self.websocket.send_bytes(binary)

    async def error(self, message, turn=None, refused=None):
        """`turn`: the failed turn's id; `refused="turn"`: a turn request refused before it was queued."""
        await self.send({"type": "error", "message": message, **({"turn": turn} if turn is not None else {}),
                         **({"refused": refused} if refused else {})})

    async def serve(self):
        await self.websocket.accept()
        info = self.service.info()
        await self.send({"type": "ready", "modes": info["modes"], "default_mode": info["default_mode"],
                         "tasks": info["tasks"], "output_sample_rate": info["output_sample_rate"],
                         "max_audio_s": info["max_audio_s"]})
        worker = asyncio.create_task(self.process())
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    await self.on_audio(message["bytes"])
                elif message.get("text") is not None:
                    await self.on_message(message["text"])
        except WebSocketDisconnect:
            pass
        finally:
            if self.cancel is not None:
                self.cancel.set()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await worker

    async def on_audio(self, data):
        recording = self.recording
        if recording is None:
            await self.error('binary audio arrived before an {"type": "audio", ...} message announcing it')
            return
        if recording["refused"]:
            return
        recording["data"] += data
        try:
            check_upload_size(len(recording["data"]), recording["format"], recording["sample_rate"],
                              self.service.max_audio_s)
        except AudioInputError as error:
            recording["refused"], recording["data"] = True, bytearray()
            await self.error(str(error))

    async def on_message(self, text):
        try:
            message = json.loads(text)
        except json.JSONDecodeError as error:
            await self.error(f"malformed message (not JSON): {error}")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "audio":
            try:
                check_format(message.get("format"), message.get("sample_rate"))
            except AudioInputError as error:
                self.recording = None
                await self.error(str(error))
                return
            self.recording = {"format": message["format"], "sample_rate": message.get("sample_rate"),
                              "data": bytearray(), "refused": False}
        elif kind == "turn":
            await self.on_turn(message)
        elif kind == "interrupt":
            if self.cancel is not None:
                self.cancel.set()
        elif kind == "reset":
            await self.requests.put(("reset", None))
        elif kind == "ping":
            await self.send({"type": "pong"})
        else:
            await self.error(f"malformed message: expected a JSON object with a type among audio, turn, "
                             f"interrupt, reset, ping; got {text[:80]!r}")

    async def on_turn(self, message):
        received = time.perf_counter()
        recording, self.recording = self.recording, None
        if recording is not None and recording["refused"]:
            await self.error("the turn's recording was refused (see the previous error); record again",
                             refused="turn")
            return
        has_audio = recording is not None and len(recording["data"]) > 0
        try:
            mode, text = self.service.check_request(message.get("task", "chat"), message.get("mode"),
                                                    message.get("text"), has_audio)
        except ValueError as error:
            await self.error(str(error), refused="turn")
            return
        await self.requests.put(("turn", dict(task=message.get("task", "chat"), mode=mode, text=text,
                                              transcribe=bool(message.get("transcribe", False)),
                                              recording=recording if has_audio else None, received=received)))

    async def process(self):
        """The connection's requests in order, each waiting for the accelerator."""
        while True:
            kind, request = await self.requests.get()
            if kind == "reset":
                self.session.reset()
                await self.send({"type": "reset", "history_turns": len(self.session.conversation)})
                continue
            self.turns += 1
            try:
                await self.run_turn(self.turns, **request)
            except (asyncio.CancelledError, WebSocketDisconnect):
                raise
            except Exception as error:  # noqa: BLE001 - reported to this client; the server keeps serving
                if not isinstance(error, ValueError):
                    log.exception("turn %d failed", self.turns)
                await self.error(str(error) or type(error).__name__, turn=self.turns)

    async def run_turn(self, turn, task, mode, text, transcribe, recording, received):
        cancel = self.cancel = threading.Event()
        service, session = self.service, self.session

        async def report_position(position):
            await self.send({"type": "queued", "turn": turn, "position": position})

        decoded = {}

        def make_events():
            wav = rate = None
            if recording is not None:
                began = time.perf_counter()
                wav, rate = decode_audio(bytes(recording["data"]), recording["format"], recording["sample_rate"],
                                         service.max_audio_s)
                decoded["decode_input_s"] = time.perf_counter() - began
            decoded["wav"], decoded["rate"] = wav, rate
            return service.events(session, task, mode, text, wav, rate)

        async with service.turn_queue().turn(report_position):
            started = time.perf_counter()
            await self.send({"type": "start", "turn": turn, "task": task, "mode": mode})
            end, deltas, chunks, first_audio_sent = None, 0, 0, None
            async with contextlib.aclosing(run_in_thread(make_events, cancel)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        deltas += 1
                        await self.send({"type": "text", "turn": turn, "text": event.text, "time_s": event.time_s})
                    elif isinstance(event, AudioChunk):
                        await self.send({"type": "audio", "turn": turn, "index": event.index,
                                         "samples": len(event.wav), "sample_rate": event.sample_rate,
                                         "start_s": event.start_s, "ready_s": event.ready_s},
                                        event.wav.astype("<f4").tobytes())
                        chunks += 1
                        if first_audio_sent is None:
                            first_audio_sent = time.perf_counter() - received
                    elif isinstance(event, Note):
                        await self.send({"type": "note", "turn": turn, "text": event.text})
                    elif isinstance(event, TurnEnd):
                        end = event
            if transcribe and task == "chat" and end is not None and decoded.get("wav") is not None:
                cancel = threading.Event()
                async with contextlib.aclosing(run_in_thread(
                        lambda: session.asr_stream(decoded["wav"], decoded["rate"]), cancel)) as events:
                    async for event in events:
                        if isinstance(event, TurnEnd):
                            await self.send({"type": "user_text", "turn": turn, "text": event.text})
        self.cancel = None
        timings = dict(end.timings) if end is not None else {}
        timings.update(queue_s=started - received, decode_input_s=decoded.get("decode_input_s", 0.0),
                       server_first_audio_s=first_audio_sent, server_total_s=time.perf_counter() - received)
        generated = timings.get("generated_tokens")
        busy = (timings.get("total_s") or 0) - (timings.get("tokenize_s") or 0)
        await self.send({
            "type": "end", "turn": turn, "task": task, "mode": mode, "interrupted": end is None,
            "text": end.text if end is not None else None,
            "stop_reason": end.stop_reason if end is not None else "interrupted",
            "text_deltas": deltas, "audio_chunks": chunks,
            "audio_s": len(end.wav) / end.sample_rate if end is not None else None,
            "tokens_per_s": generated / busy if generated and busy > 0 else None,
            "prompt_tokens": timings.get("prompt_tokens"), "history_turns": len(session.conversation),
            "timings": timings,
        })
