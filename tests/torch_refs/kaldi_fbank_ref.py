"""NumPy float64 reference of the Plus front end, written from vita-audio-plus-spec.md section 1:
Kaldi fbank (snip edges, DC removal, pre-emphasis 0.97, Hamming, 512-point power spectrum,
80 Kaldi-mel triangles 20 Hz..8 kHz, log with float32 epsilon floor), LFR 7/6, CMVN."""

import numpy as np


def fbank(wav):
    x = np.asarray(wav, np.float32).astype(np.float64) * 32768
    frame = min(400, len(x))
    count = 1 + (len(x) - frame) // 160
    frames = np.stack([x[160 * f:160 * f + frame] for f in range(count)])
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasized = frames.copy()
    emphasized[:, 1:] -= 0.97 * frames[:, :-1]
    emphasized[:, 0] -= 0.97 * frames[:, 0]
    window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(frame) / (frame - 1))
    n_fft = 1 << (frame - 1).bit_length()
    spectrum = np.fft.rfft(emphasized * window, n_fft)
    power = spectrum.real ** 2 + spectrum.imag ** 2

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    low, high = mel(20.0), mel(8000.0)
    step = (high - low) / 81
    bins = mel(16000.0 / n_fft * np.arange(n_fft // 2))
    weights = np.zeros((n_fft // 2 + 1, 80))
    for b in range(80):
        left, centre, right = low + b * step, low + (b + 1) * step, low + (b + 2) * step
        weights[:-1, b] = np.maximum(0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return np.log(np.maximum(power @ weights, 1.1920929e-07))


def lfr(fbank_rows):
    """Row i = rows c(6i-3) .. c(6i+3) concatenated, c clipping to the valid range (explicit loop)."""
    count = len(fbank_rows)
    out = []
    for i in range(-(-count // 6)):
        out.append(np.concatenate([fbank_rows[min(max(r, 0), count - 1)] for r in range(6 * i - 3, 6 * i + 4)]))
    return np.stack(out)


def features(wav, shift, scale):
    return (lfr(fbank(wav)) + shift) * scale
