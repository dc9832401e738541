"""Whisper log-mel front end in numpy, equal to transformers' `WhisperFeatureExtractor`.

GLM-4-Voice featurizes the 30-second segments of one utterance together
(`padding="longest"`, `pad_to_multiple_of` = samples per token): every segment is
zero-padded to the longest one, rounded up to that multiple, and then
  STFT (Hann, centered, reflect padding, last frame dropped) -> power -> slaney mel
  -> log10(max(., 1e-10)) -> max(., per-segment max - 8) -> (. + 4) / 4.
The per-segment maximum includes the padded frames, so the padding is part of the result.
"""

import dataclasses
import functools

import numpy as np

from vita_jax.round_up import round_up


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Fields of `preprocessor_config.json` that define the features."""

    n_mels: int = 128
    sampling_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    chunk_length: int = 30  # seconds per independently tokenized segment

    @property
    def segment_samples(self):
        return self.chunk_length * self.sampling_rate


@functools.lru_cache(maxsize=8)
def mel_filters(n_mels, sampling_rate, n_fft):
    """Slaney-style mel filter bank [n_mels, n_fft // 2 + 1], built in float64 (Whisper's)."""
    import librosa

    return librosa.filters.mel(
        sr=sampling_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=8000.0, htk=False, norm="slaney", dtype=np.float64
    )


@functools.lru_cache(maxsize=8)
def periodic_hann(n_fft):
    """`torch.hann_window(n_fft)` (periodic) in float64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def log_mel(wav, config):
    """Log-mel [n_mels, len(wav) // hop] of one already padded waveform (clamped and scaled)."""
    n_fft, hop = config.n_fft, config.hop_length
    n_frames = len(wav) // hop
    padded = np.pad(np.asarray(wav, np.float32).astype(np.float64), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    spectrum = np.fft.rfft(frames * periodic_hann(n_fft), axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = mel_filters(config.n_mels, config.sampling_rate, n_fft) @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def split_segments(wav, config):
    """Consecutive `chunk_length`-second pieces of a waveform (the last one may be short)."""
    step = config.segment_samples
    return [wav[start : start + step] for start in range(0, len(wav), step)]


def frame_mask(n_samples, n_frames, hop_length):
    """Valid frames of a padded segment: frame f is real iff its start 160 f < n_samples."""
    return np.arange(n_frames) * hop_length < n_samples


def segment_log_mels(segments, config, pad_multiple):
    """Log-mels of the segments of one utterance, featurized together as the original does.

    Every segment is zero-padded to the longest one (rounded up to `pad_multiple` samples);
    segment k's result keeps its own `round_up(len(seg_k), pad_multiple) // hop` frames.
    """
    common = round_up(max(len(seg) for seg in segments), pad_multiple)
    mels = []
    for seg in segments:
        wav = np.zeros(common, np.float32)
        wav[: len(seg)] = seg
        mels.append(log_mel(wav, config)[:, : round_up(len(seg), pad_multiple) // config.hop_length])
    return mels
