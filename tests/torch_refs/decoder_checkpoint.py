"""Tiny random GLM-4-Voice decoder checkpoints in the original layout, built with the torch references."""

import functools
import os
import tempfile

import numpy as np
import torch

from tests.torch_refs.flow_ref import FlowRef
from tests.torch_refs.hift_ref import HiFTRef
from vita_jax.audio.decoder_config import config_yaml_text
from vita_jax.pipeline.random_parts import tiny_decoder_config

TINY_CONFIG = tiny_decoder_config()


def build_reference_modules(cfg=TINY_CONFIG, seed=0):
    """(FlowRef, HiFTRef) with random weights; 1-D parameters are perturbed so norms are not trivial."""
    torch.manual_seed(seed)
    flow, hift = FlowRef(cfg.flow).eval(), HiFTRef(cfg.hift).eval()
    with torch.no_grad():
        for module in (flow, hift):
            for name, p in module.named_parameters():
                if p.ndim == 1:
                    p.add_(0.1 * torch.randn_like(p))
                if name.endswith("weight_g"):
                    p.mul_(0.5 + torch.rand_like(p))
    return flow, hift


def write_decoder_dir(out_dir, cfg=TINY_CONFIG, seed=0):
    """Write config.yaml, flow.pt, hift.pt; return the torch modules."""
    flow, hift = build_reference_modules(cfg, seed)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.yaml"), "w") as f:
        f.write(config_yaml_text(cfg))
    torch.save(flow.state_dict(), os.path.join(out_dir, "flow.pt"))
    torch.save(hift.state_dict(), os.path.join(out_dir, "hift.pt"))
    return flow, hift


@functools.lru_cache(maxsize=None)
def tiny_decoder_dir():
    """One tiny random decoder directory (and its torch modules) per test session."""
    out = tempfile.mkdtemp(prefix="glm4voice-decoder-")
    flow, hift = write_decoder_dir(out)
    return out, flow, hift


@functools.lru_cache(maxsize=None)
def tiny_decoder():
    """(SpeechDecoder, FlowRef, HiFTRef) sharing the same random weights."""
    from vita_jax.audio.speech_decoder import load_decoder

    out, flow, hift = tiny_decoder_dir()
    return load_decoder(out), flow, hift


def rel_l2(ref, got):
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    assert ref.shape == got.shape, (ref.shape, got.shape)
    return float(np.linalg.norm(ref - got) / np.linalg.norm(ref))
