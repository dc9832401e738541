"""The memory-efficient attention paths equal the reference that stores the scores (packed rows, GQA, padding)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vita_jax.model_config import ModelConfig
from vita_jax.nn import attention
from vita_jax.nn.attention import PackedCausal, dot_product_attention, resolve_attention


def packed_segments(rng, rows, length):
    """Rows of 1-4 samples of random lengths, then padding (segment 0)."""
    segs = np.zeros((rows, length), np.int32)
    for r in range(rows):
        used, s = 0, 1
        while used < length - 4 and s <= 4:
            n = int(rng.integers(2, length // 2))
            segs[r, used:used + n] = s
            used, s = used + n, s + 1
    return jnp.asarray(segs)


@pytest.mark.parametrize("length", [20, 32])  # one block; 4 x 4 blocks of 8
def test_chunked_attention_equals_reference_forward_and_backward(length, monkeypatch):
    monkeypatch.setattr(attention, "CHUNK", 8)
    rng = np.random.default_rng(0)
    heads, kv_heads, dim = 4, 2, 8
    q, k, v, cot = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in
                    [(2, length, heads, dim), (2, length, kv_heads, dim), (2, length, kv_heads, dim),
                     (2, length, heads, dim)])
    segments = packed_segments(rng, 2, length)
    real = np.asarray(segments != 0)[:, :, None, None]

    def loss(q, k, v, impl):  # padding queries' outputs are never used: leave them out
        out = dot_product_attention(q, k, v, PackedCausal(segments), impl)
        return jnp.sum(jnp.where(real, out * cot, 0.0)), out

    (want, want_out), want_grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(q, k, v, "xla")
    (got, got_out), got_grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True),
                                        static_argnums=3)(q, k, v, "chunked")
    np.testing.assert_allclose(np.where(real, got_out, 0), np.where(real, want_out, 0), rtol=1e-5, atol=1e-6)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_attention_names_resolve_by_backend_and_unknown_names_fail():
    assert resolve_attention("auto", "tpu") == "splash"
    assert resolve_attention("auto", "gpu") == "cudnn"
    assert resolve_attention("auto", "cpu") == "chunked"
    assert resolve_attention("xla", "tpu") == "xla"
    with pytest.raises(ValueError, match="unknown attention 'flash'; choose one of auto, xla, chunked"):
        ModelConfig(attention="flash")
    with pytest.raises(ValueError, match="unknown remat_policy 'some'; choose one of none, full, minimal"):
        ModelConfig(remat_policy="some")
    assert ModelConfig.from_dict({"remat": True}).remat_policy == "full"
    assert ModelConfig.from_dict({"remat": False}).remat_policy == "none"
