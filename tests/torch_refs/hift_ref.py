"""PyTorch reference of the HiFT vocoder, written from the spec (section 5).

Parameter names reproduce the original `hift.pt` keys (hook-style weight norm:
`weight_g`/`weight_v`), so a hift.pt loads into `HiFTRef` with strict=True. The NSF source
takes its random initial phases and noise as inputs so results are reproducible.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import weight_norm


class SnakeRef(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.alpha = nn.Parameter(1.0 + 0.3 * torch.rand(ch))

    def forward(self, x):
        a = self.alpha.unsqueeze(0).unsqueeze(-1)
        return x + (1.0 / (a + 1e-9)) * torch.pow(torch.sin(x * a), 2)


class ResBlockRef(nn.Module):
    def __init__(self, ch, k, dilations):
        super().__init__()
        self.convs1 = nn.ModuleList(
            [weight_norm(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=d * (k - 1) // 2)) for d in dilations])
        self.convs2 = nn.ModuleList([weight_norm(nn.Conv1d(ch, ch, k, 1, padding=(k - 1) // 2)) for _ in dilations])
        self.activations1 = nn.ModuleList([SnakeRef(ch) for _ in dilations])
        self.activations2 = nn.ModuleList([SnakeRef(ch) for _ in dilations])

    def forward(self, x):
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations1, self.activations2):
            x = x + c2(a2(c1(a1(x))))
        return x


class F0PredictorRef(nn.Module):
    def __init__(self, cin, cond):
        super().__init__()
        layers = []
        for i in range(5):
            layers += [weight_norm(nn.Conv1d(cin if i == 0 else cond, cond, 3, padding=1)), nn.ELU()]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(cond, 1)

    def forward(self, mel):  # (B, C, T) -> (B, T)
        return torch.abs(self.classifier(self.condnet(mel).transpose(1, 2)).squeeze(-1))


class SourceRef(nn.Module):
    def __init__(self, hc):
        super().__init__()
        self.hc = hc
        self.l_linear = nn.Linear(hc.nb_harmonics + 1, 1)

    def forward(self, f0u, phase, noise):
        """f0u (B, 1, L); phase (B, H); noise (B, H, L) unit normal -> (B, 1, L)."""
        hc = self.hc
        fmat = torch.cat([f0u * (i + 1) / hc.sampling_rate for i in range(hc.nb_harmonics + 1)], dim=1)
        theta = 2 * np.pi * (torch.cumsum(fmat, dim=-1) % 1)
        sine = hc.nsf_alpha * torch.sin(theta + phase.unsqueeze(-1))
        uv = (f0u > hc.nsf_voiced_threshold).float()
        amp = uv * hc.nsf_sigma + (1 - uv) * hc.nsf_alpha / 3
        e = sine * uv + amp * noise
        return torch.tanh(self.l_linear(e.transpose(1, 2))).transpose(1, 2)


class HiFTRef(nn.Module):
    def __init__(self, hc):
        super().__init__()
        self.hc = hc
        self.m_source = SourceRef(hc)
        self.conv_pre = weight_norm(nn.Conv1d(hc.in_channels, hc.base_channels, 7, 1, padding=3))
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(hc.upsample_rates, hc.upsample_kernel_sizes)):
            self.ups.append(weight_norm(nn.ConvTranspose1d(hc.base_channels // 2 ** i, hc.base_channels // 2 ** (i + 1),
                                                           k, u, padding=(k - u) // 2)))
        down = [1] + list(hc.upsample_rates[::-1][:-1])
        cum = np.cumprod(down)
        self.source_downs, self.source_resblocks = nn.ModuleList(), nn.ModuleList()
        kernels, dilations = hc.source_resblock_kernel_sizes, hc.source_resblock_dilation_sizes
        for i, (u, k, d) in enumerate(zip(cum[::-1], kernels, dilations)):
            ch = hc.base_channels // 2 ** (i + 1)
            u = int(u)
            self.source_downs.append(nn.Conv1d(hc.n_fft + 2, ch, 1, 1) if u == 1
                                     else nn.Conv1d(hc.n_fft + 2, ch, u * 2, u, padding=u // 2))
            self.source_resblocks.append(ResBlockRef(ch, k, d))
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = hc.base_channels // 2 ** (i + 1)
            for k, d in zip(hc.resblock_kernel_sizes, hc.resblock_dilation_sizes):
                self.resblocks.append(ResBlockRef(ch, k, d))
        self.conv_post = weight_norm(nn.Conv1d(ch, hc.n_fft + 2, 7, 1, padding=3))
        self.f0_predictor = F0PredictorRef(hc.in_channels, hc.f0_cond_channels)
        self.register_buffer("window", torch.hann_window(hc.n_fft), persistent=False)

    def source(self, mel, phase, noise):
        f0 = self.f0_predictor(mel)
        f0u = torch.repeat_interleave(f0.unsqueeze(1), self.hc.hop_samples, dim=-1)
        return self.m_source(f0u, phase, noise)

    def decode(self, mel, s):
        hc = self.hc
        spec = torch.stft(s.squeeze(1), hc.n_fft, hc.hop_len, hc.n_fft, window=self.window, return_complex=True)
        s_stft = torch.cat([spec.real, spec.imag], dim=1)
        x = self.conv_pre(mel)
        nk = len(hc.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, hc.lrelu_slope))
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + self.source_resblocks[i](self.source_downs[i](s_stft))
            x = sum(self.resblocks[i * nk + j](x) for j in range(nk)) / nk
        x = self.conv_post(F.leaky_relu(x))
        bins = hc.n_fft // 2 + 1
        mag, phase = torch.exp(x[:, :bins]), torch.sin(x[:, bins:])
        mag = torch.clip(mag, max=1e2)
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        wav = torch.istft(spec, hc.n_fft, hc.hop_len, hc.n_fft, window=self.window)
        return torch.clamp(wav, -hc.audio_limit, hc.audio_limit)

    def inference(self, mel, phase, noise, cache_source=None):
        s = self.source(mel, phase, noise)
        if cache_source is not None and cache_source.shape[-1]:
            s[:, :, : cache_source.shape[-1]] = cache_source
        return self.decode(mel, s), s
