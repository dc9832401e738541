"""What a speech pipeline's stream yields, in order: Note (rarely), TextDelta and AudioChunk as
soon as each exists, then one TurnEnd. Times are seconds since the input was read."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Note:
    """Something the user should know (e.g. history turns dropped to fit the cache)."""

    text: str


@dataclasses.dataclass(frozen=True)
class TextDelta:
    text: str          # new text ('' while a UTF-8 character is incomplete)
    token_ids: tuple   # the non-audio ids behind it
    time_s: float


@dataclasses.dataclass(frozen=True)
class AudioChunk:
    wav: np.ndarray    # float32 samples at `sample_rate`
    sample_rate: int
    index: int
    codes: int         # audio codes decoded so far, this chunk's included
    start_s: float     # where the chunk starts in the answer's audio
    decode_start_s: float
    ready_s: float     # when it left the speech decoder

    @property
    def duration_s(self):
        return len(self.wav) / self.sample_rate


@dataclasses.dataclass
class TurnEnd:
    text: str
    prompt_ids: list   # the prompt the LLM ran (history included)
    token_ids: list    # every generated id (text, markers and audio tokens), as `generate` returns them
    codes: list        # the audio codes, in order
    wav: np.ndarray    # all audio chunks concatenated
    sample_rate: int
    stop_reason: str   # "eos" or "max_new_tokens"
    timings: dict      # see VoiceChat (tokenize_s, compile_s, prefill_s, first_text_s, first_audio_s, ...)
    chunks: list       # (index, samples, decode_start_s, ready_s) of every audio chunk
    llm_event_s: list  # when each token event of the LLM reached the pipeline
    notes: list
