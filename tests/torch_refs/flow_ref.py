"""PyTorch reference of the GLM-4-Voice flow model, written from the spec (sections 3-4).

Module and parameter names reproduce the original state-dict keys, so `flow.pt` files load
into `FlowRef` with strict=True. Layout (B, C, T) like the original.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class RelPositionAttentionRef(nn.Module):
    def __init__(self, heads, dim):
        super().__init__()
        self.h, self.d_k = heads, dim // heads
        self.linear_q, self.linear_k, self.linear_v, self.linear_out = (nn.Linear(dim, dim) for _ in range(4))
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.randn(heads, self.d_k) * 0.1)
        self.pos_bias_v = nn.Parameter(torch.randn(heads, self.d_k) * 0.1)

    def forward(self, x, pos_emb, allowed):
        b, n, _ = x.shape
        q = self.linear_q(x).view(b, n, self.h, self.d_k)
        k = self.linear_k(x).view(b, n, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, n, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(1, -1, self.h, self.d_k).transpose(1, 2)
        ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        bd = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))  # (b, h, n, 2n-1)
        # rel_shift: keep, for query i, the rows of relative position i - j
        zero_pad = torch.zeros((b, self.h, n, 1), dtype=bd.dtype)
        padded = torch.cat([zero_pad, bd], dim=-1).view(b, self.h, 2 * n, n)
        bd = padded[:, :, 1:].view_as(bd)[:, :, :, : bd.size(-1) // 2 + 1]
        scores = (ac + bd) / math.sqrt(self.d_k)
        scores = scores.masked_fill(~allowed, -float("inf"))
        attn = torch.softmax(scores, dim=-1).masked_fill(~allowed, 0.0)
        return self.linear_out(torch.matmul(attn, v).transpose(1, 2).reshape(b, n, -1))


class FeedForwardRef(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)

    def forward(self, x):
        return self.w_2(F.silu(self.w_1(x)))


class ConformerLayerRef(nn.Module):
    def __init__(self, heads, dim, ffn):
        super().__init__()
        self.self_attn = RelPositionAttentionRef(heads, dim)
        self.feed_forward = FeedForwardRef(dim, ffn)
        self.norm_ff, self.norm_mha = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x, pos_emb, allowed):
        x = x + self.self_attn(self.norm_mha(x), pos_emb, allowed)
        return x + self.feed_forward(self.norm_ff(x))


class EmbedRef(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim, eps=1e-5))


class EncoderRef(nn.Module):
    def __init__(self, dim, heads, ffn, layers, block_size):
        super().__init__()
        self.dim, self.block_size = dim, block_size
        self.embed = EmbedRef(dim)
        self.encoders = nn.ModuleList([ConformerLayerRef(heads, dim, ffn) for _ in range(layers)])
        self.after_norm = nn.LayerNorm(dim, eps=1e-5)

    def pos_table(self, n):
        # max_len table as the reference, middle slice
        max_len = 64 if n <= 64 else n
        pos = torch.arange(0, max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.dim, 2, dtype=torch.float32) * -(math.log(10000.0) / self.dim))
        pe_pos, pe_neg = torch.zeros(max_len, self.dim), torch.zeros(max_len, self.dim)
        pe_pos[:, 0::2], pe_pos[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        pe_neg[:, 0::2], pe_neg[:, 1::2] = torch.sin(-pos * div), torch.cos(-pos * div)
        pe = torch.cat([torch.flip(pe_pos, [0]), pe_neg[1:]], dim=0)
        center = pe.size(0) // 2
        return pe[center - n + 1: center + n].unsqueeze(0)

    def forward(self, x, valid):
        n = x.size(1)
        x = self.embed.out(x) * math.sqrt(self.dim)
        i = torch.arange(n).unsqueeze(1)
        j = torch.arange(n).unsqueeze(0)
        allowed = ((j < (i // self.block_size + 1) * self.block_size).unsqueeze(0) & valid.unsqueeze(1)).unsqueeze(1)
        pos_emb = self.pos_table(n)
        for layer in self.encoders:
            x = layer(x, pos_emb, allowed)
        return self.after_norm(x)


class LengthRegulatorRef(nn.Module):
    def __init__(self, channels, blocks):
        super().__init__()
        layers = []
        for _ in range(blocks):
            layers += [nn.Conv1d(channels, channels, 3, 1, 1), nn.GroupNorm(1, channels), nn.Mish()]
        layers.append(nn.Conv1d(channels, channels, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, h, n_frames):  # h (B, L, C)
        y = F.interpolate(h.transpose(1, 2).contiguous(), size=n_frames, mode="nearest")
        return self.model(y).transpose(1, 2)


# ---- estimator (Matcha-TTS ConditionalDecoder, diffusers BasicTransformerBlock) ----

class Block1DRef(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.Mish())

    def forward(self, x, mask):
        return self.block(x * mask) * mask


class ResnetBlock1DRef(nn.Module):
    def __init__(self, cin, cout, temb_dim):
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(temb_dim, cout))
        self.block1, self.block2 = Block1DRef(cin, cout), Block1DRef(cout, cout)
        self.res_conv = nn.Conv1d(cin, cout, 1)

    def forward(self, x, mask, temb):
        h = self.block1(x, mask) + self.mlp(temb).unsqueeze(-1)
        return self.block2(h, mask) + self.res_conv(x * mask)


class AttentionRef(nn.Module):
    def __init__(self, dim, heads, head_dim):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, inner, bias=False) for _ in range(3))
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, x, attn_bias):
        b, n, _ = x.shape

        def split(y):
            return y.view(b, n, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        # the original's quirk: the 0/1 mask product is handed over as an ADDITIVE bias
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias.unsqueeze(1))
        return self.to_out[0](out.transpose(1, 2).reshape(b, n, -1))


class GELUProjRef(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner)

    def forward(self, x):
        return F.gelu(self.proj(x))


class FeedForwardGeluRef(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GELUProjRef(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class TransformerBlockRef(nn.Module):
    def __init__(self, dim, heads, head_dim):
        super().__init__()
        self.norm1, self.norm3 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = AttentionRef(dim, heads, head_dim)
        self.ff = FeedForwardGeluRef(dim)

    def forward(self, x, attn_bias):
        x = x + self.attn1(self.norm1(x), attn_bias)
        return x + self.ff(self.norm3(x))


class Downsample1DRef(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


class Upsample1DRef(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.ConvTranspose1d(ch, ch, 4, 2, 1)

    def forward(self, x):
        return self.conv(x)


class TimeMLPRef(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(cin, dim), nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class EstimatorRef(nn.Module):
    def __init__(self, in_channels, out_channels, channels, heads, head_dim, n_blocks, n_mid):
        super().__init__()
        self.in_channels = in_channels
        temb_dim = channels[0] * 4
        self.time_mlp = TimeMLPRef(in_channels, temb_dim)

        def transformers(ch):
            return nn.ModuleList([TransformerBlockRef(ch, heads, head_dim) for _ in range(n_blocks)])

        self.down_blocks = nn.ModuleList()
        cout = in_channels
        for i, ch in enumerate(channels):
            cin, cout = cout, ch
            last = i == len(channels) - 1
            down = nn.Conv1d(cout, cout, 3, padding=1) if last else Downsample1DRef(cout)
            self.down_blocks.append(nn.ModuleList([ResnetBlock1DRef(cin, cout, temb_dim), transformers(cout), down]))
        self.mid_blocks = nn.ModuleList(
            [nn.ModuleList([ResnetBlock1DRef(channels[-1], channels[-1], temb_dim), transformers(channels[-1])])
             for _ in range(n_mid)])
        up_ch = list(channels[::-1]) + [channels[0]]
        self.up_blocks = nn.ModuleList()
        for i in range(len(up_ch) - 1):
            cin, cout = up_ch[i], up_ch[i + 1]
            last = i == len(up_ch) - 2
            up = nn.Conv1d(cout, cout, 3, padding=1) if last else Upsample1DRef(cout)
            self.up_blocks.append(nn.ModuleList([ResnetBlock1DRef(2 * cin, cout, temb_dim), transformers(cout), up]))
        self.final_block = Block1DRef(up_ch[-1], up_ch[-1])
        self.final_proj = nn.Conv1d(up_ch[-1], out_channels, 1)

    def time_features(self, t, scale=1000):
        half = self.in_channels // 2
        f = torch.exp(torch.arange(half).float() * -(math.log(10000) / (half - 1)))
        e = scale * t.unsqueeze(1) * f.unsqueeze(0)
        return torch.cat([e.sin(), e.cos()], dim=-1)

    def forward(self, x, mask, mu, t, spks, cond):
        temb = self.time_mlp(self.time_features(t))
        x = torch.cat([x, mu, spks.unsqueeze(-1).expand(-1, -1, x.shape[-1]), cond], dim=1)
        hiddens, masks = [], [mask]
        for resnet, blocks, down in self.down_blocks:
            m = masks[-1]
            x = resnet(x, m, temb).transpose(1, 2)
            bias = torch.matmul(m.transpose(1, 2), m)
            for blk in blocks:
                x = blk(x, bias)
            x = x.transpose(1, 2)
            hiddens.append(x)
            x = down(x * m)
            masks.append(m[:, :, ::2])
        masks = masks[:-1]
        m = masks[-1]
        for resnet, blocks in self.mid_blocks:
            x = resnet(x, m, temb).transpose(1, 2)
            bias = torch.matmul(m.transpose(1, 2), m)
            for blk in blocks:
                x = blk(x, bias)
            x = x.transpose(1, 2)
        for resnet, blocks, up in self.up_blocks:
            m = masks.pop()
            skip = hiddens.pop()
            x = torch.cat([x[:, :, : skip.shape[-1]], skip], dim=1)
            x = resnet(x, m, temb).transpose(1, 2)
            bias = torch.matmul(m.transpose(1, 2), m)
            for blk in blocks:
                x = blk(x, bias)
            x = x.transpose(1, 2)
            x = up(x * m)
        x = self.final_block(x, m)
        return self.final_proj(x * m) * mask


class CFMRef(nn.Module):
    def __init__(self, estimator, cfg_rate):
        super().__init__()
        self.estimator, self.cfg_rate = estimator, cfg_rate

    def forward(self, z, mu, mask, spks, cond, n_timesteps=10):
        ts = torch.linspace(0, 1, n_timesteps + 1)
        ts = 1 - torch.cos(ts * 0.5 * torch.pi)
        x, t, dt = z, ts[0], ts[1] - ts[0]
        for k in range(1, n_timesteps + 1):
            v = self.estimator(x, mask, mu, t.reshape(1), spks, cond)
            vu = self.estimator(x, mask, torch.zeros_like(mu), t.reshape(1), torch.zeros_like(spks),
                                torch.zeros_like(cond))
            x = x + dt * ((1.0 + self.cfg_rate) * v - self.cfg_rate * vu)
            t = t + dt
            if k < n_timesteps:
                dt = ts[k + 1] - t
        return x


class FlowRef(nn.Module):
    """MaskedDiffWithXvec with the original's submodule names (keys of flow.pt)."""

    def __init__(self, fc):
        super().__init__()
        self.fc = fc
        self.input_embedding = nn.Embedding(fc.vocab_size, fc.input_size)
        self.spk_embed_affine_layer = nn.Linear(fc.spk_embed_dim, fc.output_size)
        self.encoder = EncoderRef(fc.encoder_size, fc.encoder_heads, fc.encoder_ffn, fc.encoder_layers,
                                  fc.encoder_block_size)
        self.encoder_proj = nn.Linear(fc.encoder_size, fc.output_size)
        self.length_regulator = LengthRegulatorRef(fc.regulator_channels, fc.regulator_blocks)
        est = EstimatorRef(fc.estimator_in_channels, fc.output_size, list(fc.estimator_channels), fc.estimator_heads,
                           fc.estimator_head_dim, fc.estimator_transformer_blocks, fc.estimator_mid_blocks)
        self.decoder = CFMRef(est, fc.inference_cfg_rate)

    def mel_length(self, n):
        return int(torch.tensor(n, dtype=torch.int64) / self.fc.input_frame_rate * 22050 / 256)

    def mu(self, tokens):
        """(1, N) tokens -> mu (1, T, C), T by the reference length formula."""
        valid = torch.ones_like(tokens, dtype=torch.bool)
        h = self.encoder(self.input_embedding(tokens.clamp(min=0)), valid)
        return self.length_regulator(self.encoder_proj(h), self.mel_length(tokens.shape[1]))

    def inference(self, token, prompt_token, prompt_feat, z, n_timesteps=10):
        """The reference `flow.inference` with the CFM noise `z` (1, C, T) given: returns (1, C, T - F)."""
        tok = torch.cat([prompt_token, token], dim=1)
        spks = self.spk_embed_affine_layer(F.normalize(torch.zeros(1, self.fc.spk_embed_dim), dim=1))
        mu = self.mu(tok)
        n_frames, n_prompt = mu.shape[1], prompt_feat.shape[1]
        cond = torch.zeros(1, n_frames, self.fc.output_size)
        cond[:, :n_prompt] = prompt_feat
        mask = torch.ones(1, 1, n_frames)
        mel = self.decoder(z, mu.transpose(1, 2), mask, spks, cond.transpose(1, 2), n_timesteps)
        return mel[:, :, n_prompt:]
