"""Tokenizer extension (spec section 1), interleaving (section 3), chat template and labels (sections 2, 3)."""

import pytest

from tests.helpers.train import NUM_AUDIO_CODES, tiny_tokenizer
from vita_jax import vocabulary
from vita_jax.data.chat_template import IGNORE, render
from vita_jax.data.interleave import BALANCE, BOOST, interleave, parse_ratios
from vita_jax.data.tokenizer import TokenizerError, extend_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def test_qwen_sized_vocabulary_gets_the_spec_ids():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocabulary.END_OF_TEXT)}
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(19)]
    vocab.update({s: vocabulary.END_OF_TEXT + i for i, s in enumerate(specials)})
    base = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")))
    base.add_tokens(specials, special_tokens=True)
    assert len(base) == vocabulary.BASE_VOCAB_SIZE
    tok = extend_tokenizer(base)
    ids = tok.convert_tokens_to_ids
    assert [ids(t) for t in vocabulary.EXTRA_SPECIAL_TOKENS] == list(range(151665, 151685))
    assert ids("<|begin_of_audio|>") == vocabulary.BEGIN_OF_AUDIO and ids("<|audio|>") == vocabulary.AUDIO_TOKEN
    assert ids("<|audio_0|>") == vocabulary.AUDIO_OFFSET == 151685 and ids("<|audio_16383|>") == 168068
    assert len(tok) == 168069 and -(-len(tok) // 8) * 8 == vocabulary.PADDED_VOCAB_SIZE
    assert len(extend_tokenizer(tok)) == 168069  # an extended tokenizer is only verified


def test_tiny_tokenizer_ids_follow_the_same_order(tok):
    tokenizer, ids = tok
    base = len(tokenizer) - len(vocabulary.EXTRA_SPECIAL_TOKENS) - NUM_AUDIO_CODES
    assert ids.begin_of_audio == base + 9 and ids.end_of_audio == base + 10
    assert ids.audio_offset == base + 20 and ids.num_audio_codes == NUM_AUDIO_CODES
    assert tokenizer.encode("<|audio_3|><|audio_63|>", add_special_tokens=False) == [ids.audio_offset + 3,
                                                                                      ids.audio_offset + 63]


def test_tokenizer_without_chatml_is_rejected():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    word_level = models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")
    plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(word_level))
    with pytest.raises(TokenizerError, match="lacks <\\|im_start\\|>"):
        extend_tokenizer(plain)


def test_interleave_boost_and_balance():
    text, audio = list(range(1, 12)), list(range(100, 130))  # 11 text, 30 audio tokens
    B, E = -1, -2
    # Boost [1, 10, 4, 10]: text chunks 1,4,4,(2); audio chunks 8,8,8,(6) -> 4 pairs, nothing merged
    assert interleave(text, audio, BOOST, B, E) == (
        [1, B, *range(100, 108), E, 2, 3, 4, 5, B, *range(108, 116), E, 6, 7, 8, 9, B, *range(116, 124), E,
         10, 11, B, *range(124, 130), E])
    # Balance [1,4,3,8,4,10]: text 1,3,4,(3); audio 2,6,8,8,(6) -> n = 4, audio chunks 3.. merged
    out = interleave(text, audio, BALANCE, B, E)
    assert out == [1, B, 100, 101, E, 2, 3, 4, B, *range(102, 108), E, 5, 6, 7, 8, B, *range(108, 116), E,
                   9, 10, 11, B, *range(116, 130), E]
    # more text than audio: trailing text merged into the last text chunk
    assert interleave(list(range(1, 8)), [100, 101], BOOST, B, E) == [1, 2, 3, 4, 5, 6, 7, B, 100, 101, E]


def test_ratio_lists_are_validated():
    assert parse_ratios("balance") == BALANCE and parse_ratios([2, 6]) == (2, 6)
    for bad in ("turbo", [1, 10, 4], [0, 10], [1, 2]):
        with pytest.raises(ValueError):
            parse_ratios(bad)


def test_chat_template_and_labels(tok):
    tokenizer, ids = tok
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Convert the speech to text.\n<|audio|>"},
                {"role": "assistant", "content": "Hello world."}]
    input_ids, labels = render(messages, [[4, 5, 6]], tokenizer, ids, BOOST)
    text = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nConvert the speech to text.\n"
            "<|begin_of_audio|><|audio_4|><|audio_5|><|audio_6|><|end_of_audio|><|im_end|>\n"
            "<|im_start|>assistant\nHello world.<|im_end|>\n")
    assert tokenizer.decode(input_ids) == text
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    start = len(input_ids) - len(tokenizer.encode("Hello world.<|im_end|>\n", add_special_tokens=False))
    assert input_ids[start - len(header):start] == header
    assert labels[:start] == [IGNORE] * start
    assert labels[start:] == input_ids[start:]  # content, <|im_end|> and the trailing newline are learned


def test_assistant_text_and_audio_is_interleaved(tok):
    tokenizer, ids = tok
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello world.<|audio|>"}]
    codes = list(range(20))
    input_ids, labels = render(messages, [codes], tokenizer, ids, BOOST)
    text = tokenizer.encode("Hello world.", add_special_tokens=False)
    want = interleave(text, [ids.audio_offset + c for c in codes], BOOST, ids.begin_of_audio, ids.end_of_audio)
    body = input_ids[-len(want) - 2:-2]
    assert body == want and labels[-len(want) - 2:] == input_ids[-len(want) - 2:]
