"""One jsonl record -> a training sample {input_ids, labels} or a counted skip.

Bad input never reaches jit: a sample whose `<|audio|>` tags and audio list disagree, a missing
audio file, an empty assistant turn, a malformed message, audio codes out of range, or a
sample longer than the sequence length becomes a `Skip(reason)` (counted by the packer and
reported in the metrics) or, with on_bad_sample="error", a SampleError naming the record.
"""

import dataclasses
import json

import numpy as np

from vita_jax.data.audio_codes import MissingAudio
from vita_jax.data.chat_template import ConversationError, TokenSpan, count_audio_tags, render

SKIP_REASONS = ("audio_mismatch", "missing_audio", "empty_assistant", "too_long", "bad_record")
ON_BAD_SAMPLE = ("skip", "error")


class SampleError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Skip:
    reason: str
    where: str
    message: str


class SampleEncoder:
    """Callable: (location, json line) -> {"input_ids", "labels"} (int32 arrays) or Skip."""

    def __init__(self, tokenizer, ids, audio_codes, ratios, seq_len, on_bad_sample="skip"):
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise ValueError(f"data.on_bad_sample must be one of {ON_BAD_SAMPLE}, got {on_bad_sample!r}")
        self.tokenizer, self.ids, self.audio_codes = tokenizer, ids, audio_codes
        self.ratios, self.seq_len, self.on_bad_sample = ratios, seq_len, on_bad_sample

    def __call__(self, item):
        where, line = item
        try:
            return self._encode(where, line)
        except (ConversationError, MissingAudio, SampleError) as err:
            reason = getattr(err, "reason", "missing_audio" if isinstance(err, MissingAudio) else "bad_record")
            if self.on_bad_sample == "error":
                raise SampleError(f"{where}: {reason}: {err}") from err
            return Skip(reason, where, str(err))

    def _encode(self, where, line):
        try:
            record = json.loads(line)
            messages = record["messages"]
        except (ValueError, KeyError, TypeError) as err:
            raise ConversationError("bad_record", f"not a JSON object with 'messages' ({err})") from err
        audios = record.get("audios") or []
        tags = count_audio_tags(messages) if all(isinstance(m.get("content"), str) for m in messages) else -1
        if tags != len(audios):
            raise ConversationError("audio_mismatch", f"{tags} <|audio|> tags but {len(audios)} audios")
        try:
            codes = self.audio_codes.codes_for(record)
        except ValueError as err:
            raise ConversationError("audio_mismatch", str(err)) from err
        return self._render(messages, codes)

    def _render(self, messages, codes):
        """{"input_ids", "labels"} of `messages` with one code list (or TokenSpan) per `<|audio|>` tag."""
        for c in codes:
            if c and not isinstance(c, TokenSpan) and not 0 <= min(c) <= max(c) < self.ids.num_audio_codes:
                raise ConversationError("bad_record", f"audio codes outside [0, {self.ids.num_audio_codes})")
        input_ids, labels = render(messages, codes, self.tokenizer, self.ids, self.ratios)
        if len(input_ids) > self.seq_len:
            raise ConversationError("too_long", f"{len(input_ids)} tokens > sequence length {self.seq_len}")
        return {"input_ids": np.asarray(input_ids, np.int32), "labels": np.asarray(labels, np.int32)}
