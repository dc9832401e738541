"""Offline token -> wav, the command line, and input validation."""

import jax
import numpy as np
import pytest
import soundfile

from tests.torch_refs.decoder_checkpoint import tiny_decoder, tiny_decoder_dir
from vita_jax.cli import speech_decode as decode
from vita_jax.audio.speech_decoder import DecoderInputError

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
CODES = [3, 16383, 0, 511, 9000, 77, 77, 1, 2, 3, 4, 5, 6]


@pytest.fixture(scope="module")
def dec():
    return tiny_decoder()[0]


def test_token2wav_length_range_and_determinism(dec):
    wav = dec.token2wav(CODES)
    assert wav.shape == (256 * dec.mel_frames(len(CODES)),) == (256 * 89,)
    assert wav.dtype == np.float32 and np.isfinite(wav).all() and np.abs(wav).max() <= 0.99
    np.testing.assert_array_equal(wav, dec.token2wav(CODES))
    assert not np.array_equal(wav, dec.token2wav(CODES, key=jax.random.key(7)))


def test_mel2wav_draws_the_source_from_the_key(dec):
    mel = dec.token2mel(CODES)
    a, b = dec.mel2wav(mel, key=jax.random.key(1)), dec.mel2wav(mel[None], key=jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, dec.mel2wav(mel, key=jax.random.key(2)))


@pytest.mark.parametrize("codes,message", [
    ([1, 2, 16384], r"code 16384 at position 2 is outside 0..16383"),
    ([-1, 5], r"code -1 at position 0 is outside 0..16383"),
    ([], r"the code list is empty"),
    ([1.5, 2.0], r"must be integers"),
    ([[1, 2], [3, 4]], r"expected a 1-D list"),
])
def test_bad_codes_are_rejected(dec, codes, message):
    with pytest.raises(DecoderInputError, match=message):
        dec.token2wav(codes)


def test_bad_noise_mel_and_source_shapes_are_rejected(dec):
    with pytest.raises(DecoderInputError, match=r"noise: expected shape \(16, 68\) for 10 codes, got \(16, 67\)"):
        dec.token2mel(list(range(10)), noise=np.zeros((16, 67), np.float32))
    with pytest.raises(DecoderInputError, match=r"mel: expected shape \(16, T>0\)"):
        dec.mel2wav(np.zeros((80, 5), np.float32))
    with pytest.raises(DecoderInputError, match=r"source: expected 1280 samples for 5 frames, got 1000"):
        dec.mel2wav(np.zeros((16, 5), np.float32), source=np.zeros((1, 1000), np.float32))


def test_command_line_writes_a_22050_hz_wav(tmp_path, capsys):
    src, _, _ = tiny_decoder_dir()
    out = tmp_path / "out.wav"
    decode.main(["--decoder-dir", src, "--codes", ",".join(map(str, CODES)), "--out", str(out)])
    wav, sr = soundfile.read(str(out), dtype="float32")
    assert sr == 22050 and wav.shape == (256 * 89,)
    np.testing.assert_array_equal(wav, tiny_decoder()[0].token2wav(CODES))
    codes_file = tmp_path / "codes.txt"
    codes_file.write_text(" ".join(map(str, CODES)) + "\n")
    out2 = tmp_path / "out2.wav"
    decode.main(["--decoder-dir", src, "--codes-file", str(codes_file), "--out", str(out2)])
    np.testing.assert_array_equal(soundfile.read(str(out2), dtype="float32")[0], wav)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        decode.main(["--decoder-dir", src, "--codes", "1,20000", "--out", str(tmp_path / "bad.wav")])
    assert exit_.value.code == 2 and "code 20000 at position 1 is outside" in capsys.readouterr().err
    assert not (tmp_path / "bad.wav").exists()
