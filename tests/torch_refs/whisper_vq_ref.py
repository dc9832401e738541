"""PyTorch reference of the GLM-4-Voice Whisper-VQ encoder, written from
glm4voice-tokenizer-spec.md: transformers' WhisperEncoderLayer plus the causal convs,
block-causal mask, average pooling and codebook argmin. Its state_dict has the original
(bare) key layout, so tests save it as a tiny `glm-4-voice-tokenizer` directory.
"""

import json
import os

import torch
from torch import nn
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

from vita_jax.pipeline.random_parts import speech_tokenizer_config


def tiny_hf_config(d_model=64, heads=4, ffn=128, layers=3, quantize_position=2, codes=256, block=200, mels=128):
    """A config.json dict with the real structure and reduced sizes."""
    return speech_tokenizer_config(d_model, heads, ffn, layers, quantize_position, codes, block, mels)


class CausalConv1d(nn.Conv1d):
    """Conv1d with dilation * (k - 1) zeros on the left only."""

    def forward(self, x):
        return super().forward(nn.functional.pad(x, (self.dilation[0] * (self.kernel_size[0] - 1), 0)))


class WhisperVQRef(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, codes = cfg["d_model"], cfg["quantize_vocab_size"]
        whisper = WhisperConfig(
            d_model=d,
            encoder_attention_heads=cfg["encoder_attention_heads"],
            encoder_ffn_dim=cfg["encoder_ffn_dim"],
            activation_function="gelu",
        )
        whisper._attn_implementation = "eager"
        self.conv1 = CausalConv1d(cfg["num_mel_bins"], d, kernel_size=3)
        self.conv2 = CausalConv1d(d, d, kernel_size=3, stride=2)
        self.embed_positions = nn.Embedding(cfg["max_source_positions"], d)
        self.layers = nn.ModuleList(WhisperEncoderLayer(whisper) for _ in range(cfg["quantize_position"]))
        self.codebook = nn.Embedding(codes, d)
        self.embed_positions2 = nn.Embedding(cfg["max_source_positions"] // cfg["pooling_kernel_size"], d)
        self.register_buffer("ema_count", torch.ones(codes))
        self.register_buffer("ema_weight", torch.randn(codes, d))

    def block_bias(self, m50):
        t = m50.shape[1]
        i = torch.arange(t)[:, None]
        j = torch.arange(t)[None, :]
        block = self.cfg["quantize_causal_block_size"]
        allowed = ((j <= i) | (i // block == j // block))[None] & m50[:, None, :].bool()
        return ((~allowed).float() * torch.finfo(torch.float32).min)[:, None]

    @torch.no_grad()
    def forward(self, features, frame_mask):
        """features [B, mels, T], frame_mask [B, T] -> (pooled hidden [B, T/8, d], ids [B, T/8])."""
        m50 = frame_mask[:, ::2]
        bias = self.block_bias(m50)
        h = nn.functional.gelu(self.conv1(features))
        h = nn.functional.gelu(self.conv2(h)).permute(0, 2, 1)
        h = h + self.embed_positions.weight[: h.shape[1]]
        for layer in self.layers:
            h = layer(h, bias)
        k = self.cfg["pooling_kernel_size"]
        pooled = nn.functional.avg_pool1d(h.permute(0, 2, 1), k, k).permute(0, 2, 1)
        flat = pooled.reshape(-1, pooled.shape[-1])
        codebook = self.codebook.weight
        distances = torch.addmm(
            (codebook**2).sum(1)[None] + (flat**2).sum(1, keepdim=True), flat, codebook.T, alpha=-2.0, beta=1.0
        )
        return pooled, distances.min(dim=1).indices.reshape(pooled.shape[:2])


def random_ref(cfg, calibration_features, seed=0):
    """A reference model with every weight random (LayerNorms included). The codebook is
    drawn around pooled hidden states of `calibration_features` [B, mels, T] (e.g. speech
    log-mels), so that codes vary and nearest-code margins are realistic."""
    torch.manual_seed(seed)
    model = WhisperVQRef(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p) if name.endswith("weight") else 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (p.numel() // p.shape[0]) ** -0.5)
        features = torch.as_tensor(calibration_features, dtype=torch.float32)
        pooled, _ = model(features, torch.ones(features.shape[0], features.shape[2]))
        pooled = pooled.reshape(-1, cfg["d_model"])
        rows = pooled[torch.randint(0, pooled.shape[0], (cfg["quantize_vocab_size"],))]
        model.codebook.weight.copy_(rows + 0.5 * pooled.std(0) * torch.randn_like(rows))
    return model


def write_tokenizer_dir(path, cfg, model, full_model_layout=False):
    """Save `model` as an original tokenizer directory (bare or `model.encoder.` keys)."""
    from safetensors.torch import save_file

    os.makedirs(path, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if full_model_layout:
        state = {f"model.encoder.{k}": v for k, v in state.items()}
        state["model.encoder.layer_norm.weight"] = torch.ones(cfg["d_model"])
        beyond_quantizer = f"model.encoder.layers.{cfg['quantize_position']}.fc1.weight"
        state[beyond_quantizer] = torch.zeros(cfg["encoder_ffn_dim"], cfg["d_model"])
        state["model.decoder.embed_tokens.weight"] = torch.zeros(4, cfg["d_model"])
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    WhisperFeatureExtractor(feature_size=cfg["num_mel_bins"]).save_pretrained(path)
    return path
