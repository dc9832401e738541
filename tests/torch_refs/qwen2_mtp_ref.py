"""A small PyTorch reference of VITA-Audio's MCTP stack (spec section 5), written for the tests.

Built on transformers' Qwen2 layers; its state_dict has exactly the Qwen2MTPForCausalLM keys
(model.layers.{0..L+K-1}, mtp_projs.{k}, mtp_embed_norms.{k}, mtp_hidden_norms.{k}, ...).
The forward is deliberately plain: module k is computed on its T-k-1 valid pairs only.
"""

import torch
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2Model, Qwen2RMSNorm, Qwen2RotaryEmbedding


def tiny_qwen2_config(num_layers=2, num_mctp=3, vocab=256, hidden=64, intermediate=128, heads=4, kv_heads=2):
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=num_layers + num_mctp,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512, rope_theta=10000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
    )
    config._attn_implementation = "eager"
    return config


def causal_additive_mask(length):
    allowed = torch.tril(torch.ones(length, length, dtype=torch.bool))
    return torch.where(allowed, 0.0, torch.finfo(torch.float32).min)[None, None]


class TorchQwen2MTP(torch.nn.Module):
    def __init__(self, config, num_mctp):
        super().__init__()
        self.num_layers = config.num_hidden_layers - num_mctp
        self.num_mctp = num_mctp
        hidden = config.hidden_size
        self.model = Qwen2Model(config)
        self.lm_head = torch.nn.Linear(hidden, config.vocab_size, bias=False)
        self.mtp_projs = torch.nn.ModuleList(torch.nn.Linear(2 * hidden, hidden, bias=False) for _ in range(num_mctp))
        self.mtp_embed_norms = torch.nn.ModuleList(Qwen2RMSNorm(hidden, config.rms_norm_eps) for _ in range(num_mctp))
        self.mtp_hidden_norms = torch.nn.ModuleList(Qwen2RMSNorm(hidden, config.rms_norm_eps) for _ in range(num_mctp))
        self.rotary = Qwen2RotaryEmbedding(config)
        with torch.no_grad():  # Qwen2's init leaves norms at 1: randomise so parity tests see them
            for name, p in self.named_parameters():
                if name.endswith("norm.weight") or "norms" in name:
                    p.uniform_(0.5, 1.5)

    def _layer(self, index, x, positions):
        cos, sin = self.rotary(x, positions[None])
        return self.model.layers[index](x, attention_mask=causal_additive_mask(x.shape[1]),
                                        position_embeddings=(cos, sin), position_ids=positions[None])

    @torch.no_grad()
    def forward(self, input_ids):
        """input_ids [1, T] (one unpacked sample). Returns backbone logits [T, V] and, per
        module k, logits [T-k-1, V] for pairs j = 0..T-k-2."""
        length = input_ids.shape[1]
        embeddings = self.model.embed_tokens(input_ids)
        x = embeddings
        for i in range(self.num_layers):
            x = self._layer(i, x, torch.arange(length))
        prev = self.model.norm(x)
        logits = [self.lm_head(prev)[0]]
        for k in range(self.num_mctp):
            pairs = length - k - 1
            if pairs <= 0:
                break
            token_embeddings = embeddings[:, k + 1:k + 1 + pairs]
            u = self.mtp_projs[k](torch.cat([self.mtp_embed_norms[k](token_embeddings),
                                             self.mtp_hidden_norms[k](prev[:, :pairs])], dim=-1))
            out = self._layer(self.num_layers + k, u, torch.arange(pairs) + k + 1)
            prev = self.model.norm(out)
            logits.append(self.lm_head(prev)[0])
        return logits
