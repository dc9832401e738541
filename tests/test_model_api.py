"""The model object's interface: shapes, presets, clear errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vita_jax.configs.model import get_config
from vita_jax import VitaAudioModel
from vita_jax.model_config import ModelConfig, from_hf_config
from vita_jax.nn.vita_audio import VitaAudio


@pytest.fixture(scope="module")
def tiny_model():
    return VitaAudioModel.random(get_config("tiny"), seed=0)


def test_forward_shapes(tiny_model):
    out = tiny_model.forward(np.zeros((3, 9), np.int32))
    assert out.logits.shape == (3, 9, 256) and out.logits.dtype == jnp.float32
    assert [x.shape for x in out.mctp_logits] == [(3, 9, 256)] * 3
    hidden_only = tiny_model.forward(np.zeros((3, 9), np.int32), with_logits=False)
    assert hidden_only.logits is None and hidden_only.hidden.shape == (3, 9, 64)


@pytest.mark.parametrize("ids, message", [
    (np.zeros(5, np.int32), r"input_ids must be \[batch, length\], got shape \(5,\)"),
    (np.full((1, 4), 256), r"input_ids outside \[0, 256\): min 256, max 256"),
    (np.full((1, 4), -1), r"input_ids outside \[0, 256\): min -1"),
])
def test_bad_input_ids(tiny_model, ids, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.forward(ids)


def test_segment_shape_mismatch(tiny_model):
    with pytest.raises(ValueError, match=r"segment_ids shape \(1, 3\) differs from input_ids shape \(1, 4\)"):
        tiny_model.forward(np.zeros((1, 4), np.int32), segment_ids=np.ones((1, 3), np.int32))


def param_count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_presets_geometry():
    small = get_config("qwen2.5-0.5b")
    assert (small.hidden_size, small.intermediate_size, small.num_layers, small.num_heads, small.num_kv_heads) == (
        896, 4864, 24, 14, 2)
    big = get_config("vita-audio-7b")
    assert (big.hidden_size, big.intermediate_size, big.num_layers, big.num_heads, big.num_kv_heads) == (
        3584, 18944, 28, 28, 4)
    for cfg in (small, big):
        assert cfg.num_mctp_modules == 10 and cfg.vocab_size == 168072


def test_7b_parameter_counts_match_the_spec():
    """Spec section 9: the backbone read per token is ~7.13 B params incl. lm_head, a module ~0.86 B incl. lm_head."""
    shapes = jax.eval_shape(VitaAudio(get_config("vita-audio-7b")).init, jax.random.key(0), jnp.zeros((1, 2), jnp.int32))
    params = shapes["params"]
    lm_head = param_count(params["backbone"]["lm_head"])
    backbone_read = param_count(params["backbone"]) - param_count(params["backbone"]["embed_tokens"])
    assert abs(backbone_read / 1e9 - 7.13) < 0.01
    assert abs((param_count(params["mctp_0"]) + lm_head) / 1e9 - 0.86) < 0.01


def test_config_errors():
    with pytest.raises(ValueError, match="num_heads 6 is not a multiple of num_kv_heads 4"):
        ModelConfig(num_heads=6, num_kv_heads=4, hidden_size=96)
    with pytest.raises(KeyError, match="unknown model config fields"):
        ModelConfig.from_dict({"hidden": 3})
    with pytest.raises(KeyError, match="missing required field 'hidden_size'"):
        from_hf_config({"model_type": "qwen2", "num_hidden_layers": 2, "num_attention_heads": 2}, "x/config.json")
    with pytest.raises(ValueError, match="unknown model preset 'big'"):
        get_config("big")


@pytest.mark.parametrize("scan_layers", [False, True])
def test_remat_changes_memory_not_results(scan_layers):
    cfg = get_config("tiny").replace(scan_layers=scan_layers)
    plain = VitaAudioModel.random(cfg, seed=1)
    cfg_remat = cfg.replace(remat_policy="full")
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 8)), jnp.int32)

    def loss(params, module):
        out = module.apply({"params": params}, ids)
        return out.logits.mean() + sum(x.mean() for x in out.mctp_logits)

    want = jax.value_and_grad(loss)(plain.params, plain.module)
    got = jax.value_and_grad(loss)(plain.params, VitaAudio(cfg_remat))
    # recomputation fuses differently: float32 rounding (1.7e-5 relative on one of 16384 gradients on an AVX2 CPU)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), got, want)
