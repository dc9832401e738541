"""PyTorch reference of the SenseVoice-Small encoder and the Plus adapter, written from
vita-audio-plus-spec.md sections 2-3 (float32). Parameter names follow the checkpoint
(`embed.weight`, `encoder.encoders0.0.self_attn.linear_q_k_v.weight`, ...;
`audio_projection.mlp.0.weight` for the adapter)."""

import math

import torch
from torch import nn


class SanmLayer(nn.Module):
    def __init__(self, d_in, width, heads, units, kernel):
        super().__init__()
        self.width, self.heads, self.kernel = width, heads, kernel
        self.norm1, self.norm2 = nn.LayerNorm(d_in, eps=1e-5), nn.LayerNorm(width, eps=1e-5)
        self.self_attn = nn.Module()
        self.self_attn.linear_q_k_v = nn.Linear(d_in, 3 * width)
        self.self_attn.fsmn_block = nn.Conv1d(width, width, kernel, groups=width, bias=False)
        self.self_attn.linear_out = nn.Linear(width, width)
        self.feed_forward = nn.Module()
        self.feed_forward.w_1, self.feed_forward.w_2 = nn.Linear(width, units), nn.Linear(units, width)

    def forward(self, x, mask):
        """x [B, L, d_in], mask [B, L] float (1 = real)."""
        y = self.norm1(x)
        q, k, v = self.self_attn.linear_q_k_v(y).split(self.width, dim=-1)
        vm = v * mask[..., None]
        half = (self.kernel - 1) // 2
        f = self.self_attn.fsmn_block(nn.functional.pad(vm.transpose(1, 2), (half, half))).transpose(1, 2)
        fsmn = (f + vm) * mask[..., None]
        b, length, _ = x.shape
        d_k = self.width // self.heads
        qh, kh, vh = (t.view(b, length, self.heads, d_k).transpose(1, 2) for t in (q, k, v))
        scores = (qh / math.sqrt(d_k)) @ kh.transpose(-1, -2)
        pad = (mask == 0)[:, None, None, :]
        att = torch.softmax(scores.masked_fill(pad, float("-inf")), dim=-1).masked_fill(pad, 0.0)
        att = self.self_attn.linear_out((att @ vh).transpose(1, 2).reshape(b, length, self.width))
        sanm = att + fsmn
        x = x + sanm if x.shape[-1] == self.width else sanm
        return x + self.feed_forward.w_2(torch.relu(self.feed_forward.w_1(self.norm2(x))))


class SenseVoiceRef(nn.Module):
    def __init__(self, input_size=560, width=512, heads=4, units=2048, num_blocks=50, tp_blocks=20, kernel=11,
                 query_rows=16):
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(query_rows, input_size)
        self.encoder = nn.Module()
        self.encoder.encoders0 = nn.ModuleList([SanmLayer(input_size, width, heads, units, kernel)])
        self.encoder.encoders = nn.ModuleList([SanmLayer(width, width, heads, units, kernel)
                                               for _ in range(num_blocks - 1)])
        self.encoder.tp_encoders = nn.ModuleList([SanmLayer(width, width, heads, units, kernel)
                                                  for _ in range(tp_blocks)])
        self.encoder.after_norm, self.encoder.tp_norm = nn.LayerNorm(width, eps=1e-5), nn.LayerNorm(width, eps=1e-5)

    def forward(self, features, lengths):
        """features [B, T, 560] zero-padded, lengths [B] -> ([B, T+4, width], lengths + 4)."""
        b = features.shape[0]
        queries = self.embed(torch.tensor([0, 1, 2, 15])).expand(b, -1, -1)
        x = torch.cat([queries, features], dim=1) * math.sqrt(self.width)
        depth, length = x.shape[-1], x.shape[1]
        inv = torch.exp(torch.arange(depth // 2, dtype=torch.float32) * -(math.log(10000.0) / (depth / 2 - 1)))
        scaled = torch.arange(1, length + 1, dtype=torch.float32)[:, None] * inv[None]
        x = x + torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=-1)
        lengths = lengths + 4
        mask = (torch.arange(length)[None] < lengths[:, None]).float()
        for layer in [*self.encoder.encoders0, *self.encoder.encoders]:
            x = layer(x, mask)
        x = self.encoder.after_norm(x)
        for layer in self.encoder.tp_encoders:
            x = layer(x, mask)
        return self.encoder.tp_norm(x), lengths


class AdapterRef(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.pre_proj_layernorm = nn.LayerNorm(512, eps=1e-5)
        self.mlp = nn.Sequential(nn.Linear(512, hidden, bias=False), nn.GELU(), nn.Linear(hidden, hidden, bias=False))

    def forward(self, x):
        return self.mlp(self.pre_proj_layernorm(x))
