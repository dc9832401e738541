"""`param_dtype="mixed"`: float32 weights but a bfloat16 lm_head, the same logits and tokens as
float32 for a bfloat16 checkpoint (the released ones)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vita_jax
from vita_jax.configs.model import tiny
from vita_jax.model import VitaAudioModel


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bf16") / "hf")
    VitaAudioModel.random(tiny().replace(num_mctp_modules=3), seed=0).save_pretrained(path, dtype="bfloat16")
    return path


def test_mixed_keeps_only_the_lm_head_in_bfloat16(bf16_checkpoint):
    model = vita_jax.load_pretrained(bf16_checkpoint, param_dtype="mixed", progress=False)
    leaves = jax.tree_util.tree_leaves_with_path(model.params)
    dtypes = {jax.tree_util.keystr(path): leaf.dtype for path, leaf in leaves}
    narrow = {name for name, dtype in dtypes.items() if dtype != jnp.float32}
    assert narrow == {"['backbone']['lm_head']['weight']"} and dtypes[narrow.pop()] == jnp.bfloat16


def test_mixed_decodes_like_float32(bf16_checkpoint):
    mixed = vita_jax.load_pretrained(bf16_checkpoint, param_dtype="mixed", progress=False)
    full = vita_jax.load_pretrained(bf16_checkpoint, param_dtype="float32", progress=False)
    ids = np.array([[1, 5, 9, 2, 7, 3]])
    a, b = mixed.forward(ids), full.forward(ids)
    np.testing.assert_allclose(a.logits, b.logits, rtol=0, atol=1e-5)
    for x, y in zip(a.mctp_logits, b.mctp_logits):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
    for mode in ("vanilla", [1, 3]):  # [1, 3]: Turbo with this model's 3 modules
        np.testing.assert_array_equal(mixed.generate(ids, mode=mode, max_new_tokens=12, eos_token_ids=()),
                                      full.generate(ids, mode=mode, max_new_tokens=12, eos_token_ids=()))


def test_unknown_param_dtype_is_named(bf16_checkpoint):
    with pytest.raises(ValueError, match="unknown param_dtype 'int8'; choose one of float32, bfloat16, mixed"):
        vita_jax.load_pretrained(bf16_checkpoint, param_dtype="int8", progress=False)
