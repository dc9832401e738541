"""flow.pt / hift.pt <-> Flax conversion: exact round trip, strict loading, clear errors."""

import os

import jax
import numpy as np
import pytest
import torch

from vita_jax.cli import convert
from vita_jax.convert.decoder_checkpoint import DecoderCheckpointError, import_state_dict
from tests.torch_refs.decoder_checkpoint import TINY_CONFIG, tiny_decoder, tiny_decoder_dir
from tests.torch_refs.flow_ref import FlowRef
from tests.torch_refs.hift_ref import HiFTRef
from vita_jax.audio.decoder_config import DecoderConfigError, load_decoder_config
from vita_jax.audio.decoder_params import decoder_param_shapes
from vita_jax.audio.speech_decoder import load_decoder

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    src, _, _ = tiny_decoder_dir()
    ckpt = str(tmp_path_factory.mktemp("ckpt") / "decoder_jax")
    convert.main(["decoder-to-jax", "--decoder-dir", src, "--out", ckpt])
    return src, ckpt


def load_sd(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_round_trip_returns_the_input_state_dicts_exactly(converted, tmp_path):
    src, ckpt = converted
    out = str(tmp_path / "pt")
    convert.main(["decoder-to-pt", "--ckpt", ckpt, "--out", out])
    assert sorted(os.listdir(out)) == ["config.yaml", "flow.pt", "hift.pt"]
    for part, ref_cls in (("flow", FlowRef), ("hift", HiFTRef)):
        original, back = load_sd(os.path.join(src, f"{part}.pt")), load_sd(os.path.join(out, f"{part}.pt"))
        assert set(back) == set(original)
        for key, value in original.items():
            assert back[key].shape == value.shape and back[key].dtype == torch.float32, key
            assert torch.equal(back[key], value), key
        module = ref_cls(getattr(TINY_CONFIG, part))
        module.load_state_dict(back, strict=True)
    assert load_decoder_config(os.path.join(out, "config.yaml")) == TINY_CONFIG


def test_folded_export_equals_the_weight_norm_forward(converted, tmp_path):
    _, ckpt = converted
    out = str(tmp_path / "folded")
    convert.main(["decoder-to-pt", "--ckpt", ckpt, "--out", out, "--fold-weight-norm"])
    folded = load_sd(os.path.join(out, "hift.pt"))
    assert not any(k.endswith(("weight_g", "weight_v")) for k in folded)
    _, _, hift = tiny_decoder()
    plain = HiFTRef(TINY_CONFIG.hift)
    for module in plain.modules():
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    plain.load_state_dict(folded, strict=True)
    ref = dict(hift.named_parameters())
    for key, value in folded.items():
        if key.endswith(".weight") and key[: -len("weight")] + "weight_g" in ref:
            expected = torch._weight_norm(ref[key[:-6] + "weight_v"], ref[key[:-6] + "weight_g"], 0)
            torch.testing.assert_close(value, expected.detach(), rtol=1e-6, atol=1e-7)


def test_converted_checkpoint_decodes_like_the_original_directory(converted):
    src, ckpt = converted
    dec_pt, dec_jax = tiny_decoder()[0], load_decoder(ckpt)
    assert dec_jax.cfg == dec_pt.cfg
    flat_pt = jax.tree_util.tree_flatten_with_path(dec_pt.params)[0]
    flat_jax = jax.tree_util.tree_flatten_with_path(dec_jax.params)[0]
    assert [p for p, _ in flat_pt] == [p for p, _ in flat_jax]
    for (path, a), (_, b) in zip(flat_pt, flat_jax):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))


def test_parametrization_style_weight_norm_keys_are_accepted():
    src, _, _ = tiny_decoder_dir()
    shapes = decoder_param_shapes(TINY_CONFIG)["hift"]
    state = {k: v.numpy() for k, v in load_sd(os.path.join(src, "hift.pt")).items()}
    new_style = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
    renamed = {k.replace("weight_g", new_style["weight_g"]).replace("weight_v", new_style["weight_v"]): v
               for k, v in state.items()}
    a, b = import_state_dict(state, shapes, "hook"), import_state_dict(renamed, shapes, "parametrizations")
    np.testing.assert_array_equal(a["conv_pre"]["weight_v"], b["conv_pre"]["weight_v"])


def test_bad_state_dicts_name_the_key_and_shapes():
    src, _, _ = tiny_decoder_dir()
    shapes = decoder_param_shapes(TINY_CONFIG)["flow"]
    state = {k: v.numpy() for k, v in load_sd(os.path.join(src, "flow.pt")).items()}
    missing = dict(state)
    del missing["encoder.after_norm.bias"]
    with pytest.raises(DecoderCheckpointError, match=r"(?s)flow.pt does not match.*missing tensors \(1\): encoder.after_norm.bias"):
        import_state_dict(missing, shapes, "flow.pt")
    extra = dict(state, **{"encoder.extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(DecoderCheckpointError, match=r"unexpected tensors \(1\): encoder.extra.weight"):
        import_state_dict(extra, shapes, "flow.pt")
    bad = dict(state, **{"encoder_proj.weight": np.zeros((16, 31), np.float32)})
    message = r"tensor 'encoder_proj.weight' in flow.pt has shape \(16, 31\), the decoder config implies \(16, 32\)"
    with pytest.raises(DecoderCheckpointError, match=message):
        import_state_dict(bad, shapes, "flow.pt")


def test_load_decoder_reports_a_checkpoint_of_another_size(tmp_path):
    src, _, _ = tiny_decoder_dir()
    d = tmp_path / "mismatch"
    d.mkdir()
    for name in ("flow.pt", "hift.pt"):
        (d / name).write_bytes(open(os.path.join(src, name), "rb").read())
    text = open(os.path.join(src, "config.yaml")).read().replace("num_mid_blocks: 2", "num_mid_blocks: 3")
    (d / "config.yaml").write_text(text)
    with pytest.raises(DecoderCheckpointError, match=r"(?s)flow.pt does not match.*missing tensors.*mid_blocks\.2"):
        load_decoder(str(d))


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("hift: !new:", "vocoder: !new:"), r"missing field 'hift'"),
    (lambda t: t.replace("num_blocks: 2", "num_blocks: two"), r"'flow.encoder.num_blocks' must be a positive integer"),
    (lambda t: t.replace("    upsample_rates: [8, 8]", "    upsample_rates: 8"),
     r"'hift.upsample_rates' must be a non-empty list"),
    (lambda t: t.replace("in_channels: 64", "in_channels: 65"), r"'flow.decoder.estimator.in_channels' must be 4 x"),
    (lambda t: "- just\n- a list\n", r"expected a mapping"),
    (lambda t: t + "  bad: [unclosed\n", r"not valid YAML"),
])
def test_bad_config_yaml_gives_a_clear_error(tmp_path, edit, message):
    src, _, _ = tiny_decoder_dir()
    path = tmp_path / "config.yaml"
    path.write_text(edit(open(os.path.join(src, "config.yaml")).read()))
    with pytest.raises(DecoderConfigError, match=message) as info:
        load_decoder_config(str(path))
    assert str(path) in str(info.value)


def test_real_config_has_exactly_the_keys_and_shapes_of_the_original_checkpoints():
    """The key lists of the real flow.pt / hift.pt (spec files, copied beside the torch references)."""
    from vita_jax.convert.decoder_checkpoint import decoder_rules
    from vita_jax.audio.decoder_config import DecoderConfig, FlowConfig, HiftConfig

    shapes = decoder_param_shapes(DecoderConfig(FlowConfig(), HiftConfig()))
    here = os.path.join(os.path.dirname(__file__), "torch_refs")
    for part in ("flow", "hift"):
        expected = {}
        with open(os.path.join(here, f"glm4voice-{part}-state-dict.tsv")) as f:
            for line in f:
                key, shape, _ = line.rstrip("\n").split("\t")
                expected[key] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        assert {rule.key: rule.shape for rule in decoder_rules(shapes[part])} == expected
    assert (len(expected), sum(int(np.prod(s)) for s in expected.values())) == (227, 20460591)
