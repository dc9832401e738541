"""Tokenizer checkpoint conversion: original layout -> Flax checkpoint -> original layout is
bit-identical; both key layouts import; configs and tensors that disagree with the spec's
structure fail with errors naming the file and field or key."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from vita_jax.cli import convert
from vita_jax.convert.tokenizer_checkpoint import TokenizerCheckpointError, import_hf_dir
from tests.torch_refs.whisper_vq_ref import random_ref, tiny_hf_config, write_tokenizer_dir

CFG = tiny_hf_config(layers=3, quantize_position=2)


@pytest.fixture(scope="module")
def model():
    return random_ref(CFG, np.random.default_rng(0).uniform(-1, 1, (1, 128, 160)))


@pytest.fixture
def hf_dir(tmp_path, model):
    return write_tokenizer_dir(str(tmp_path / "hf"), CFG, model)


def convert_round_trip(src, tmp_path):
    convert.main(["tokenizer-to-jax", "--tokenizer-dir", src, "--out", str(tmp_path / "jax")])
    convert.main(["tokenizer-to-hf", "--ckpt", str(tmp_path / "jax"), "--out", str(tmp_path / "back")])
    return str(tmp_path / "back")


def test_round_trip_is_bit_identical(hf_dir, tmp_path):
    back = convert_round_trip(hf_dir, tmp_path)
    original = load_file(os.path.join(hf_dir, "model.safetensors"))
    exported = load_file(os.path.join(back, "model.safetensors"))
    assert sorted(exported) == sorted(original)
    for key, tensor in original.items():
        assert exported[key].dtype == tensor.dtype and exported[key].shape == tensor.shape, key
        assert exported[key].tobytes() == tensor.tobytes(), key
    for name in ("config.json", "preprocessor_config.json"):
        with open(os.path.join(hf_dir, name)) as a, open(os.path.join(back, name)) as b:
            assert json.load(a) == json.load(b)


def test_full_model_key_layout_imports(tmp_path, model):
    """`model.encoder.*` keys: prefix stripped, decoder, layer_norm and layers >= 2 skipped."""
    full = write_tokenizer_dir(str(tmp_path / "full"), CFG, model, full_model_layout=True)
    assert any(k.startswith("model.encoder.layers.2.") for k in load_file(os.path.join(full, "model.safetensors")))
    back = convert_round_trip(full, tmp_path)
    exported = load_file(os.path.join(back, "model.safetensors"))
    bare = {k: v.numpy() for k, v in model.state_dict().items()}
    assert sorted(exported) == sorted(bare)
    for key, tensor in bare.items():
        np.testing.assert_array_equal(exported[key], tensor, err_msg=key)


def rewrite_json(path, **changes):
    with open(path) as f:
        data = json.load(f)
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    with open(path, "w") as f:
        json.dump(data, f)


@pytest.mark.parametrize(
    "file, changes, message",
    [
        ("config.json", {"pooling_type": "max"}, "'pooling_type' is 'max'"),
        ("config.json", {"encoder_causal_convolution": False}, "'encoder_causal_convolution' is False"),
        ("config.json", {"quantize_encoder_only": None}, "'quantize_encoder_only' is missing"),
        ("config.json", {"quantize_position": None}, "'quantize_position' must be a positive integer"),
        ("config.json", {"pooling_position": 1}, "'pooling_position' must equal 'quantize_position'"),
        ("config.json", {"encoder_attention_heads": 5}, "not divisible by 'encoder_attention_heads'"),
        ("config.json", {"d_model": 32}, "has shape (256, 64), config.json implies (256, 32) (and 35 more below)"),
        ("config.json", {"quantize_vocab_size": 512}, "model.safetensors has shape (256, 64), config.json implies (512, 64)"),
        ("preprocessor_config.json", {"feature_size": 80}, "'feature_size' 80 differs from the model's 'num_mel_bins' 128"),
        ("preprocessor_config.json", {"chunk_length": 40}, "more than max_source_positions=1500"),
    ],
)
def test_config_disagreeing_with_the_spec_is_rejected(hf_dir, tmp_path, capsys, file, changes, message):
    rewrite_json(os.path.join(hf_dir, file), **changes)
    out = tmp_path / "jax"
    with pytest.raises(SystemExit) as exit_:
        convert.main(["tokenizer-to-jax", "--tokenizer-dir", hf_dir, "--out", str(out)])
    error = capsys.readouterr().err
    assert exit_.value.code == 1 and message in error
    assert os.path.join(hf_dir, file) in error or "model.safetensors" in error
    assert not out.exists()


def test_missing_and_unreadable_files_are_named(hf_dir):
    weights = os.path.join(hf_dir, "model.safetensors")
    with open(weights, "wb") as f:
        f.write(b"not a safetensors file")
    with pytest.raises(TokenizerCheckpointError, match="cannot read .*model.safetensors"):
        import_hf_dir(hf_dir)
    os.remove(weights)
    with pytest.raises(TokenizerCheckpointError, match=r"no \*.safetensors file in"):
        import_hf_dir(hf_dir)
    os.remove(os.path.join(hf_dir, "config.json"))
    with pytest.raises(TokenizerCheckpointError, match="missing config.json"):
        import_hf_dir(hf_dir)


def test_missing_and_unexpected_tensors_are_named(hf_dir, model):
    from safetensors.numpy import save_file

    state = {k: v.numpy() for k, v in model.state_dict().items()}
    weights = os.path.join(hf_dir, "model.safetensors")
    save_file({k: v for k, v in state.items() if k != "layers.1.fc2.bias"}, weights)
    with pytest.raises(TokenizerCheckpointError, match=r"missing tensors \(1\): layers\.1\.fc2\.bias"):
        import_hf_dir(hf_dir)
    save_file({**state, "layer_norm.weight": state["conv1.bias"]}, weights)
    with pytest.raises(TokenizerCheckpointError, match=r"unexpected tensors \(1\): layer_norm\.weight"):
        import_hf_dir(hf_dir)
