"""The ASGI app: the page, `/ws` (vita_jax/serve/websocket.py), HTTP ASR / TTS / one-shot chat
(wav in, wav out), /health and /info. Every request that runs the model waits its turn in the
service's queue (one at a time on the accelerator)."""

import contextlib
import io
import json
import os
import threading
import time
import urllib.parse

from fastapi import FastAPI, File, Form, UploadFile, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from vita_jax.pipeline import TurnEnd
from vita_jax.serve.audio_input import AUTO, decode_audio
from vita_jax.serve.service import run_in_thread
from vita_jax.serve.websocket import Connection

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


def wav_bytes(wav, sample_rate):
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wav, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def create_app(service):
    app = FastAPI(title="vita-jax voice chat", docs_url="/docs", redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"))

    @app.get("/health")
    async def health():
        return {"status": "ok", "threads": threading.active_count(),
                "queue_length": service.queue.length if service.queue is not None else 0}

    @app.get("/info")
    async def info():
        return service.info()

    @app.websocket("/ws")
    async def websocket(socket: WebSocket):
        await Connection(socket, service).serve()

    async def run_task(task, mode, text, upload):
        """(TurnEnd, timings of the server) of a one-shot request, or an error response."""
        received = time.perf_counter()
        data = await upload.read() if upload is not None else b""
        try:
            mode, text = service.check_request(task, mode, text, bool(data))
            wav, rate = decode_audio(data, AUTO, max_seconds=service.max_audio_s) if data else (None, None)
        except ValueError as error:
            return None, JSONResponse({"error": str(error)}, status_code=400)
        session, end = service.new_session(), None
        try:
            async with service.turn_queue().turn():
                async with contextlib.aclosing(run_in_thread(
                        lambda: service.events(session, task, mode, text, wav, rate), threading.Event())) as events:
                    async for event in events:
                        end = event if isinstance(event, TurnEnd) else end
        except ValueError as error:
            return None, JSONResponse({"error": str(error)}, status_code=400)
        return end, {**end.timings, "server_total_s": time.perf_counter() - received}

    def audio_response(end, timings):
        return Response(wav_bytes(end.wav, end.sample_rate), media_type="audio/wav",
                        headers={"X-Text": urllib.parse.quote(end.text), "X-Timings": json.dumps(timings)})

    @app.post("/asr")
    async def asr(audio: UploadFile = File(None), mode: str = Form(None)):
        """Speech (any container FFmpeg reads: wav, webm/opus, ogg, mp3, flac) -> {"text", "timings"}."""
        end, timings = await run_task("asr", mode, None, audio)
        return timings if end is None else {"text": end.text, "timings": timings}

    @app.post("/tts")
    async def tts(text: str = Form(None), voice: UploadFile = File(None), mode: str = Form(None)):
        """Text (+ optional voice-prompt recording) -> audio/wav (X-Text: the text it generated, URL-quoted)."""
        end, timings = await run_task("tts", mode, text, voice)
        return timings if end is None else audio_response(end, timings)

    @app.post("/chat")
    async def chat(audio: UploadFile = File(None), text: str = Form(None), mode: str = Form(None)):
        """One spoken-chat turn without history: speech and/or text -> audio/wav, the answer's text in
        X-Text (URL-quoted) and the timings in X-Timings (JSON)."""
        end, timings = await run_task("chat", mode, text, audio)
        return timings if end is None else audio_response(end, timings)

    return app
