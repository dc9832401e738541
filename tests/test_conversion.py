"""Hugging Face <-> Flax conversion: bit-identical round trips, transformers loading, bad input, atomic export."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import Qwen2ForCausalLM

import vita_jax
from vita_jax.cli import convert
from vita_jax.convert import hf_checkpoint
from vita_jax.convert.hf_checkpoint import CheckpointError
from vita_jax.convert.rules import Transform
from vita_jax.convert.safetensors_io import SafetensorsError
from tests.helpers.hf_fixtures import make_mtp_checkpoint, make_qwen2_checkpoint


def read_all(hf_dir):
    """{key: (dtype, shape, raw bytes)} over every safetensors file of a directory."""
    tensors = {}
    for path in hf_checkpoint.weight_files(hf_dir):
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                t = f.get_tensor(key)
                tensors[key] = (t.dtype, tuple(t.shape), t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return tensors


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shards", [1, 3])
def test_mtp_round_trip_is_bit_identical(tmp_path, dtype, shards):
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    make_mtp_checkpoint(src, num_mctp=3, dtype=dtype, shards=shards)
    model = vita_jax.load_pretrained(src, progress=False)
    model.save_pretrained(out, dtype=dtype, max_shard_bytes=60_000 if shards > 1 else 5 * 2**30)
    assert read_all(out) == read_all(src)
    assert (len(hf_checkpoint.weight_files(out)) > 1) == (shards > 1)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["model_type"] == "qwen2_mtp" and config["architectures"] == ["Qwen2MTPForCausalLM"]
    assert config["num_nextn_predict_layers"] == 3 and config["num_hidden_layers"] == 5
    assert config["torch_dtype"] == dtype


def test_round_trip_through_vita_jax_checkpoint_cli(tmp_path, capsys):
    src, ckpt, out = (str(tmp_path / name) for name in ("src", "ckpt", "out"))
    make_mtp_checkpoint(src, num_mctp=3, dtype="bfloat16", shards=2)
    convert.main(["llm-to-jax", "--hf-dir", src, "--out", ckpt, "--scan-layers"])
    meta = json.load(open(os.path.join(ckpt, "metadata.json")))
    assert meta["param_layout"] == "scanned" and meta["model_config"]["num_mctp_modules"] == 3
    convert.main(["llm-to-hf", "--ckpt", ckpt, "--out", out, "--dtype", "bfloat16", "--max-shard-size", "100KB"])
    assert read_all(out) == read_all(src)


def test_own_checkpoint_reloads_in_either_layout(tmp_path):
    src, ckpt = str(tmp_path / "src"), str(tmp_path / "ckpt")
    make_mtp_checkpoint(src, num_mctp=2)
    model = vita_jax.load_pretrained(src, progress=False)
    model.save(ckpt)
    ids = np.arange(10)[None] % 256
    want = model.forward(ids)
    for scan in (False, True):
        again = vita_jax.load_pretrained(ckpt, scan_layers=scan, remat_policy="full" if scan else "none")
        assert again.config.remat_policy == ("full" if scan else "none")
        got = again.forward(ids)
        np.testing.assert_allclose(np.asarray(got.logits), np.asarray(want.logits), atol=1e-5)
        np.testing.assert_allclose(np.asarray(got.mctp_logits[1]), np.asarray(want.mctp_logits[1]), atol=1e-5)


def test_qwen2_export_loads_in_transformers(tmp_path):
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    reference = make_qwen2_checkpoint(src)
    model = vita_jax.load_pretrained(src, progress=False)
    model.save_pretrained(out, dtype="float32")
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["model_type"] == "qwen2" and "num_nextn_predict_layers" not in config
    reloaded = Qwen2ForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    ids = torch.tensor(np.random.default_rng(0).integers(0, 256, (2, 11)))
    with torch.no_grad():
        want, got = reference(ids).logits.numpy(), reloaded(ids).logits.numpy()
    assert np.abs(got - want).max() <= 1e-6
    assert np.abs(np.asarray(model.forward(ids.numpy()).logits) - want).max() <= 1e-4


def rewrite_single_file(src, edit):
    """Apply `edit(state)` to the tensors of src/model.safetensors and write it back."""
    from safetensors.torch import load_file, save_file

    path = os.path.join(src, "model.safetensors")
    state = load_file(path)
    edit(state)
    save_file(state, path, metadata={"format": "pt"})


def test_missing_tensor_is_named(tmp_path):
    src = str(tmp_path / "src")
    make_mtp_checkpoint(src, num_mctp=2)
    rewrite_single_file(src, lambda s: s.pop("mtp_projs.1.weight"))
    with pytest.raises(CheckpointError, match=r"src does not match config\.json \(qwen2_mtp, 2 backbone layers, 2 MCTP modules\): "
                                              r"missing tensors \(1\): mtp_projs\.1\.weight"):
        vita_jax.load_pretrained(src, progress=False)


def test_unexpected_tensor_is_named(tmp_path):
    src = str(tmp_path / "src")
    make_mtp_checkpoint(src, num_mctp=2)
    rewrite_single_file(src, lambda s: s.update({"mtp_projs.2.weight": torch.zeros(64, 128)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensors \(1\): mtp_projs\.2\.weight"):
        vita_jax.load_pretrained(src, progress=False)


def edit_config(src, **fields):
    config_path = os.path.join(src, "config.json")
    config = json.load(open(config_path))
    config.update(fields)
    json.dump(config, open(config_path, "w"))


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    src = str(tmp_path / "src")
    make_mtp_checkpoint(src, num_mctp=2)
    edit_config(src, intermediate_size=96)
    with pytest.raises(CheckpointError) as info:
        vita_jax.load_pretrained(src, progress=False)
    # every mis-shaped tensor in one message: gate, up and down projections of each layer and module
    mismatches = re.findall(r"tensor 'model\.layers\.\d\.mlp\.\w+_proj\.weight' in \S+model\.safetensors has shape "
                            r"\((?:128, 64|64, 128)\), config\.json \(.*\) implies \((?:96, 64|64, 96)\)", str(info.value))
    assert len(mismatches) == 3 * 4


def test_unknown_model_type_is_named(tmp_path):
    src = str(tmp_path / "src")
    make_mtp_checkpoint(src, num_mctp=1)
    edit_config(src, model_type="llama")
    with pytest.raises(ValueError, match=r"config\.json: unknown model_type 'llama'"):
        vita_jax.load_pretrained(src, progress=False)


def test_truncated_file_is_named(tmp_path):
    src = str(tmp_path / "src")
    make_mtp_checkpoint(src, num_mctp=1, shards=2)
    path = os.path.join(src, "model-00002-of-00002.safetensors")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(SafetensorsError, match=r"model-00002-of-00002\.safetensors: truncated safetensors file"):
        vita_jax.load_pretrained(src, progress=False)


def test_failed_export_leaves_nothing_half_written(tmp_path, monkeypatch):
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    make_mtp_checkpoint(src, num_mctp=2)
    model = vita_jax.load_pretrained(src, progress=False)
    model.save_pretrained(out, dtype="float32")
    before = read_all(out)
    calls = []

    def failing_to_hf(x):
        calls.append(1)
        if len(calls) > 20:
            raise RuntimeError("disk full")
        return x

    table = hf_checkpoint.param_table
    monkeypatch.setattr(hf_checkpoint, "param_table", lambda cfg: [
        dataclasses.replace(r, transform=Transform(r.transform.name, r.transform.to_flax,
                                                   lambda x, f=r.transform.to_original: failing_to_hf(f(x))))
        for r in table(cfg)])
    with pytest.raises(RuntimeError, match="disk full"):
        model.save_pretrained(out, dtype="bfloat16")
    assert read_all(out) == before  # the previous export is untouched
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]  # no temporary directory left behind
