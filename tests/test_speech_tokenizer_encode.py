"""End to end: `load_tokenizer(...).encode` equals the reference pipeline (transformers'
feature extractor + the PyTorch encoder reference); batching, checkpoints, bad input, CLI."""

import json
import os

import numpy as np
import pytest
import soundfile

from vita_jax.cli import convert
from tests.helpers.speech_tokenizer import reference_features, speech_pair, tiled
from tests.torch_refs.whisper_vq_ref import random_ref, tiny_hf_config, write_tokenizer_dir
from vita_jax.cli import speech_encode as encode_cli
from vita_jax.audio import load_tokenizer
from vita_jax.audio.features import FeatureConfig, split_segments
from vita_jax.audio.wav_io import AudioLoadError

CFG = tiny_hf_config(layers=2, quantize_position=2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("encode"))
    speech_path, speech, calibration = speech_pair(tmp)
    ref = random_ref(CFG, reference_features([calibration])[0])
    hf_dir = write_tokenizer_dir(os.path.join(tmp, "hf"), CFG, ref)
    tok = load_tokenizer(hf_dir)
    return {"tmp": tmp, "ref": ref, "hf_dir": hf_dir, "tok": tok, "path": speech_path, "speech": speech}


def reference_codes(ref, wav):
    """GLM's extract_speech_token for one utterance: its segments batched, valid ids concatenated."""
    features, mask = reference_features(split_segments(wav, FeatureConfig()), return_tensors="pt")
    _, ids = ref(features, mask)
    valid = mask[:, ::8].bool()
    return [int(i) for row, keep in zip(ids, valid) for i in row[keep]]


def test_encode_file_equals_reference(setup):
    codes = setup["tok"].encode(setup["path"])
    assert len(codes) == -(-len(setup["speech"]) // 1280)
    assert codes == reference_codes(setup["ref"], setup["speech"])
    assert len(set(codes)) > 5


def test_multi_segment_utterance_equals_reference(setup):
    """41.3 s: a full 30 s segment then a short one (padded to 30 s when featurized)."""
    wav = tiled(setup["speech"], 16000 * 41 + 4321)
    tok = setup["tok"]
    codes = tok.encode(wav)
    assert len(codes) == 375 + -(-(len(wav) - 480000) // 1280)
    assert codes == reference_codes(setup["ref"], wav)
    features, mask = reference_features(split_segments(wav, FeatureConfig()), return_tensors="pt")
    kept = [-(-int(m.sum()) // 8) * 8 for m in mask]  # frames of whole codes
    want = np.concatenate([f[:, :k] for f, k in zip(features.numpy(), kept)], axis=1)
    got = tok.features(wav)
    assert got.shape == (128, 8 * len(codes)) == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_array_input_at_another_rate_is_resampled(setup):
    import librosa

    wav_22k = librosa.resample(setup["speech"], orig_sr=16000, target_sr=22050)
    codes = setup["tok"].encode(wav_22k, sample_rate=22050)
    assert len(codes) == -(-len(setup["tok"].load(wav_22k, 22050)) // 1280)


def test_stereo_flac_and_mp3_files(setup):
    """Channel 0 of a stereo file is tokenized; flac is lossless, mp3 decodes to speech."""
    speech = setup["speech"]
    stereo = np.stack([speech, np.random.default_rng(0).uniform(-1, 1, len(speech)).astype(np.float32)], axis=1)
    flac, mp3 = os.path.join(setup["tmp"], "stereo.flac"), os.path.join(setup["tmp"], "stereo.mp3")
    soundfile.write(flac, stereo, 16000, subtype="PCM_24")
    soundfile.write(mp3, stereo, 16000)
    assert setup["tok"].encode(flac) == setup["tok"].encode(soundfile.read(flac, dtype="float32")[0][:, 0])
    assert len(setup["tok"].encode(mp3)) == -(-len(soundfile.read(mp3)[0]) // 1280)


def test_encode_batch_equals_one_by_one(setup):
    tok, speech = setup["tok"], setup["speech"]
    items = [
        setup["path"],
        tiled(speech, 16000 * 41 + 4321),
        speech[:100],
        tiled(speech, 16000 * 7 + 5),
        np.zeros(8000, np.float32),
        speech[: 1280 * 9],
    ]
    batched = tok.encode_batch(items)
    assert batched == [tok.encode(item) for item in items]


def test_converted_checkpoint_gives_the_same_codes(setup):
    out = os.path.join(setup["tmp"], "converted")
    convert.main(["tokenizer-to-jax", "--tokenizer-dir", setup["hf_dir"], "--out", out])
    assert load_tokenizer(out).encode(setup["path"]) == setup["tok"].encode(setup["path"])


def bad_files(tmp):
    """name -> (path, text the error must contain)."""
    text = os.path.join(tmp, "notes.wav")
    with open(text, "w") as f:
        f.write("this is not audio\n" * 50)
    empty = os.path.join(tmp, "empty.wav")
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    nan = os.path.join(tmp, "nan.wav")
    soundfile.write(nan, np.full(4000, np.nan, np.float32), 16000, subtype="FLOAT")
    return {
        "missing": (os.path.join(tmp, "missing.wav"), "not found"),
        "not_audio": (text, "cannot read audio file"),
        "empty": (empty, "empty"),
        "nan": (nan, "NaN"),
    }


@pytest.mark.parametrize("name", ["missing", "not_audio", "empty", "nan"])
def test_bad_file_error_names_the_file(setup, name):
    path, text = bad_files(setup["tmp"])[name]
    with pytest.raises(AudioLoadError) as err:
        setup["tok"].encode(path)
    assert path in str(err.value) and text in str(err.value)


@pytest.mark.parametrize("wav, text", [(np.zeros(0, np.float32), "empty"), (np.full(100, np.nan, np.float32), "NaN")])
def test_bad_array_is_rejected(setup, wav, text):
    with pytest.raises(AudioLoadError, match=text):
        setup["tok"].encode(wav)


def test_batch_with_a_bad_file_reports_it_and_tokenizes_the_rest(setup):
    bad, _ = bad_files(setup["tmp"])["not_audio"]
    reported = []
    items = [setup["path"], bad, setup["path"]]
    codes = setup["tok"].encode_batch(items, on_error=lambda item, err: reported.append(item))
    assert reported == [bad]
    assert codes[1] is None and codes[0] == codes[2] == setup["tok"].encode(setup["path"])
    with pytest.raises(AudioLoadError, match="notes.wav"):
        setup["tok"].encode_batch([setup["path"], bad])


def test_command_line(setup, capsys):
    bad, _ = bad_files(setup["tmp"])["missing"]
    status = encode_cli.main(["--tokenizer-dir", setup["hf_dir"], "--json", setup["path"], bad, setup["path"]])
    captured = capsys.readouterr()
    assert status == 1
    lines = [json.loads(line) for line in captured.out.splitlines()]
    expected = setup["tok"].encode(setup["path"])
    assert lines == [{"file": setup["path"], "codes": expected}] * 2
    assert bad in captured.err and "tokenized 2 of 3 files" in captured.err
    out = os.path.join(setup["tmp"], "codes.tsv")
    assert encode_cli.main(["--tokenizer-dir", setup["hf_dir"], "--output", out, setup["path"]]) == 0
    with open(out) as f:
        assert f.read() == f"{setup['path']}\t{' '.join(map(str, expected))}\n"
