"""The resampler of the original GLM-4-Voice front end: torchaudio `Resample(orig, new)` with its
defaults (windowed sinc, Hann window, lowpass_filter_width 6, rolloff 0.99), in numpy.
glm4voice-tokenizer-spec.md section 1 gives the kernel; matching it keeps the speech codes the
LLM was trained on (a different high-quality resampler changes a few of them).

    wav_16k = resample_sinc_hann(wav_44k, 44100, 16000)
"""

import math

import numpy as np

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99
STEPS_PER_BLOCK = 4096  # output steps computed at once: bounds the memory of long recordings


def sinc_hann_kernel(orig_sr, new_sr, lowpass_filter_width=LOWPASS_FILTER_WIDTH, rolloff=ROLLOFF):
    """(kernels [n, 2w + o] float32, w) for the rates reduced by their gcd to o -> n."""
    gcd = math.gcd(orig_sr, new_sr)
    o, n = orig_sr // gcd, new_sr // gcd
    base = min(o, n) * rolloff
    width = math.ceil(lowpass_filter_width * o / base)
    taps = np.arange(-width, width + o, dtype=np.float64) / o
    phases = (-np.arange(n) / n).astype(np.float32).astype(np.float64)  # torchaudio forms i/n in float32
    t = np.clip((phases[:, None] + taps[None, :]) * base, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, 1.0, np.sin(t) / t)
    return (sinc * window * (base / o)).astype(np.float32), width


def resample_sinc_hann(wav, orig_sr, new_sr):
    """Resample a 1-D float32 signal from `orig_sr` to `new_sr` (integer rates) as torchaudio does."""
    if int(orig_sr) != orig_sr or int(new_sr) != new_sr or orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive integers, got {orig_sr} -> {new_sr}")
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    wav = np.asarray(wav, np.float32)
    if orig_sr == new_sr:
        return wav
    kernels, width = sinc_hann_kernel(orig_sr, new_sr)
    gcd = math.gcd(orig_sr, new_sr)
    o, n = orig_sr // gcd, new_sr // gcd
    padded = np.pad(wav, (width, width + o))
    taps = kernels.shape[1]
    steps = (len(padded) - taps) // o + 1
    out = np.empty((steps, n), np.float32)
    for start in range(0, steps, STEPS_PER_BLOCK):
        stop = min(start + STEPS_PER_BLOCK, steps)
        frames = np.lib.stride_tricks.as_strided(padded[start * o:], shape=(stop - start, taps),
                                                 strides=(o * padded.strides[0], padded.strides[0]))
        out[start:stop] = frames @ kernels.T
    return out.reshape(-1)[:math.ceil(n * len(wav) / o)]
