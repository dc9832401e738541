"""The VITA-Audio-Plus front end: golden features of the original code, a NumPy reference written
from the spec, LFR, CMVN parsing, dither, channel mixing, resampling and bad input."""

import numpy as np
import pytest

from tests.helpers.plus import CMVN, DATA, speech
from tests.torch_refs import kaldi_fbank_ref
from vita_jax.audio.wav_io import AudioLoadError
from vita_jax.plus.frontend import (
    CmvnError, Frontend, kaldi_fbank, num_lfr_rows, read_cmvn, sinc_resample, stack_low_frame_rate,
)


@pytest.fixture(scope="module")
def frontend():
    return Frontend.from_file(CMVN)


def test_features_equal_the_original_front_end(frontend):
    want = np.load(f"{DATA}/features_0.npy")  # FunASR WavFrontend (kaldi-native-fbank), dither 0
    got = frontend(f"{DATA}/speech0.wav")
    assert got.shape == want.shape == (36, 560) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("num_samples", [100, 399, 400, 401, 560, 16000, 34237])
def test_fbank_lfr_cmvn_equal_the_spec_reference(frontend, num_samples):
    wav = speech(num_samples / 16000, seed=num_samples)[:num_samples]
    want = kaldi_fbank_ref.features(wav, *read_cmvn(CMVN))
    got = frontend(wav)
    assert got.shape == want.shape == (num_lfr_rows(num_samples), 560)
    assert np.abs(got - want).max() < 1e-4  # float32 Kaldi vs float64 NumPy, post-CMVN units (measured ~1e-5)


def test_lfr_stacks_clipped_neighbours():
    for frames in (1, 5, 6, 7, 12, 13, 50):
        rows = np.random.default_rng(frames).standard_normal((frames, 80)).astype(np.float32)
        np.testing.assert_array_equal(stack_low_frame_rate(rows), kaldi_fbank_ref.lfr(rows))


def test_cmvn_file_errors(tmp_path):
    with pytest.raises(CmvnError, match="am.mvn"):
        read_cmvn(str(tmp_path / "am.mvn"))
    text = open(CMVN).read()
    (tmp_path / "no_rescale.mvn").write_text(text.replace("<Rescale>", "<Other>"))
    with pytest.raises(CmvnError, match=r"no_rescale.mvn: no <Rescale>"):
        read_cmvn(str(tmp_path / "no_rescale.mvn"))
    lines = text.splitlines()
    shift_line = next(i for i, line in enumerate(lines) if line.startswith("<AddShift>")) + 1
    lines[shift_line] = lines[shift_line].replace(" ]", " 1.0 ]")
    (tmp_path / "long.mvn").write_text("\n".join(lines))
    with pytest.raises(CmvnError, match="561 values, expected 560"):
        read_cmvn(str(tmp_path / "long.mvn"))


def test_dither_is_seeded_and_small(frontend):
    wav = speech(1.0)
    dithered = Frontend(frontend.cmvn_shift, frontend.cmvn_scale, dither=1.0)
    first = dithered(wav, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(first, dithered(wav, rng=np.random.default_rng(3)))
    assert not np.array_equal(first, dithered(wav, rng=np.random.default_rng(4)))
    assert 0 < np.abs(first - frontend(wav)).max() < 0.5
    with pytest.raises(ValueError, match="explicit rng"):
        kaldi_fbank(wav, dither=1.0)


def test_channels_are_averaged_and_rates_resampled(frontend):
    wav = speech(0.8)
    np.testing.assert_allclose(frontend(np.stack([wav, wav])), frontend(wav), atol=1e-6)
    mixed = frontend(np.stack([wav, np.zeros_like(wav)]))
    np.testing.assert_allclose(mixed, frontend(wav * 0.5), atol=1e-5)
    t = np.arange(32000) / 32000
    down = sinc_resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), 32000, 16000)
    exact = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert down.shape == (16000,) and np.abs(down - exact)[200:-200].max() < 1e-3
    assert frontend(np.sin(2 * np.pi * 440 * t).astype(np.float32), sample_rate=32000).shape == (17, 560)


@pytest.mark.parametrize("audio, rate, message", [
    (np.zeros(0, np.float32), 16000, "empty"),
    (np.array([0.1, np.nan] * 400, np.float32), 16000, "NaN"),
    (np.zeros((2, 2, 100), np.float32), 16000, "1-D waveform"),
    (np.zeros(1600, np.float32), 16000.0, "sample_rate must be a positive integer"),
    (np.zeros(1600, np.float32), "16k", "sample_rate must be a positive integer"),
    (np.zeros(1600, np.float32), 0, "sample_rate must be a positive integer"),
    (np.array(["a"] * 10), 16000, "numeric waveform"),
])
def test_bad_audio_is_named(frontend, audio, rate, message):
    with pytest.raises(AudioLoadError, match=message):
        frontend(audio, sample_rate=rate, name="clip.wav")


def test_missing_file_is_named(frontend, tmp_path):
    with pytest.raises(AudioLoadError, match="not found: .*nothing.wav"):
        frontend(str(tmp_path / "nothing.wav"))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(AudioLoadError, match="bad.wav"):
        frontend(str(tmp_path / "bad.wav"))
