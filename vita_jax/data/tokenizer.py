"""The Qwen2 tokenizer extended with VITA-Audio's special and audio tokens (spec section 1).

    tok = load_extended_tokenizer("path/to/Qwen2.5-7B-Instruct")   # any transformers fast tokenizer dir
    ids = VocabIds.of(tok)                                 # the ids the data pipeline needs

Specials are appended in the spec's order, then `<|audio_0|>` .. `<|audio_{n-1}|>` as ordinary
added tokens. For a real Qwen2.5 tokenizer (151665 tokens) the ids are exactly the spec's
(checked against vita_jax.vocabulary); a tokenizer already extended is only verified.
"""

import dataclasses

from vita_jax import vocabulary

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"


class TokenizerError(ValueError):
    pass


def audio_token(code):
    return f"<|audio_{code}|>"


def extend_tokenizer(tokenizer, num_audio_codes=vocabulary.NUM_AUDIO_CODES, source="tokenizer"):
    """Add the specials and audio tokens in place (unless present); verify their ids are contiguous."""
    for name in (IM_START, IM_END, END_OF_TEXT):
        if tokenizer.convert_tokens_to_ids(name) in (None, tokenizer.unk_token_id):
            raise TokenizerError(f"{source}: base tokenizer lacks {name}; expected a Qwen2 (ChatML) tokenizer")
    vocab = tokenizer.get_vocab()
    if vocabulary.EXTRA_SPECIAL_TOKENS[0] not in vocab:
        base = len(tokenizer)
        tokenizer.add_tokens(list(vocabulary.EXTRA_SPECIAL_TOKENS), special_tokens=True)
        tokenizer.add_tokens([audio_token(i) for i in range(num_audio_codes)])
    else:
        base = vocab[vocabulary.EXTRA_SPECIAL_TOKENS[0]]
    _check_ids(tokenizer, base, num_audio_codes, source)
    return tokenizer


def _check_ids(tokenizer, base, num_audio_codes, source):
    expected = list(vocabulary.EXTRA_SPECIAL_TOKENS) + [audio_token(i) for i in (0, num_audio_codes - 1)]
    offsets = list(range(len(vocabulary.EXTRA_SPECIAL_TOKENS))) + [
        len(vocabulary.EXTRA_SPECIAL_TOKENS), len(vocabulary.EXTRA_SPECIAL_TOKENS) + num_audio_codes - 1]
    for name, offset in zip(expected, offsets):
        got = tokenizer.convert_tokens_to_ids(name)
        if got != base + offset:
            raise TokenizerError(f"{source}: token {name} has id {got}, expected {base + offset}")
    if base == vocabulary.BASE_VOCAB_SIZE and tokenizer.convert_tokens_to_ids(IM_START) != vocabulary.IM_START:
        raise TokenizerError(f"{source}: {IM_START} is not {vocabulary.IM_START}; not a Qwen2.5 tokenizer")


def load_extended_tokenizer(path, num_audio_codes=vocabulary.NUM_AUDIO_CODES):
    """A transformers tokenizer directory, extended for VITA-Audio."""
    from transformers import AutoTokenizer

    return extend_tokenizer(AutoTokenizer.from_pretrained(path), num_audio_codes, source=path)


@dataclasses.dataclass(frozen=True)
class VocabIds:
    """Token ids used to build training sequences."""

    im_start: int
    im_end: int
    begin_of_audio: int
    end_of_audio: int
    audio_offset: int  # id of <|audio_0|>
    num_audio_codes: int
    vocab_size: int  # len(tokenizer): the model's vocab_size must be at least this

    @classmethod
    def of(cls, tokenizer):
        ids = tokenizer.convert_tokens_to_ids
        audio_offset = ids(audio_token(0))
        return cls(im_start=ids(IM_START), im_end=ids(IM_END), begin_of_audio=ids("<|begin_of_audio|>"),
                   end_of_audio=ids("<|end_of_audio|>"), audio_offset=audio_offset,
                   num_audio_codes=len(tokenizer) - audio_offset, vocab_size=len(tokenizer))

    def is_audio(self, token):
        """Whether `token` (an id, or elementwise an int array) is one of the `<|audio_k|>` ids."""
        return (token >= self.audio_offset) & (token < self.audio_offset + self.num_audio_codes)
