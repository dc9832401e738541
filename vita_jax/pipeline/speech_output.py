"""Audio codes -> 22.05 kHz audio while the LLM keeps generating: two streaming policies and the
worker thread that runs one behind a bounded queue.

Policies (each takes code chunks as the LLM closes them with <|end_of_audio|>):
  "release"  the release's streaming benchmark (spec section 10): every chunk decodes ALL codes so
             far again (token2wav, same key) and only the samples beyond those already emitted
             leave; a chunk's cost grows with the answer. The concatenated stream equals what one
             replays offline with the same codes, key and steps.
  "bounded"  this project's streaming (audio/streaming.py): each chunk is conditioned on the last
             `context_tokens` codes only, with the original's overlap/cross-fade bookkeeping;
             constant cost per chunk. Chunks too short to make audio are held until more arrive.
"""

import queue
import threading
import time

import numpy as np

from vita_jax.audio.streaming_decoder import DEFAULT_CONTEXT_TOKENS, StreamingDecoder

POLICIES = ("release", "bounded")
_EMPTY = np.zeros(0, np.float32)


class ReleasePolicy:
    def __init__(self, decoder, key, n_timesteps):
        self.decoder, self.key, self.n_timesteps = decoder, key, n_timesteps
        self.codes, self.emitted = [], 0

    def push(self, codes):
        self.codes += list(codes)
        wav = self.decoder.token2wav(self.codes, key=self.key, n_timesteps=self.n_timesteps)
        new, self.emitted = wav[self.emitted:], len(wav)
        return new

    def finish(self, codes):
        return self.push(codes) if len(codes) else _EMPTY


class BoundedContextPolicy:
    def __init__(self, decoder, key, n_timesteps, context_tokens=DEFAULT_CONTEXT_TOKENS):
        self.stream = StreamingDecoder(decoder, key=key, context_tokens=context_tokens, n_timesteps=n_timesteps)
        self.pending = []

    def push(self, codes):
        self.pending += list(codes)
        if not self.stream.can_push(len(self.pending)):
            return _EMPTY
        wav, _ = self.stream.push(self.pending)
        self.pending = []
        return wav

    def finish(self, codes):
        self.pending += list(codes)
        if self.pending:
            wav, _ = self.stream.push(self.pending, finalize=True)
            return wav
        return self.stream.finish() if self.stream.chunk_index else _EMPTY


def make_policy(name, decoder, key=None, n_timesteps=None, context_tokens=DEFAULT_CONTEXT_TOKENS):
    if name == "release":
        return ReleasePolicy(decoder, key, n_timesteps)
    if name == "bounded":
        return BoundedContextPolicy(decoder, key, n_timesteps, context_tokens)
    raise ValueError(f"unknown speech streaming policy {name!r}; choose one of {', '.join(POLICIES)}")


class SpeechWorker:
    """Runs `policy` in a thread: `submit(codes)` per closed chunk, `end(tail_codes)` once the LLM is
    done. For every piece of audio it calls `emit(wav, codes_so_far, decode_start, ready)` (times
    from `clock`), then `done()` after the end; `fail(error)` if decoding raised. `stop()` makes
    it quit at the next chunk boundary; blocked submits return False then. `first_done` is set
    once the first item has been decoded (or the worker stopped)."""

    def __init__(self, policy, emit, done, fail, clock=time.perf_counter, queue_size=4):
        self.policy, self.emit, self.done, self.fail, self.clock = policy, emit, done, fail, clock
        self.inbox = queue.Queue(maxsize=queue_size)
        self.stopped = threading.Event()
        self.first_done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="vita-jax-speech-decoder", daemon=True)
        self.codes = 0

    def start(self):
        self.thread.start()
        return self

    def _put(self, item):
        while not self.stopped.is_set():
            try:
                self.inbox.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def submit(self, codes):
        return self._put(("codes", tuple(codes)))

    def end(self, tail_codes=()):
        return self._put(("end", tuple(tail_codes)))

    def stop(self):
        self.stopped.set()
        self.first_done.set()

    def join(self):
        self.thread.join()

    def _run(self):
        try:
            while not self.stopped.is_set():
                try:
                    kind, codes = self.inbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                start = self.clock()
                self.codes += len(codes)
                wav = self.policy.push(codes) if kind == "codes" else self.policy.finish(codes)
                if len(wav):
                    self.emit(np.asarray(wav, np.float32), self.codes, start, self.clock())
                self.first_done.set()
                if kind == "end":
                    self.done()
                    return
        except BaseException as error:  # handed to the consumer
            self.fail(error)
        finally:
            self.first_done.set()
