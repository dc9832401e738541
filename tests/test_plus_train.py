"""train.py on VITA-Audio-Plus (the `:tiny_plus` stage variant): user speech as wav paths in the
jsonl, features computed in the data pipeline, the adapter in its own learning-rate group, the
encoder frozen; the loss falls and the export loads with load_plus."""

import json

import jax
import numpy as np
import pytest

from tests.helpers.plus import CMVN, speech
from tests.helpers.train import NUM_AUDIO_CODES, TINY_VOCAB
from vita_jax.audio.wav_io import write_wav
from vita_jax.configs import stage1_alignment
from vita_jax.plus import load_plus
from vita_jax.plus.frontend import num_lfr_rows
from vita_jax.sharding import make_mesh
from vita_jax.train.loop import train
from vita_jax.train.plus_init import initial_plus_params

ASR = "Convert the speech to text.\n<|audio|>"


def write_data(folder):
    for name, seconds, seed in (("a.wav", 0.8, 1), ("b.wav", 1.2, 2)):
        write_wav(str(folder / name), speech(seconds, seed), 16000)
    records = [
        {"messages": [{"role": "user", "content": ASR}, {"role": "assistant", "content": "Good morning."}],
         "audios": ["a.wav"]},
        {"messages": [{"role": "user", "content": "<|audio|>"},
                      {"role": "assistant", "content": "It is sunny.<|audio|>"}],
         "audios": ["b.wav", "out.wav"], "audio_codes": [[], [5, 6, 7, 8, 9, 10, 11, 12]]},
        {"messages": [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."}]},
        {"messages": [{"role": "user", "content": ASR}, {"role": "assistant", "content": "The quick brown fox."}],
         "audios": ["b.wav"]},
    ]
    path = folder / "plus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.mark.slow
def test_train_plus_adapter_learns_with_a_frozen_encoder(tmp_path):
    cfg = stage1_alignment.get_config("tiny_plus")
    cfg.model.vocab_size = TINY_VOCAB + 8  # + <|context_of_audio|>
    cfg.plus.cmvn_file = CMVN
    cfg.optim.lr.backbone = 3e-3
    cfg.data.update(files=write_data(tmp_path), data_root=str(tmp_path), num_audio_codes=NUM_AUDIO_CODES, seq_len=96)
    cfg.train.update(steps=8, global_batch_size=2, log_every=100, workdir=str(tmp_path / "run"), loss_chunk=32)
    cfg.checkpoint.update(every=100, use_async=False)
    cfg.mesh.update(data=1, fsdp=1, tensor=1, devices=1)
    result = train(cfg, progress=False)
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert result.skipped == dict.fromkeys(result.skipped, 0)
    assert np.mean(losses[-2:]) < 0.9 * np.mean(losses[:2]), losses

    trained = load_plus(result.final_dir, progress=False)
    context = trained.tokens.context_of_audio
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    start = initial_plus_params(cfg, context + 1, context, mesh).params
    for name, group_changed in (("audio_encoder", False), ("audio_adapter", True), ("backbone", True)):
        before, after = jax.tree.leaves(jax.device_get(start[name])), jax.tree.leaves(trained.params[name])
        changed = any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(before, after))
        assert changed == group_changed, name
    assert trained.encode(speech(0.5)).shape[0] == num_lfr_rows(8000) + 4  # the export runs: front end, encoder


def test_plus_samples_hold_features_and_placeholders_and_skip_bad_records(tmp_path):
    from tests.helpers.train import tiny_tokenizer
    from vita_jax.data.audio_codes import AudioCodeResolver
    from vita_jax.data.interleave import parse_ratios
    from vita_jax.data.plus_samples import PlusSampleEncoder
    from vita_jax.data.samples import Skip
    from vita_jax.plus.frontend import Frontend

    tok, ids = tiny_tokenizer(tmp_path / "tok")
    tok.add_tokens(["<|context_of_audio|>"], special_tokens=True)
    context = tok.convert_tokens_to_ids("<|context_of_audio|>")
    lines = open(write_data(tmp_path)).read().splitlines()
    frontend = Frontend.from_file(CMVN)

    def encoder(max_frames=64):
        return PlusSampleEncoder(tok, ids, AudioCodeResolver(), parse_ratios("boost"), 96, frontend, context, 2,
                                 max_frames, data_root=str(tmp_path))

    sample = encoder()(("plus.jsonl:2", lines[1]))
    (features,) = sample["audios"]
    np.testing.assert_array_equal(features, frontend(str(tmp_path / "b.wav")))
    placeholders = sample["input_ids"] == context
    assert placeholders.sum() == len(features) + 4 and (sample["labels"][placeholders] == -100).all()
    output_codes = sample["input_ids"] == ids.audio_offset + 5  # the assistant's audio stays codes, learned
    assert output_codes.sum() == 1 and (sample["labels"][output_codes] == ids.audio_offset + 5).all()

    write_wav(str(tmp_path / "nan.wav"), np.full(4000, np.nan, np.float32), 16000)
    user = {"role": "user", "content": ASR}
    answer = {"role": "assistant", "content": "Hi."}
    for record, reason, message in [
        ({"messages": [user, answer], "audios": ["gone.wav"]}, "missing_audio", "gone.wav"),
        ({"messages": [user, answer], "audios": []}, "audio_mismatch", "1 <|audio|> tags but 0 audios"),
        ({"messages": [user, answer], "audios": ["nan.wav"]}, "bad_record", "NaN"),
        ({"messages": [user, user, user, answer], "audios": ["a.wav"] * 3}, "too_long", "3 input audios > 2"),
    ]:
        skip = encoder()(("x:1", json.dumps(record)))
        assert isinstance(skip, Skip) and skip.reason == reason and message in skip.message, skip
    skip = encoder(max_frames=8)(("x:1", lines[0]))  # a.wav: 13 feature frames
    assert isinstance(skip, Skip) and skip.reason == "too_long" and "a.wav" in skip.message
