"""HiFT vocoder (spec section 5): mel [B, T, n_mels] -> 22.05 kHz waveform [B, hop * T].

Stages, each a method of `HiFTGenerator` so tests and streaming can call them apart:
`predict_f0` (conv F0 predictor), `source` (harmonic-plus-noise NSF excitation; its random
initial phases and noise are inputs, drawn by `draw_source_noise` from a PRNG key), and
`decode` (source STFT, upsampling with Snake resblocks, iSTFT head).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.audio.decoder_config import HiftConfig
from vita_jax.audio.decoder_layers import Conv1d, ConvTranspose1d, length_mask
from vita_jax.audio.features import periodic_hann


def _dft_bases(n_fft):
    """Windowed forward basis [n_fft, 2*bins] (real | imag) and windowed inverse bases [bins, n_fft]."""
    bins = n_fft // 2 + 1
    win = periodic_hann(n_fft)
    ang = 2 * np.pi * np.outer(np.arange(n_fft), np.arange(bins)) / n_fft  # [n, k]
    forward = np.concatenate([np.cos(ang), -np.sin(ang)], axis=1) * win[:, None]
    weight = np.full(bins, 2.0)
    weight[0] = 1.0
    weight[-1] = 1.0  # DC and Nyquist appear once; their imaginary parts are ignored (irfft)
    inv_re = (weight[:, None] * np.cos(ang.T)) / n_fft * win[None, :]
    inv_im = (-weight[:, None] * np.sin(ang.T)) / n_fft * win[None, :]
    inv_im[0] = 0.0
    inv_im[-1] = 0.0
    return tuple(jnp.asarray(b, jnp.float32) for b in (forward, inv_re, inv_im))


def _frames(x, n_fft, hop):
    """[B, L] -> [B, F, n_fft] overlapping frames at `hop` (n_fft a multiple of hop)."""
    r = n_fft // hop
    blocks = x.reshape(x.shape[0], -1, hop)
    n_frames = blocks.shape[1] - r + 1
    return jnp.concatenate([blocks[:, q: q + n_frames] for q in range(r)], axis=-1)


def _overlap_add(frames, hop):
    """[B, F, n_fft] -> [B, (F - 1) * hop + n_fft]: sum of the frames placed every `hop` samples."""
    b, n_frames, n_fft = frames.shape
    r = n_fft // hop
    chunks = frames.reshape(b, n_frames, r, hop)
    out = sum(jnp.pad(chunks[:, :, q], ((0, 0), (q, r - 1 - q), (0, 0))) for q in range(r))
    return out.reshape(b, (n_frames + r - 1) * hop)


def stft(x, n_fft, hop, n_valid=None):
    """torch.stft(center=True, reflect pad, periodic Hann, onesided) -> [B, F, 2*bins] (real | imag).

    `n_valid` (may be traced): the signal is x[:, :n_valid]; reflection happens at that end and
    frames past its last one (n_valid // hop + 1 frames) are zero.
    """
    pad, length = n_fft // 2, x.shape[1]
    n_valid = length if n_valid is None else n_valid
    idx = jnp.arange(length + 2 * pad) - pad
    idx = jnp.abs(idx)
    idx = jnp.where(idx >= n_valid, 2 * (n_valid - 1) - idx, idx)
    forward, _, _ = _dft_bases(n_fft)
    spec = _frames(jnp.take(x, jnp.clip(idx, 0, length - 1), axis=1), n_fft, hop) @ forward
    return spec * (jnp.arange(spec.shape[1]) < n_valid // hop + 1)[None, :, None]


def istft(mag, phase, n_fft, hop, n_frames=None):
    """torch.istft(center=True) of mag*exp(i*phase), both [B, F, bins] -> [B, hop*(F-1)].

    `n_frames` (may be traced): only the first frames are the signal; the output past
    hop * (n_frames - 1) samples is zero.
    """
    n_frames = mag.shape[1] if n_frames is None else n_frames
    frame_valid = (jnp.arange(mag.shape[1]) < n_frames)[None, :, None]
    mag = jnp.where(frame_valid, jnp.minimum(mag, 100.0), 0.0)
    _, inv_re, inv_im = _dft_bases(n_fft)
    frames = (mag * jnp.cos(phase)) @ inv_re + (mag * jnp.sin(phase)) @ inv_im  # windowed frames
    win_sq = jnp.asarray(periodic_hann(n_fft) ** 2, jnp.float32)
    env = _overlap_add(frame_valid.astype(jnp.float32) * win_sq, hop)[0:1]
    out = _overlap_add(frames, hop)
    start, length = n_fft // 2, hop * (mag.shape[1] - 1)
    out, env = out[:, start: start + length], env[:, start: start + length]
    return jnp.where(env > 1e-11, out / jnp.where(env > 1e-11, env, 1.0), 0.0)


# sin(r) = r + r^3 (c0 + c1 r^2 + c2 r^4 + c3 r^6) on [-pi/2, pi/2]: a least-squares fit of the
# relative error (at most 6e-9 in float64, below float32 rounding).
_SIN_COEFFS = (-0.16666659712791443, 0.00833306647837162, -0.00019809603691101074, 2.6057823561131954e-06)
# pi split in three (Cody-Waite) so that k * part is exact: r = x - k pi loses no accuracy for
# |x| <= SIN_SQUARED_LIMIT; beyond it `snake` falls back to jnp.sin.
_PI_PARTS = (3.140625, 9.67502593994140625e-4, 1.509957990978376432e-7)
SIN_SQUARED_LIMIT = 8192.0


def sin_squared(x):
    """sin(x)^2 for |x| <= SIN_SQUARED_LIMIT, within 2.5e-7 of the exact value (jnp.sin: 9e-8).

    XLA's CPU sin costs ~6 ns per element on 2 cores, 3-4x a memory pass: the Snake activations
    of HiFT (24 of them over [hop * T / 4, 128] at the last stage) took ~1.6 s of the 6.9 s of a
    20 s vocoding. This one reduces x to r in [-pi/2, pi/2] (sin^2 has period pi, so no sign to
    track) and evaluates a degree-9 odd polynomial: ~22 ms for 14 M elements against ~80 ms.
    """
    k = jnp.round(x * jnp.float32(1 / np.pi))
    r = x
    for part in _PI_PARTS:
        r = r - k * jnp.float32(part)
    r2 = r * r
    c0, c1, c2, c3 = (jnp.float32(c) for c in _SIN_COEFFS)
    sin_r = r + r * r2 * (c0 + r2 * (c1 + r2 * (c2 + r2 * c3)))
    return sin_r * sin_r


def snake(x, alpha):
    """x + sin(alpha x)^2 / alpha (`Snake` of the original, alpha per channel)."""
    def using(sin2):  # the whole expression in each branch, so it stays one fused pass
        return lambda x: x + (1.0 / (alpha + 1e-9)) * sin2(x * alpha)

    fast = jnp.max(jnp.abs(x * alpha)) <= SIN_SQUARED_LIMIT
    return jax.lax.cond(fast, using(sin_squared), using(lambda a: jnp.square(jnp.sin(a))), x)


class Snake(nn.Module):
    @nn.compact
    def __call__(self, x):
        return snake(x, self.param("alpha", nn.initializers.ones, (x.shape[-1],)))


class ResBlock(nn.Module):
    """Snake -> dilated WN conv -> Snake -> WN conv, residual, once per dilation.

    `mask` zeroes the positions past the valid length after every conv, so a padded buffer
    behaves like the unpadded sequence (whose convs see zeros there)."""

    channels: int
    kernel_size: int
    dilations: tuple

    @nn.compact
    def __call__(self, x, mask):
        k = self.kernel_size
        for i, d in enumerate(self.dilations):
            y = Snake(name=f"activations1.{i}")(x)
            y = Conv1d(self.channels, k, padding=d * (k - 1) // 2, dilation=d, weight_norm=True,
                       name=f"convs1.{i}")(y) * mask
            y = Snake(name=f"activations2.{i}")(y)
            y = Conv1d(self.channels, k, padding=(k - 1) // 2, weight_norm=True, name=f"convs2.{i}")(y) * mask
            x = x + y
        return x


def draw_source_noise(key, cfg: HiftConfig, n_samples, batch=1):
    """Random initial phases [B, H] (U(-pi, pi), harmonic 0 at 0) and unit normal noise [B, L, H]."""
    h = cfg.nb_harmonics + 1
    k_phase, k_noise = jax.random.split(key)
    phase = jax.random.uniform(k_phase, (batch, h), jnp.float32, -np.pi, np.pi).at[:, 0].set(0.0)
    return phase, jax.random.normal(k_noise, (batch, n_samples, h), jnp.float32)


class HiFTGenerator(nn.Module):
    """Every method takes an optional `n_frames` (may be traced): the valid mel frames of a
    zero-padded buffer. Outputs past the valid length are then zero (wav, F0 irrelevant)."""

    cfg: HiftConfig

    def setup(self):
        cfg = self.cfg
        cond = cfg.f0_cond_channels
        self.condnet = [Conv1d(cond, 3, padding=1, weight_norm=True, name=f"f0_predictor.condnet.{2 * i}")
                        for i in range(5)]
        self.classifier = nn.Dense(1, name="f0_predictor.classifier")
        self.l_linear = nn.Dense(1, name="m_source.l_linear")
        self.conv_pre = Conv1d(cfg.base_channels, 7, padding=3, weight_norm=True, name="conv_pre")
        ups, downs, src_blocks, blocks = [], [], [], []
        # cumulative downsampling of the source STFT to each stage's rate, last stage first
        down_rates = np.cumprod([1, *cfg.upsample_rates[::-1][:-1]])[::-1]
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            ch = cfg.base_channels // 2 ** (i + 1)
            ups.append(ConvTranspose1d(ch, k, stride=u, padding=(k - u) // 2, weight_norm=True, name=f"ups.{i}"))
            d = int(down_rates[i])
            downs.append(Conv1d(ch, 2 * d, stride=d, padding=d // 2, name=f"source_downs.{i}") if d > 1
                         else Conv1d(ch, 1, name=f"source_downs.{i}"))
            src_blocks.append(ResBlock(ch, cfg.source_resblock_kernel_sizes[i], cfg.source_resblock_dilation_sizes[i],
                                       name=f"source_resblocks.{i}"))
            for j, (rk, rd) in enumerate(zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)):
                blocks.append(ResBlock(ch, rk, rd, name=f"resblocks.{i * len(cfg.resblock_kernel_sizes) + j}"))
        self.ups, self.source_downs, self.source_resblocks, self.resblocks = ups, downs, src_blocks, blocks
        self.conv_post = Conv1d(cfg.n_fft + 2, 7, padding=3, weight_norm=True, name="conv_post")

    def predict_f0(self, mel, n_frames=None):
        """mel [B, T, n_mels] -> F0 [B, T] (Hz, non-negative)."""
        mask = length_mask(mel.shape[1], mel.shape[1] if n_frames is None else n_frames)
        y = mel * mask
        for conv in self.condnet:
            y = jax.nn.elu(conv(y)) * mask
        return jnp.abs(self.classifier(y)[..., 0])

    def source(self, f0, phase, noise):
        """NSF excitation [B, hop*T] from F0 [B, T], initial phases [B, H] and unit noise [B, hop*T, H]."""
        cfg = self.cfg
        f0u = jnp.repeat(f0, cfg.hop_samples, axis=1)[..., None]  # [B, L, 1]
        harmonics = jnp.arange(1, cfg.nb_harmonics + 2, dtype=jnp.float32)
        theta = 2 * np.pi * jnp.mod(jnp.cumsum(f0u * harmonics / cfg.sampling_rate, axis=1), 1.0)
        sine = cfg.nsf_alpha * jnp.sin(theta + phase[:, None, :])
        uv = (f0u > cfg.nsf_voiced_threshold).astype(jnp.float32)
        noise_amp = uv * cfg.nsf_sigma + (1 - uv) * cfg.nsf_alpha / 3
        excitation = sine * uv + noise_amp * noise
        return jnp.tanh(self.l_linear(excitation))[..., 0]

    def decode(self, mel, source, n_frames=None):
        """mel [B, T, n_mels] and source [B, hop*T] -> waveform [B, hop*T] in [-audio_limit, audio_limit]."""
        cfg = self.cfg
        t = mel.shape[1]
        n_frames = t if n_frames is None else n_frames
        s_stft = stft(source, cfg.n_fft, cfg.hop_len, n_frames * cfg.hop_samples)  # [B, hop*T/hop_len + 1, n_fft + 2]
        frame_mask = length_mask(t, n_frames)
        x = self.conv_pre(mel * frame_mask) * frame_mask
        n_k, n_up, rate = len(cfg.resblock_kernel_sizes), len(self.ups), 1
        for i in range(n_up):
            rate *= cfg.upsample_rates[i]
            x = self.ups[i](jax.nn.leaky_relu(x, cfg.lrelu_slope))
            n_valid = n_frames * rate
            if i == n_up - 1:
                x = jnp.concatenate([x[:, 1:2], x], axis=1)  # ReflectionPad1d((1, 0))
                n_valid = n_valid + 1
            mask = length_mask(x.shape[1], n_valid)
            x = x * mask + self.source_resblocks[i](self.source_downs[i](s_stft) * mask, mask)
            x = sum(self.resblocks[i * n_k + j](x, mask) for j in range(n_k)) / n_k
        x = self.conv_post(jax.nn.leaky_relu(x, 0.01))
        bins = cfg.n_fft // 2 + 1
        wav = istft(jnp.exp(x[..., :bins]), jnp.sin(x[..., bins:]), cfg.n_fft, cfg.hop_len, n_valid)
        return jnp.clip(wav, -cfg.audio_limit, cfg.audio_limit)

    def __call__(self, mel, phase, noise, cache_source=None, n_frames=None):
        """Full inference: returns (waveform [B, hop*T], source [B, hop*T]); the first samples of the
        source are replaced by `cache_source` [B, C] when given (streaming)."""
        s = self.source(self.predict_f0(mel, n_frames), phase, noise)
        if cache_source is not None and cache_source.shape[1]:
            s = s.at[:, : cache_source.shape[1]].set(cache_source)
        return self.decode(mel, s, n_frames), s
