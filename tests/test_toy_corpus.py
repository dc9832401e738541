"""The toy corpus generator: deterministic, context-dependent speech, held-out split, clear errors."""

import json

import pytest

from vita_jax.data.toy_corpus import CorpusError, generate, make_lexicon, render_units, speak, write_corpus


def test_generation_is_seeded_and_heldout_is_disjoint():
    first, lexicon = generate(200, seed=3)
    again, _ = generate(200, seed=3)
    heldout, _ = generate(50, seed=3, heldout=True)
    assert first == again
    assert first != generate(200, seed=4)[0]
    assert {t for r in first for t in ("tts", "asr")} and len({len(r["messages"]) for r in first}) >= 2
    answers = lambda records: {r["messages"][-1]["content"] for r in records}  # noqa: E731
    assert not answers(first) & answers(heldout)
    for r in first:
        assert len(r["audios"]) == len(r.get("audio_codes", [])) == sum(m["content"].count("<|audio|>")
                                                                        for m in r["messages"])
        assert all(0 <= c < 64 for codes in r.get("audio_codes", []) for c in codes)


def test_speech_depends_on_the_neighbouring_units():
    # the same unit is rendered differently after / before different neighbours (coarticulation)
    assert render_units([5, 1], 16)[:2] != render_units([5, 2], 16)[:2] or \
        len(render_units([5, 1], 16)) != len(render_units([5, 2], 16))
    assert render_units([1, 5], 16)[-2:] != render_units([2, 5], 16)[-2:]
    lexicon = make_lexicon(["one", "two", "cat"], 16, seed=0)
    one_cat, two_cat = speak("one cat", lexicon, 16), speak("two cat", lexicon, 16)
    cat = speak("cat", lexicon, 16)
    assert one_cat[-len(cat):] != two_cat[-len(cat):] or one_cat[-len(cat):] != cat  # "cat" depends on its context


@pytest.mark.parametrize("kwargs, message", [
    (dict(words=()), "vocabulary is empty"),
    (dict(words=("cat", "cat")), "repeats words"),
    (dict(words=("Cat",), task_weights=(1, 1, 0, 0)), "lower-case letters"),
    (dict(num_samples=0), "num_samples 0 out of range"),
    (dict(num_samples=10 ** 7), "out of range"),
    (dict(min_words=5, max_words=2), "sentence length [5, 2]"),
    (dict(num_units=1), "num_units 1 out of range"),
    (dict(ratios=(1, 2)), "cannot interleave"),
    (dict(ratios=(1, 10, 4)), "cannot interleave"),
    (dict(task_weights=(0, 0, 0, 0)), "task_weights"),
    (dict(words=("cat", "dog")), "chat tasks need the words"),
])
def test_bad_arguments_are_refused_clearly(kwargs, message):
    kwargs = {"num_samples": 10, **kwargs}
    with pytest.raises(CorpusError, match=message.replace("[", r"\[").replace("]", r"\]")):
        generate(**kwargs)


def test_write_corpus_files(tmp_path):
    out = write_corpus(str(tmp_path / "toy"), num_train=30, num_heldout=10)
    lines = (tmp_path / "toy" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 30 and json.loads(lines[0])["messages"]
    assert (tmp_path / "toy" / "tokenizer" / "tokenizer.json").is_file()
    assert out.endswith("toy")
