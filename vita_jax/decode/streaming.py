"""Streaming: the compiled loop hands each row's tokens to the host after the first token and after
every cycle (a `jax.experimental.io_callback`, skipped under `lax.cond` when nobody listens), and
the host turns them into events:

  TextEvent(row, token_ids, text)   new non-audio ids (text is None without a tokenizer)
  AudioChunkEvent(row, codes, index, closed) at every <|end_of_audio|>: the audio codes since the
                                     last one; when the row stops, the codes generated after its
                                     last <|end_of_audio|> (if any) follow with closed=False
  EndEvent(row, reason, num_tokens, token_ids)  the row stopped: "eos" or "max_new_tokens"; all its
                                     generated ids in order

So a row's text events carry every generated id that is not an audio code, its audio chunks every
audio code, in order: together they are exactly what `generate` returns for the row.

A listener may ask the loop to stop early (the stream was closed): the callback returns a flag
the loop condition reads.
"""

import dataclasses
import itertools
import threading

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

_listeners = {}
_listener_ids = itertools.count()
_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class TextEvent:
    row: int
    token_ids: tuple
    text: str = None


@dataclasses.dataclass(frozen=True)
class AudioChunkEvent:
    row: int
    codes: tuple     # audio token ids minus the <|audio_0|> offset
    index: int       # 0 for a row's first chunk
    closed: bool = True  # False: the codes left after the last <|end_of_audio|> when the row stopped


@dataclasses.dataclass(frozen=True)
class EndEvent:
    row: int
    reason: str      # "eos" or "max_new_tokens"
    num_tokens: int
    token_ids: tuple = dataclasses.field(default=(), compare=False)  # every generated id, in order


def register(listener):
    """listener(tokens [B, S], length [B], active [B]) -> True to cancel. Returns its id."""
    with _lock:
        listener_id = next(_listener_ids) % (2**31 - 1)
        _listeners[listener_id] = listener
    return listener_id


def unregister(listener_id):
    with _lock:
        _listeners.pop(listener_id, None)


def _dispatch(listener_id, tokens, length, active):
    listener = _listeners.get(int(listener_id))
    return np.bool_(listener is not None and bool(listener(np.asarray(tokens), np.asarray(length), np.asarray(active))))


def notifier(listener_id):
    """In-graph hook: hand the state's tokens to listener `listener_id` (an int32 scalar, < 0:
    nobody) and record whether it asked to stop."""
    def notify(state):
        def call():
            return io_callback(_dispatch, jax.ShapeDtypeStruct((), jnp.bool_), listener_id,
                                                state.tokens, state.length, state.active)
        cancelled = jax.lax.cond(listener_id >= 0, call, lambda: state.cancelled)
        return state.replace(cancelled=state.cancelled | cancelled)
    return notify


class RowEvents:
    """Turns one row's growing token list into events (text decoded incrementally: the text of all
    text ids so far, minus what was already given, holding back an incomplete UTF-8 character)."""

    def __init__(self, row, prompt_length, eos_ids, end_of_audio, audio_offset, num_audio_codes, tokenizer=None):
        self.row, self.start = row, prompt_length
        self.eos_ids, self.end_of_audio = set(eos_ids), end_of_audio
        self.audio_range = (audio_offset, audio_offset + num_audio_codes)
        self.tokenizer = tokenizer
        self.seen = 0
        self.text_ids, self.text = [], ""
        self.codes, self.chunks = [], 0
        self.ended = False

    def update(self, tokens, length, active):
        new = [int(t) for t in tokens[self.start + self.seen:length]]
        self.seen += len(new)
        run = []
        for token in new:
            if self.audio_range[0] <= token < self.audio_range[1]:
                self.codes.append(token - self.audio_range[0])
                continue
            run.append(token)
            if token == self.end_of_audio:
                yield self._text(run)
                run = []
                yield AudioChunkEvent(self.row, tuple(self.codes), self.chunks)
                self.codes, self.chunks = [], self.chunks + 1
        if run:
            yield self._text(run)
        if not active and not self.ended:
            self.ended = True
            if self.codes:
                yield AudioChunkEvent(self.row, tuple(self.codes), self.chunks, closed=False)
                self.codes, self.chunks = [], self.chunks + 1
            last = int(tokens[length - 1]) if self.seen else None
            reason = "eos" if last in self.eos_ids else "max_new_tokens"
            yield EndEvent(self.row, reason, self.seen, tuple(int(t) for t in tokens[self.start:length]))

    def holds_a_closed_chunk(self, tokens, length):
        """Whether this row's output in `tokens[:length]` holds an <|end_of_audio|>."""
        return bool((np.asarray(tokens[self.start:length]) == self.end_of_audio).any())

    def _text(self, ids):
        text = None
        if self.tokenizer is not None:
            self.text_ids.extend(ids)
            full = self.tokenizer.decode(self.text_ids, skip_special_tokens=True)
            if full.endswith("\ufffd"):
                text = ""
            else:
                text, self.text = full[len(self.text):], full
        return TextEvent(self.row, tuple(ids), text)
