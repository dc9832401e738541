"""ChatML rendering of a conversation into token ids and labels (spec sections 2 and 3).

`<|im_start|>{role}\n{content}<|im_end|>\n` per message. `<|audio|>` tags in a content take the
conversation's audio code lists in order and become `<|begin_of_audio|>` + audio tokens +
`<|end_of_audio|>`; an assistant turn holding text and one audio is interleaved by the ratio list.
Labels: -100 on system/user turns and on the `<|im_start|>assistant\n` header; the assistant
content, its `<|im_end|>` and the trailing `\n` are learned (label = the token itself).
"""

from vita_jax.data.interleave import interleave

AUDIO_TAG = "<|audio|>"
IGNORE = -100
ROLES = ("system", "user", "assistant")


class ConversationError(ValueError):
    """A malformed conversation; `reason` is a short counter key (e.g. "audio_mismatch")."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def count_audio_tags(messages):
    return sum(m["content"].count(AUDIO_TAG) for m in messages)


def render(messages, audio_codes, tokenizer, ids, ratios):
    """(input_ids, labels) as lists of ints. `audio_codes`: one list of codes per `<|audio|>` tag."""
    text_ids = _text_encoder(tokenizer)
    newline = text_ids("\n")
    codes = iter(audio_codes)
    input_ids, labels = [], []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise ConversationError("bad_message", f"message {i}: needs role in {ROLES} and string content, "
                                                   f"got role={role!r} content type {type(content).__name__}")
        header = [ids.im_start] + text_ids(role) + newline
        if role == "assistant":
            if not content.strip():
                raise ConversationError("empty_assistant", f"message {i}: empty assistant turn")
            body = _assistant_body(content, codes, text_ids, ids, ratios)
        else:
            body = _content_ids(content, codes, text_ids, ids)
        tail = [ids.im_end] + newline
        learned = role == "assistant"
        input_ids += header + body + tail
        labels += [IGNORE] * len(header) + ([*body, *tail] if learned else [IGNORE] * (len(body) + len(tail)))
    return input_ids, labels


def _text_encoder(tokenizer):
    return lambda text: tokenizer.encode(text, add_special_tokens=False) if text else []


class TokenSpan(tuple):
    """Ready token ids of one audio (VITA-Audio-Plus: its `<|context_of_audio|>` placeholders), used
    as they are instead of audio codes."""


def _audio_ids(codes, ids):
    if isinstance(codes, TokenSpan):
        return list(codes)
    return [ids.audio_offset + int(c) for c in codes]


def _content_ids(content, codes, text_ids, ids):
    """Text with every `<|audio|>` replaced by its bracketed audio tokens."""
    parts = content.split(AUDIO_TAG)
    out = text_ids(parts[0])
    for part in parts[1:]:
        out += [ids.begin_of_audio] + _audio_ids(next(codes), ids) + [ids.end_of_audio] + text_ids(part)
    return out


def _assistant_body(content, codes, text_ids, ids, ratios):
    """Text + one audio: interleaved; text only, audio only or several audios: left as written."""
    if content.count(AUDIO_TAG) != 1:
        return _content_ids(content, codes, text_ids, ids)
    text = text_ids(content.replace(AUDIO_TAG, ""))
    audio = _audio_ids(next(codes), ids)
    if not text or not audio:
        return text + [ids.begin_of_audio] + audio + [ids.end_of_audio]
    return interleave(text, audio, ratios, ids.begin_of_audio, ids.end_of_audio)
