"""The prompts of the release's tasks (spec section 10) as token ids.

ChatML: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, `<|im_start|>assistant\n` as the
generation prompt. Each `<|audio|>` in a content becomes `<|begin_of_audio|>`, the audio codes'
tokens `<|audio_{code}|>` and `<|end_of_audio|>`. The text is tokenized as the release tokenizes
the whole rendered string: the tokenizer splits it at special tokens first, so the text between
two specials is encoded as one piece (`encode` of such pieces here gives the same ids).
"""

from vita_jax.data.chat_template import AUDIO_TAG

CHAT_SYSTEM = "Your Name: Luke\nYour Gender: male\n\nRespond in a text-audio interleaved manner."
ASR_REQUEST = "Convert the speech to text.\n" + AUDIO_TAG
TTS_REQUEST = "Convert the text to speech.\n"
VOICE_SYSTEM = "Your Voice: " + AUDIO_TAG + "\n"


def spoken_chat_content(text=None, speech=False):
    """User content of a chat turn: the text, then (for speech) "\\n<|audio|>" (the release sends an
    empty message then the audio: "\\n<|audio|>")."""
    if text is None and not speech:
        raise ValueError("a chat turn needs speech, text or both")
    return (text or "") + ("\n" + AUDIO_TAG if speech else "")


class PromptBuilder:
    """Token ids of ChatML messages for a VITA-Audio tokenizer (already extended, see
    vita_jax.data.tokenizer) whose `<|audio_0|>` has id `ids.audio_offset`. `audio_span(item)`: the
    ids of one audio between `<|begin_of_audio|>` and `<|end_of_audio|>` (the speech input's `span`,
    pipeline/speech_input.py: `<|audio_{code}|>` per code, or VITA-Audio-Plus placeholders)."""

    def __init__(self, tokenizer, ids, audio_span):
        self.tokenizer, self.ids = tokenizer, ids
        self.audio_span = audio_span

    def encode(self, text):
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def message(self, role, content, audios=()):
        """Ids of one message; the k-th `<|audio|>` of `content` takes `audio_span(audios[k])`."""
        pieces = content.split(AUDIO_TAG)
        if len(pieces) - 1 != len(audios):
            raise ValueError(f"{role} message has {len(pieces) - 1} {AUDIO_TAG} tags but {len(audios)} audio inputs")
        ids, text = [], f"<|im_start|>{role}\n{pieces[0]}"
        for audio, piece in zip(audios, pieces[1:]):
            ids += self.encode(text + "<|begin_of_audio|>") + self.audio_span(audio)
            text = "<|end_of_audio|>" + piece
        return ids + self.encode(text + "<|im_end|>\n")

    def generation_prompt(self):
        return self.encode("<|im_start|>assistant\n")

    def assistant_turn(self, generated, eos_ids):
        """A finished answer as a history message: header, the generated ids without a final eos
        id, `<|im_end|>\\n`."""
        body = list(generated)
        if body and body[-1] in eos_ids:
            body.pop()
        return self.generation_prompt() + body + self.encode("<|im_end|>\n")
