"""Stage configs reproduce the curriculum table; module initialisation when a stage adds modules;
a stage started from a Hugging Face checkpoint and exported back; a NaN loss stops the run."""

import jax
import numpy as np
import pytest

from vita_jax.configs import stage1_alignment, stage2_single_mctp, stage3_multi_mctp, stage4_sft
from vita_jax.configs.model import tiny
from tests.helpers.train import TINY_VOCAB, tiny_run_config
from vita_jax import VitaAudioModel, load_pretrained
from vita_jax.param_layout import convert_layer_layout
from vita_jax.train.grow_model import grow_mctp_modules, resize_vocab
from vita_jax.train.loop import TrainingDiverged, train

# stage: (trainable groups, K, {group: LR}, weight decay, steps, seq len) -- spec section 6
CURRICULUM = {
    stage1_alignment: (("backbone",), 0, {"backbone": 6e-5}, 0.0, 8000, 8192),
    stage2_single_mctp: (("mctp",), 1, {"mctp": 1e-3}, 0.0, 4000, 8192),
    stage3_multi_mctp: (("mctp",), 10, {"mctp": 1e-3}, 0.0, 8000, 8192),
    stage4_sft: (("backbone", "mctp"), 10, {"backbone": 5e-5, "mctp": 5e-4}, 0.1, 4000, 2048),
}


@pytest.mark.parametrize("stage", CURRICULUM, ids=lambda m: m.__name__.split(".")[-1])
def test_stage_configs_reproduce_the_curriculum(stage):
    trainable, k, lr, wd, steps, seq_len = CURRICULUM[stage]
    cfg = stage.get_config()
    assert tuple(cfg.optim.trainable) == trainable and cfg.model.num_mctp_modules == k
    assert dict(cfg.optim.lr) == lr and cfg.optim.weight_decay == wd
    assert cfg.train.steps == steps and cfg.data.seq_len == seq_len and cfg.train.global_batch_size == 16
    assert (cfg.optim.b1, cfg.optim.b2, cfg.optim.eps, cfg.optim.grad_clip, cfg.optim.warmup_ratio) == (
        0.9, 0.95, 1e-8, 1.0, 0.03)
    assert cfg.model.hidden_size == 3584 and cfg.model.num_layers == 28 and cfg.model.vocab_size == 168072
    assert stage.get_config("tiny").model.hidden_size == 64


@pytest.mark.parametrize("scan_layers", [False, True])
def test_new_modules_are_initialised_from_the_layer_before(scan_layers):
    cfg = tiny().replace(num_mctp_modules=0)
    params = VitaAudioModel.random(cfg, seed=0).params
    params = convert_layer_layout(params, cfg.num_layers, scan_layers)
    last_layer = params["backbone"][f"layers_{cfg.num_layers - 1}"] if not scan_layers else jax.tree.map(
        lambda x: x[-1], params["backbone"]["layers"]["layer"])
    one = grow_mctp_modules(params, cfg, 1, jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, one["mctp_0"]["layer"], last_layer)
    assert float(np.abs(one["mctp_0"]["proj"]["kernel"]).max()) > 0  # freshly initialised
    assert one["mctp_0"]["proj"]["kernel"].shape == (2 * cfg.hidden_size, cfg.hidden_size)
    np.testing.assert_array_equal(one["mctp_0"]["embed_norm"]["weight"], 1.0)
    one["mctp_0"] = jax.tree.map(lambda x: x + 1.0, one["mctp_0"])  # as if stage 2 had trained it
    three = grow_mctp_modules(one, cfg, 3, jax.random.key(2))
    for k in (1, 2):
        jax.tree.map(np.testing.assert_array_equal, three[f"mctp_{k}"], one["mctp_0"])
    with pytest.raises(ValueError, match="checkpoint has 3 MCTP modules, the stage config asks for 1"):
        grow_mctp_modules(three, cfg, 1, jax.random.key(3))


def test_resize_vocab_keeps_old_rows_and_adds_mean_rows():
    params = VitaAudioModel.random(tiny(), seed=0).params
    grown = resize_vocab(params, 260)
    table = np.asarray(params["backbone"]["embed_tokens"]["embedding"])
    new = np.asarray(grown["backbone"]["embed_tokens"]["embedding"])
    np.testing.assert_array_equal(new[:256], table)
    np.testing.assert_allclose(new[256:], np.broadcast_to(table.mean(0), (4, table.shape[1])), atol=1e-8)
    assert grown["backbone"]["lm_head"]["weight"].shape == (260, 64)


def test_stage_from_hugging_face_checkpoint_and_export_back(tmp_path):
    from tests.helpers.hf_fixtures import make_qwen2_checkpoint

    make_qwen2_checkpoint(str(tmp_path / "hf"))
    original = load_pretrained(str(tmp_path / "hf"), progress=False)
    cfg = tiny_run_config(stage2_single_mctp, tmp_path / "run", steps=2)
    cfg.init.checkpoint = str(tmp_path / "hf")
    cfg.export.update(enabled=True, hf_dir=str(tmp_path / "out_hf"), dtype="float32")
    result = train(cfg, progress=False)
    exported = load_pretrained(str(tmp_path / "out_hf"), progress=False)
    assert exported.config.num_mctp_modules == 1 and exported.config.vocab_size == TINY_VOCAB
    assert exported.hf_config["model_type"] == "qwen2_mtp"
    old, new = original.params["backbone"], exported.params["backbone"]
    np.testing.assert_array_equal(new["embed_tokens"]["embedding"][:256], old["embed_tokens"]["embedding"])
    for a, b in zip(jax.tree.leaves(old["layers_1"]), jax.tree.leaves(new["layers_1"])):
        np.testing.assert_array_equal(a, b)  # stage 2 freezes the backbone
    assert not np.array_equal(new["layers_1"]["mlp"]["down_proj"]["kernel"],
                              exported.params["mctp_0"]["layer"]["mlp"]["down_proj"]["kernel"])  # module trained
    own = load_pretrained(result.final_dir)
    np.testing.assert_array_equal(own.params["mctp_0"]["proj"]["kernel"], exported.params["mctp_0"]["proj"]["kernel"])


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path):
    cfg = tiny_run_config(stage1_alignment, tmp_path, steps=6)
    cfg.optim.update(lr={"backbone": 1e30}, warmup_ratio=0.01, grad_clip=1e30)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss .* at step 3; .*Last good checkpoint: step 2"):
        train(cfg, progress=False)
