"""How user speech enters the LLM's prompt, one class per model family:

  CodeInput        VITA-Audio: speech -> GLM-4-Voice codes -> `<|audio_{code}|>` tokens
                   (the speech tokenizer is needed).
  ContinuousInput  VITA-Audio-Plus: speech -> T + 4 `<|context_of_audio|>` placeholders; the 16 kHz
                   wave is kept and, at prefill, its features go through the SenseVoice encoder and
                   the adapter, whose rows replace the placeholders (no speech tokenizer).

Both: `load(speech, sample_rate)` -> checked 16 kHz wave; `encode(wav)` -> the item a prompt holds
(codes / the wave); `span(item)` -> the ids between `<|begin_of_audio|>` and `<|end_of_audio|>`;
`prompt_inputs(prompt, items)` -> the decoding program's `prompt_inputs` (None for codes).
"""

import os

from vita_jax.data.tokenizer import IM_END, IM_START, VocabIds
from vita_jax.plus.frontend import SAMPLE_RATE, load_wav_file, mono_16k, num_lfr_rows
from vita_jax.plus.sensevoice import NUM_QUERIES


class CodeInput:
    continuous = False

    def __init__(self, speech_tokenizer, ids):
        self.speech_tokenizer, self.ids = speech_tokenizer, ids
        self.sample_rate = speech_tokenizer.feature_config.sampling_rate

    def load(self, speech, sample_rate):
        return self.speech_tokenizer.load(speech, sample_rate)

    def encode(self, wav):
        return self.speech_tokenizer.encode(wav)

    def span(self, codes):
        return [self.ids.audio_offset + int(c) for c in codes]

    def prompt_inputs(self, prompt, items):
        return None


class ContinuousInput:
    continuous = True
    sample_rate = SAMPLE_RATE

    def __init__(self, model):
        self.model = model

    def load(self, speech, sample_rate):
        if isinstance(speech, (str, os.PathLike)):
            return load_wav_file(os.fspath(speech))
        return mono_16k(speech, sample_rate, name="<array>")

    def encode(self, wav):
        return wav  # encoded inside the decoding program, at prefill

    def span(self, wav):
        return [self.model.tokens.context_of_audio] * (num_lfr_rows(len(wav)) + NUM_QUERIES)

    def prompt_inputs(self, prompt, items):
        """Padded features of every audio of `prompt` (in placeholder order), counts checked."""
        return self.model.prompt_inputs([prompt], list(items))


def plus_vocab_ids(text_tokenizer, tokens):
    """VocabIds of a Plus tokenizer: the audio ids as read by string from the checkpoint's files
    (`<|context_of_audio|>` may sit before or after the audio codes)."""
    ids = text_tokenizer.convert_tokens_to_ids
    return VocabIds(im_start=ids(IM_START), im_end=ids(IM_END), begin_of_audio=tokens.begin_of_audio,
                    end_of_audio=tokens.end_of_audio, audio_offset=tokens.audio_0,
                    num_audio_codes=tokens.num_audio_codes, vocab_size=len(text_tokenizer))
