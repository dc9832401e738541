"""What the server holds: the pipeline loaded once (and compiled ahead), a conversation per
connection, the accelerator's queue, and the bridge that runs one blocking pipeline stream in a
thread while the event loop forwards its events as they exist."""

import asyncio
import copy
import threading
import time

import numpy as np

from vita_jax.decode import LOSSLESS, PRESETS
from vita_jax.decode.decoder import prompt_buckets
from vita_jax.pipeline.conversation import Conversation
from vita_jax.serve.turn_queue import TurnQueue

TASKS = ("chat", "asr", "tts")
MODES = (*PRESETS, LOSSLESS)


class RequestError(ValueError):
    """A request the server refuses (unknown mode or task, missing input); the message says why."""


class Service:
    """`chat`: a VoiceChat whose options (max_new_tokens, sampling, policy) are the server's
    defaults; every session is a copy of it with its own conversation. `modes`: the mode names
    clients may ask for (or {name: mode value of `generate`, e.g. [1, 10]}); the first is the default."""

    def __init__(self, chat, modes=MODES, max_audio_s=30.0, description="", demo=False):
        self.chat, self.max_audio_s = chat, max_audio_s
        self.modes = dict(modes) if isinstance(modes, dict) else {name: name for name in modes}
        self.description, self.demo = description, demo
        self.default_mode = next(iter(self.modes))
        self.queue = None  # made on the server's event loop (asyncio objects bind to it)
        self.warmup_s, self.compiled_modes = None, set()

    def turn_queue(self):
        if self.queue is None:
            self.queue = TurnQueue()
        return self.queue

    def new_session(self):
        """A VoiceChat sharing the loaded parts and compiled programs, with an empty history."""
        session = copy.copy(self.chat)
        session.generate_options = dict(self.chat.generate_options)
        session.conversation = Conversation(self.chat.conversation.system_ids)
        return session

    def check_request(self, task, mode, text, has_audio):
        """The mode name to run, or RequestError."""
        if task not in TASKS:
            raise RequestError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        mode = self.default_mode if mode in (None, "") else mode
        if not isinstance(mode, str) or mode not in self.modes:
            raise RequestError(f"unknown mode {mode!r}; this server offers {', '.join(self.modes)}")
        if text is not None and not isinstance(text, str):
            raise RequestError(f"text must be a string, got {type(text).__name__}")
        text = text.strip() if text else None
        if task == "chat" and not text and not has_audio:
            raise RequestError("a chat turn needs text and/or a recording")
        if task == "asr" and not has_audio:
            raise RequestError("asr needs a recording")
        if task == "tts" and not text:
            raise RequestError("tts needs text (a recording, if any, is the voice prompt)")
        return mode, text

    def events(self, session, task, mode, text=None, wav=None, rate=None):
        """The pipeline stream of one request (blocking; run it with `run_in_thread`)."""
        session.generate_options["mode"] = self.modes[mode]
        if task == "asr":
            return session.asr_stream(wav, rate)
        if task == "tts":
            return session.tts_stream(text, wav, rate)
        return session.chat_stream(speech=wav, text=text, sample_rate=rate)

    def warm_up(self, modes=None, speech_seconds=2.0, log=print, prompt_tokens=None):
        """Compile ahead of serving: one spoken and one text chat turn per mode (LLM programs for the
        first prompt buckets, the speech tokenizer, the decoder's chunk programs), plus ASR and TTS;
        then the LLM programs of every longer prompt bucket up to `prompt_tokens` (a growing
        conversation reaches them; otherwise each compiles when first needed, stalling that turn)."""
        start = time.perf_counter()
        rate = 48000  # what browsers record at: warms the resampler too
        t = np.arange(int(speech_seconds * rate)) / rate
        wav = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 1100 * t)).astype(np.float32)
        for mode in modes or (self.default_mode,):
            for task, text, speech in (("chat", None, wav), ("chat", "Hello!", None), ("asr", None, wav),
                                       ("tts", "Hello!", None)):
                began = time.perf_counter()
                for _ in self.events(self.new_session(), task, mode, text, speech,
                                     rate if speech is not None else None):
                    pass
                self.compiled_modes.add(str(mode))
                log(f"warm-up: {mode} {task} {'speech' if speech is not None else 'text'} "
                    f"{time.perf_counter() - began:.1f} s")
            session = self.new_session()
            session.generate_options["mode"] = self.modes[mode]
            budget = min(prompt_tokens or 0, session.cache_length - session.generate_options["max_new_tokens"])
            for length in prompt_buckets(budget):
                began = time.perf_counter()
                session.compile_for_prompt(length)
                log(f"warm-up: {mode} prompt bucket {length} {time.perf_counter() - began:.1f} s")
        self.warmup_s = time.perf_counter() - start
        return self.warmup_s

    def info(self):
        model = self.chat.model
        programs = self.chat.compiled_programs()
        config = model.config
        return {
            "model": self.description, "demo": self.demo,
            "llm": {"layers": config.num_layers, "hidden_size": config.hidden_size,
                    "vocab_size": config.vocab_size, "mctp_modules": config.num_mctp_modules,
                    "cache_length": self.chat.cache_length},
            "modes": list(self.modes), "default_mode": self.default_mode, "tasks": list(TASKS),
            "max_new_tokens": self.chat.generate_options["max_new_tokens"],
            "speech_policy": self.chat.speech_options["name"], "flow_steps": self.chat.speech_options["n_timesteps"],
            "input_sample_rate": self.chat.speech_input.sample_rate,
            "output_sample_rate": self.chat.speech_decoder.sample_rate,
            "max_audio_s": self.max_audio_s, "compiled_modes": sorted(self.compiled_modes),
            "compiled_programs": programs, "warmup_s": self.warmup_s,
            "queue_length": self.queue.length if self.queue is not None else 0,
        }


async def run_in_thread(make_events, cancel):
    """Async generator over a blocking pipeline stream run in its own thread: each event is yielded
    as soon as the thread has it. Setting `cancel` (a threading.Event) closes the stream at its next
    event (the pipeline then stops the LLM at its next cycle). The thread is joined before this ends."""
    loop = asyncio.get_running_loop()
    inbox = asyncio.Queue()

    def put(item):
        loop.call_soon_threadsafe(inbox.put_nowait, item)

    def work():
        try:
            events = make_events()
            try:
                for event in events:
                    put(("event", event))
                    if cancel.is_set():
                        break
            finally:
                events.close()
            put(("done", None))
        except BaseException as error:  # handed to the event loop
            put(("error", error))

    thread = threading.Thread(target=work, name="vita-jax-serve-turn", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = await inbox.get()
            if kind == "event":
                if not cancel.is_set():
                    yield payload
            elif kind == "error":
                raise payload
            else:
                return
    finally:
        cancel.set()
        while thread.is_alive():  # after "done" this is at once; after a client left, the next cycle
            await asyncio.sleep(0.005)
        thread.join()
