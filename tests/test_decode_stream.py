"""Streaming: events arrive per cycle, in order, and add up to what `generate` returns; audio codes
are cut at every end-of-audio id; closing the stream stops the loop."""

import numpy as np
import pytest

from tests.helpers.decode import MAX_NEW, MODES, PROMPTS, decode_model, reference_decode
from vita_jax.decode import AudioChunkEvent, EndEvent, TextEvent, decode

# Stand-ins in the 32-token test vocabulary: ids 16..31 are "audio codes", 15 ends an audio span.
AUDIO = dict(audio_offset=16, num_audio_codes=16, end_of_audio_id=15)


class CharTokenizer:
    """One letter per id; id 0 is the first half of a two-id character: alone at the end it
    decodes to U+FFFD, as an incomplete UTF-8 sequence does."""

    def decode(self, ids, skip_special_tokens=True):
        text = "".join(chr(ord("a") + i % 26) for i in ids if i)
        return text + "\ufffd" if ids and ids[-1] == 0 else text


def split_tokens(tokens, audio_offset=16, end_of_audio_id=15, **_):
    """(non-audio ids, audio chunks): the codes of each <|end_of_audio|>, then those left over."""
    text, chunks, codes = [], [], []
    for t in tokens:
        if t >= audio_offset:
            codes.append(t - audio_offset)
        else:
            text.append(t)
            if t == end_of_audio_id:
                chunks.append((tuple(codes), True))
                codes = []
    return text, chunks + ([(tuple(codes), False)] if codes else [])


def assert_stream_is(events, row, tokens, tokenizer=None, audio=AUDIO):
    """Row `row`'s events carry `tokens` exactly: text ids and audio codes, nothing lost."""
    mine = [e for e in events if e.row == row]
    text_ids, chunks = split_tokens(tokens, **audio)
    text = [e for e in mine if isinstance(e, TextEvent)]
    assert [t for e in text for t in e.token_ids] == text_ids
    if tokenizer is not None:
        assert "".join(e.text for e in text) == tokenizer.decode(text_ids).rstrip("\ufffd")
    audio = [e for e in mine if isinstance(e, AudioChunkEvent)]
    assert [(e.codes, e.closed) for e in audio] == chunks and [e.index for e in audio] == list(range(len(chunks)))
    assert mine[-1] == EndEvent(row, "max_new_tokens", len(tokens))


def test_events_add_up_to_generate():
    model = decode_model()
    options = dict(mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())
    expected = decode(model, PROMPTS, **options)
    events = list(model.stream(PROMPTS, tokenizer=CharTokenizer(), **AUDIO, **options))
    for row in range(len(PROMPTS)):
        assert_stream_is(events, row, expected.sequences[row, :expected.num_tokens[row]].tolist(), CharTokenizer())


@pytest.mark.parametrize("mode", MODES + ["lossless"], ids=str)
def test_codes_after_the_last_end_of_audio_are_streamed(mode):
    """Issue 9 item 2: the codes generated after the last <|end_of_audio|> used to be dropped. For
    every mode the streamed text ids + audio codes are generate's output token for token, and the
    cache-free reference's. The audio stand-ins are chosen so that a row ends inside an audio span:
    ids >= the largest last token of a row play audio codes, the most frequent other id ends a span."""
    model = decode_model()
    options = dict(mode=mode, max_new_tokens=MAX_NEW, eos_token_ids=())
    expected = decode(model, PROMPTS, **options)
    rows = [expected.sequences[row, :expected.num_tokens[row]].tolist() for row in range(len(PROMPTS))]
    offset = max(tokens[-1] for tokens in rows)
    below = [t for tokens in rows for t in tokens if t < offset]
    assert below, "every generated id would be an audio code: no text left to test"
    audio = dict(audio_offset=offset, num_audio_codes=32 - offset, end_of_audio_id=max(set(below), key=below.count))
    events = list(model.stream(PROMPTS, **audio, **options))
    for row, prompt in enumerate(PROMPTS):
        reference = reference_decode(model, prompt, "vanilla" if mode == "lossless" else mode, MAX_NEW)
        assert rows[row] == reference
        assert_stream_is(events, row, reference, audio=audio)
        if rows[row][-1] >= offset:
            assert [e for e in events if e.row == row and isinstance(e, AudioChunkEvent)][-1].closed is False


def test_eos_ends_a_row_and_closing_stops_the_stream():
    model = decode_model()
    first = decode(model, PROMPTS, mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=()).sequences
    eos = int(first[0, 4])
    events = list(model.stream(PROMPTS, mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=(eos,)))
    assert [e for e in events if isinstance(e, EndEvent)][0] == EndEvent(0, "eos", list(first[0]).index(eos) + 1)
    for row in range(len(PROMPTS)):
        sizes = [len(e.token_ids) for e in events if isinstance(e, TextEvent) and e.row == row]
        assert sizes[0] == 1 and max(sizes) <= 11  # the first token alone, then one Turbo cycle per event
    stream = model.stream(PROMPTS, mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())
    assert isinstance(next(stream), TextEvent)
    stream.close()  # returns once the compiled loop has seen the request and stopped
    assert np.array_equal(first, decode(model, PROMPTS, mode="turbo", max_new_tokens=MAX_NEW,
                                        eos_token_ids=()).sequences)


def test_infer_cli_streams_raw_ids_as_json(tmp_path, capsys):
    import json

    import vita_jax
    from vita_jax.cli import infer
    from vita_jax.configs.model import tiny
    from vita_jax import VitaAudioModel

    config = tiny().replace(num_mctp_modules=2)
    VitaAudioModel.random(config, seed=0).save_pretrained(str(tmp_path / "ckpt"), dtype="float32")
    capsys.readouterr()
    infer.main(["--checkpoint", str(tmp_path / "ckpt"), "--input-ids", "1,2,3", "--mode", "1,2",
                "--max-new-tokens", "7", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mode"] == [1, 2] and report["num_tokens"] == 7 and len(report["token_ids"]) == 7
    assert report["stop_reason"] == "max_new_tokens" and report["compile_s"] > 0 and report["first_token_s"] > 0

    infer.main(["--checkpoint", str(tmp_path / "ckpt"), "--input-ids", "1,2,3", "--mode", "1,2",
                "--max-new-tokens", "7", "--json", "--param-dtype", "bfloat16"])
    bf16 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = vita_jax.load_pretrained(str(tmp_path / "ckpt"), param_dtype="bfloat16", progress=False)
    assert model.config.param_dtype == "bfloat16"
    expected = model.generate([1, 2, 3], mode=[1, 2], max_new_tokens=7, eos_token_ids=())[0]
    assert bf16["token_ids"] == [int(t) for t in expected]


def audio_closing_early(tokens):
    """Audio stand-ins for `tokens` (the largest id and above are codes) whose first
    <|end_of_audio|> comes a few tokens into the answer."""
    below = [t for t in tokens[2:] if t < max(tokens)]
    return dict(audio_offset=max(tokens), num_audio_codes=32 - max(tokens), end_of_audio_id=below[0])


@pytest.mark.parametrize("mode", ["turbo", "boost"])
def test_a_gated_stream_pauses_after_its_first_audio_chunk_and_resumes_unchanged(mode, monkeypatch):
    """With a resume_gate the loop returns to the host once the first chunk is closed and goes on
    only when the gate opens (set here by the consumer on that chunk); the tokens are generate's."""
    import threading

    import vita_jax.decode.decoder as decoder

    model = decode_model()
    prompt = PROMPTS[:1]
    options = dict(mode=mode, max_new_tokens=MAX_NEW, eos_token_ids=())
    tokens = decode(model, prompt, **options).sequences[0].tolist()
    audio = audio_closing_early(tokens)
    gate, resumed = threading.Event(), []
    original = decoder.resume
    monkeypatch.setattr(decoder, "resume", lambda *a, **k: resumed.append(gate.is_set()) or original(*a, **k))
    events = []
    for event in model.stream(prompt, resume_gate=gate, **audio, **options):
        events.append(event)
        if isinstance(event, AudioChunkEvent):
            gate.set()
    assert resumed == [True]  # paused once, resumed only after the gate opened
    assert_stream_is(events, 0, tokens, audio=audio)


def test_closing_a_paused_stream_leaves_no_thread():
    import threading

    model = decode_model()
    tokens = decode(model, PROMPTS[:1], mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=()).sequences[0].tolist()
    audio = audio_closing_early(tokens)
    stream = model.stream(PROMPTS[:1], resume_gate=threading.Event(), mode="turbo", max_new_tokens=MAX_NEW,
                          eos_token_ids=(), **audio)
    assert any(isinstance(event, AudioChunkEvent) for event in stream)  # stops at the first: the loop is paused
    stream.close()  # the gate never opens: closing ends the paused decoding
    assert [t.name for t in threading.enumerate() if t.name == "vita-jax-decode"] == []


def test_lossless_and_batches_cannot_pause():
    import threading

    model = decode_model()
    with pytest.raises(ValueError, match="lossless mode cannot pause"):
        model.stream(PROMPTS[:1], mode="lossless", resume_gate=threading.Event())
    with pytest.raises(ValueError, match="single prompt"):
        model.stream(PROMPTS, mode="turbo", resume_gate=threading.Event())
