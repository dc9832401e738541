"""Cache-aware forwards fed chunk by chunk equal the full forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vita_jax.configs.model import tiny
from vita_jax import VitaAudioModel
from vita_jax.nn.kv_cache import init_backbone_cache, init_mctp_cache

TOL = 1e-4


def chunks_with_padding(tokens, sizes, chunk):
    """Split [B, T] into fixed-size chunks holding `sizes[i]` valid tokens each (rest padding)."""
    start = 0
    for size in sizes:
        part = np.zeros((tokens.shape[0], chunk), tokens.dtype)
        part[:, :size] = tokens[:, start:start + size]
        valid = np.zeros((tokens.shape[0], chunk), bool)
        valid[:, :size] = True
        yield start, size, part, valid
        start += size


@pytest.mark.parametrize("scan_layers", [False, True])
def test_backbone_chunks_equal_full_forward(scan_layers):
    cfg = tiny().replace(scan_layers=scan_layers)
    model = VitaAudioModel.random(cfg, seed=1)
    tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 15)).astype(np.int32)
    full = np.asarray(model.forward(tokens).hidden)
    step = jax.jit(lambda p, t, v, c: model.module.apply({"params": p}, t, v, c, method="backbone_chunk"))
    cache = init_backbone_cache(cfg, batch=2, slots=24)
    for start, size, part, valid in chunks_with_padding(tokens, [6, 1, 4, 4], chunk=6):
        hidden, cache = step(model.params, jnp.asarray(part), jnp.asarray(valid), cache)
        assert np.abs(np.asarray(hidden)[:, :size] - full[:, start:start + size]).max() <= TOL
    assert np.asarray(cache["length"]).tolist() == [15, 15]


def test_backbone_rows_of_different_lengths():
    cfg = tiny()
    model = VitaAudioModel.random(cfg, seed=2)
    rng = np.random.default_rng(1)
    row_a, row_b = rng.integers(0, cfg.vocab_size, 5), rng.integers(0, cfg.vocab_size, 3)
    step = jax.jit(lambda p, t, v, c: model.module.apply({"params": p}, t, v, c, method="backbone_chunk"))
    cache = init_backbone_cache(cfg, batch=2, slots=16)
    prompt = np.zeros((2, 5), np.int32)
    prompt[0], prompt[1, :3] = row_a, row_b
    valid = np.array([[True] * 5, [True] * 3 + [False] * 2])
    _, cache = step(model.params, jnp.asarray(prompt), jnp.asarray(valid), cache)
    new = rng.integers(0, cfg.vocab_size, (2, 1)).astype(np.int32)
    hidden, cache = step(model.params, jnp.asarray(new), jnp.ones((2, 1), bool), cache)
    for row, prefix in enumerate([row_a, row_b]):
        full = np.asarray(model.forward(np.concatenate([prefix, new[row]])[None]).hidden)[0, -1]
        assert np.abs(np.asarray(hidden)[row, 0] - full).max() <= TOL


def test_mctp_chunks_equal_full_forward():
    cfg = tiny()
    model = VitaAudioModel.random(cfg, seed=3)
    length = 14
    tokens = np.random.default_rng(4).integers(0, cfg.vocab_size, (1, length)).astype(np.int32)
    out = model.forward(tokens)
    step = jax.jit(lambda p, t, h, v, c, k: model.module.apply({"params": p}, k, t, h, v, c, method="mctp_chunk"),
                   static_argnums=5)
    for k in range(cfg.num_mctp_modules):
        pairs = length - k - 1
        prev = np.asarray(out.hidden if k == 0 else out.mctp_hidden[k - 1])
        want = np.asarray(out.mctp_hidden[k])
        pair_tokens = tokens[:, k + 1:]  # x_{j+k+1} for j = 0..pairs-1
        cache = init_mctp_cache(cfg, batch=1, slots=16)
        start, sizes = 0, iter([4, 1, 5, 3] * 4)
        while start < pairs:
            size = min(next(sizes), pairs - start)
            part = np.zeros((1, 5), np.int32)
            hidden_part = np.zeros((1, 5, cfg.hidden_size), np.float32)
            part[:, :size] = pair_tokens[:, start:start + size]
            hidden_part[:, :size] = prev[:, start:start + size]
            valid = np.arange(5)[None] < size
            got, cache = step(model.params, jnp.asarray(part), jnp.asarray(hidden_part), jnp.asarray(valid), cache, k)
            assert np.abs(np.asarray(got)[:, :size] - want[:, start:start + size]).max() <= TOL, f"module {k}"
            start += size
        assert int(cache["length"][0]) == start
