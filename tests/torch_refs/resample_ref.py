"""torchaudio's `Resample(orig, new)` defaults written with torch ops (torchaudio is not installed):
the kernel of `_get_sinc_resample_kernel` (sinc_interp_hann, lowpass_filter_width 6, rolloff 0.99)
applied as `_apply_sinc_resample_kernel` does (pad, strided conv1d, interleave, truncate)."""

import math

import torch


def sinc_hann_kernel(orig, new, lowpass_filter_width=6, rolloff=0.99):
    gcd = math.gcd(orig, new)
    orig, new = orig // gcd, new // gcd
    base_freq = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1)[:, None, None] / new + idx
    t *= base_freq
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    scale = base_freq / orig
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels.to(torch.float32), width


def resample(waveform, orig, new):
    """waveform: 1-D float32 tensor."""
    kernel, width = sinc_hann_kernel(orig, new)
    gcd = math.gcd(orig, new)
    o, n = orig // gcd, new // gcd
    length = waveform.shape[-1]
    padded = torch.nn.functional.pad(waveform[None], (width, width + o))
    out = torch.nn.functional.conv1d(padded[:, None], kernel, stride=o)
    out = out.transpose(1, 2).reshape(1, -1)
    target = int(torch.ceil(torch.as_tensor(n * length / o)).long())
    return out[0, :target]
