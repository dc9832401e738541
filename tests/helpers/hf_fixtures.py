"""Tiny random Hugging Face checkpoints in the original layouts, written the way the originals are."""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import Qwen2ForCausalLM

from tests.torch_refs.qwen2_mtp_ref import TorchQwen2MTP, tiny_qwen2_config

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def make_qwen2_checkpoint(out_dir, seed=0):
    """A plain qwen2 checkpoint saved by transformers itself. Returns the torch model (float32, eval)."""
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(tiny_qwen2_config(num_layers=2, num_mctp=0)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
    model.save_pretrained(out_dir)
    return model


def make_mtp_checkpoint(out_dir, num_mctp=3, dtype="float32", shards=1, seed=0):
    """A qwen2_mtp checkpoint of the TorchQwen2MTP reference, `shards` safetensors files (+ index when > 1).
    Returns the reference model (float32, eval)."""
    torch.manual_seed(seed)
    config = tiny_qwen2_config(num_layers=2, num_mctp=num_mctp)
    model = TorchQwen2MTP(config, num_mctp).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    state = {k: v.to(TORCH_DTYPES[dtype]).contiguous() for k, v in model.state_dict().items()
             if not k.startswith("rotary")}
    os.makedirs(out_dir, exist_ok=True)
    hf = config.to_dict()
    hf.update(model_type="qwen2_mtp", architectures=["Qwen2MTPForCausalLM"], num_nextn_predict_layers=num_mctp,
              torch_dtype=dtype)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    keys = list(state)
    if shards == 1:
        save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    else:
        groups = [keys[i::shards] for i in range(shards)]
        weight_map = {}
        for i, group in enumerate(groups):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: state[k] for k in group}, os.path.join(out_dir, name), metadata={"format": "pt"})
            weight_map.update({k: name for k in group})
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    return model
