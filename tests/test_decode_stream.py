"""Streaming: events arrive per cycle, in order, and add up to what `generate` returns; audio codes
are cut at every end-of-audio id; closing the stream stops the loop."""

import numpy as np

from tests.helpers.decode import MAX_NEW, PROMPTS, decode_model
from vita_jax.decode import AudioChunkEvent, EndEvent, TextEvent, decode

# Stand-ins in the 32-token test vocabulary: ids 16..31 are "audio codes", 15 ends an audio span.
AUDIO = dict(audio_offset=16, num_audio_codes=16, end_of_audio_id=15)


class CharTokenizer:
    """One letter per id; id 0 is the first half of a two-id character: alone at the end it
    decodes to U+FFFD, as an incomplete UTF-8 sequence does."""

    def decode(self, ids, skip_special_tokens=True):
        text = "".join(chr(ord("a") + i % 26) for i in ids if i)
        return text + "\ufffd" if ids and ids[-1] == 0 else text


def test_events_add_up_to_generate():
    model = decode_model()
    options = dict(mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())
    expected = decode(model, PROMPTS, **options)
    events = list(model.stream(PROMPTS, tokenizer=CharTokenizer(), **AUDIO, **options))
    for row in range(len(PROMPTS)):
        mine = [e for e in events if e.row == row]
        tokens = expected.sequences[row, :expected.num_tokens[row]].tolist()
        text = [e for e in mine if isinstance(e, TextEvent)]
        assert [t for e in text for t in e.token_ids] == [t for t in tokens if t < 16]
        assert "".join(e.text for e in text) == CharTokenizer().decode([t for t in tokens if t < 16]).rstrip("\ufffd")
        chunks = [e for e in mine if isinstance(e, AudioChunkEvent)]
        spans, codes = [], []
        for t in tokens:
            if t >= 16:
                codes.append(t - 16)
            elif t == 15:
                spans.append(tuple(codes))
                codes = []
        assert [e.codes for e in chunks] == spans and [e.index for e in chunks] == list(range(len(spans)))
        assert mine[-1] == EndEvent(row, "max_new_tokens", MAX_NEW)


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
