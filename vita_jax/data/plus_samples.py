"""VITA-Audio-Plus training samples: the user's speech is continuous input.

A record is the base format (`messages`, `audios` in `<|audio|>` tag order, optional
`audio_codes`). A tag in a system or user message takes its wav file through the Plus front end
(fbank -> LFR -> CMVN, vita_jax/plus/frontend.py) and becomes `<|begin_of_audio|>`, T + 4
`<|context_of_audio|>` placeholders (label -100) and `<|end_of_audio|>`; a tag in an assistant
message is output speech: GLM-4-Voice codes as in the base model (record, code cache or speech
tokenizer). The sample carries the features [T_k, 560] of its input audios, in tag order.
"""

import os

import numpy as np

from vita_jax.audio.wav_io import AudioLoadError
from vita_jax.data.audio_codes import MissingAudio
from vita_jax.data.chat_template import AUDIO_TAG, ConversationError, TokenSpan
from vita_jax.data.samples import SampleEncoder
from vita_jax.plus.sensevoice import NUM_QUERIES


class PlusSampleEncoder(SampleEncoder):
    """SampleEncoder whose samples also hold "audios": [features [T_k, 560] float32] (input speech).
    `frontend`: a vita_jax.plus.frontend.Frontend; `max_audios` / `max_frames`: the row's audio
    slots (a sample needing more is skipped as too_long)."""

    def __init__(self, tokenizer, ids, audio_codes, ratios, seq_len, frontend, context_id, max_audios, max_frames,
                 data_root="", on_bad_sample="skip"):
        super().__init__(tokenizer, ids, audio_codes, ratios, seq_len, on_bad_sample)
        self.frontend, self.context_id = frontend, context_id
        self.max_audios, self.max_frames, self.data_root = max_audios, max_frames, data_root

    @property
    def audio_slots(self):
        """(audios, frames) of a packed row (data/packing.py)."""
        return self.max_audios, self.max_frames

    def _encode(self, where, line):
        record = self._record(line)
        messages, audios = record["messages"], record.get("audios") or []
        is_input = [m.get("role") != "assistant" for m in messages for _ in range(m["content"].count(AUDIO_TAG))]
        if len(is_input) != len(audios):
            raise ConversationError("audio_mismatch", f"{len(is_input)} <|audio|> tags but {len(audios)} audios")
        features = [self._features(path) for path, inp in zip(audios, is_input) if inp]
        if len(features) > self.max_audios:
            raise ConversationError("too_long", f"{len(features)} input audios > {self.max_audios} audio slots per row")
        for f, path in zip(features, [p for p, inp in zip(audios, is_input) if inp]):
            if len(f) > self.max_frames:
                raise ConversationError("too_long", f"{path}: {len(f)} feature frames > {self.max_frames} "
                                                    f"(plus.max_audio_frames)")
        output = [k for k, inp in enumerate(is_input) if not inp]
        sub = {"audios": [audios[k] for k in output]}
        if "audio_codes" in record:
            sub["audio_codes"] = [record["audio_codes"][k] for k in output]
        try:
            codes = iter(self.audio_codes.codes_for(sub))
        except ValueError as err:
            raise ConversationError("audio_mismatch", str(err)) from err
        spans = iter(TokenSpan([self.context_id] * (len(f) + NUM_QUERIES)) for f in features)
        items = [next(spans) if inp else next(codes) for inp in is_input]
        return {**self._render(messages, items), "audios": features}

    def _record(self, line):
        import json

        try:
            record = json.loads(line)
            messages = record["messages"]
            if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
                raise TypeError("every message needs a string content")
        except (ValueError, KeyError, TypeError) as err:
            raise ConversationError("bad_record", f"not a JSON object with 'messages' ({err})") from err
        if "audio_codes" in record and len(record["audio_codes"]) != len(record.get("audios") or []):
            raise ConversationError("audio_mismatch", f"{len(record['audio_codes'])} audio_codes lists for "
                                                      f"{len(record.get('audios') or [])} audios")
        return record

    def _features(self, path):
        full = os.path.join(self.data_root, path)
        if not os.path.isfile(full):
            raise MissingAudio(f"audio file not found: {full}")
        try:
            return np.asarray(self.frontend(full), np.float32)
        except AudioLoadError as err:
            raise ConversationError("bad_record", str(err)) from err
