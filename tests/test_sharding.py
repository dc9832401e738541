"""The forward on a (data=2, fsdp=2, tensor=2) mesh of 8 fake CPU devices equals the single-device forward."""

import jax
import numpy as np
import pytest

from vita_jax.configs.model import tiny
from vita_jax import VitaAudioModel
from vita_jax.sharding import batch_sharding, make_mesh, shard_model_params


@pytest.mark.parametrize("scan_layers", [False, True])
def test_sharded_forward_matches_single_device(scan_layers):
    if jax.device_count() < 8:
        pytest.fail("needs XLA_FLAGS=--xla_force_host_platform_device_count=8 (set in tests/conftest.py)")
    cfg = tiny().replace(scan_layers=scan_layers)
    model = VitaAudioModel.random(cfg, seed=5)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (4, 10)).astype(np.int32)
    want = model.forward(ids)
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    sharded = shard_model_params(model, mesh)
    q_kernel = sharded["backbone"]["layers"]["layer"] if scan_layers else sharded["backbone"]["layers_0"]
    assert len(q_kernel["self_attn"]["q_proj"]["kernel"].sharding.device_set) == 8
    got = VitaAudioModel(cfg, sharded).forward(jax.device_put(ids, batch_sharding(mesh)))
    np.testing.assert_allclose(np.asarray(got.logits), np.asarray(want.logits), atol=1e-5)
    for k in range(cfg.num_mctp_modules):
        np.testing.assert_allclose(np.asarray(got.mctp_logits[k]), np.asarray(want.mctp_logits[k]), atol=1e-5)


def test_mesh_shape_errors_are_clear():
    with pytest.raises(ValueError, match="needs 16 devices, 8 available"):
        make_mesh(data=2, fsdp=4, tensor=2)
