"""Reading audio files of any common format and writing float32 wav files."""

import os
import warnings

import numpy as np

from vita_jax.atomic import atomic_file
from vita_jax.audio.resample import resample_sinc_hann

DEFAULT_RESAMPLER = "sinc_hann"


class AudioLoadError(ValueError):
    """An audio file is missing, unreadable, empty or not finite. The message names the file."""


def load_audio(path, target_sr=16000, resample_method=DEFAULT_RESAMPLER):
    """Load `path` (wav/flac/ogg/mp3...), keep channel 0, resample to `target_sr` (see `resample`).

    Returns a float32 1-D array. Raises AudioLoadError naming the file on any problem.
    """
    import librosa
    import soundfile

    if not os.path.isfile(path):
        raise AudioLoadError(f"audio file not found: {path}")
    try:
        data, sr = soundfile.read(path, dtype="float32", always_2d=True)
        wav = data[:, 0]
    except Exception as sf_err:  # noqa: BLE001 - libsndfile cannot read it (e.g. some mp3): try audioread
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, sr = librosa.load(path, sr=None, mono=False)
            wav = data if data.ndim == 1 else data[0]
        except Exception as err:  # noqa: BLE001 - re-raised with the file name and both causes
            cause = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            raise AudioLoadError(
                f"cannot read audio file {path}: not a readable audio format (soundfile: {sf_err}; audioread: {cause})"
            ) from err
    return check_waveform(resample(np.asarray(wav, np.float32), sr, target_sr, resample_method), name=path)


def resample(wav, orig_sr, target_sr, method=DEFAULT_RESAMPLER):
    """Resample a 1-D float32 signal. method "sinc_hann" (default): torchaudio's `Resample`
    defaults, as the original GLM-4-Voice front end (vita_jax/audio/resample.py); or a librosa
    res_type such as "soxr_hq"."""
    if orig_sr == target_sr:
        return wav
    if method == DEFAULT_RESAMPLER:
        return resample_sinc_hann(wav, orig_sr, target_sr)
    import librosa

    return librosa.resample(wav, orig_sr=orig_sr, target_sr=target_sr, res_type=method).astype(np.float32)


def check_waveform(wav, name="<array>"):
    """Reject empty, non-1-D or non-finite signals with an error naming the source."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise AudioLoadError(f"{name}: expected a 1-D waveform, got shape {wav.shape}")
    if wav.size == 0:
        raise AudioLoadError(f"{name}: the audio signal is empty")
    if not np.all(np.isfinite(wav)):
        raise AudioLoadError(f"{name}: the audio signal contains NaN or inf values")
    return wav


def is_wav_file(path):
    with open(path, "rb") as f:
        header = f.read(12)
    return header[:4] == b"RIFF" and header[8:12] == b"WAVE"


def write_wav(path, wav, sample_rate):
    """Write a mono float32 wav file atomically (temporary name, then rename). An existing file is
    replaced only when it is a wav file (or inside vita_jax.atomic.allow_replacing)."""
    import soundfile

    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    with atomic_file(path, replaceable=is_wav_file) as f:
        soundfile.write(f, wav, sample_rate, format="WAV", subtype="FLOAT")
