"""Greedy decoding in every mode equals a cache-free reference that follows spec section 7: every
token recomputed by a full forward from scratch over the sequence so far, read at the position
the schedule says (backbone: the newest position; module k: pair j = the backbone's newest
position of the cycle). Vanilla equals transformers' greedy generation; lossless equals Vanilla.
"""


import numpy as np
import pytest

from vita_jax import load_pretrained
from vita_jax.decode import decode
from tests.helpers.compiles import count_compiles
from tests.helpers.decode import (MAX_NEW, MODES, PROMPTS, agreeing_model, assert_rows_equal, decode_model,
                                  eos_for_different_stops, reference_decode)

@pytest.mark.parametrize("mode", MODES, ids=str)
def test_greedy_equals_cache_free_reference(mode):
    model = decode_model()
    result = decode(model, PROMPTS, mode=mode, max_new_tokens=MAX_NEW, eos_token_ids=())
    expected = [reference_decode(model, p, mode, MAX_NEW) for p in PROMPTS]
    assert_rows_equal(result, expected)
    assert result.num_tokens.tolist() == [MAX_NEW, MAX_NEW]

    eos = eos_for_different_stops(expected)
    stopped = decode(model, PROMPTS, mode=mode, max_new_tokens=20, eos_token_ids=(eos,), pad_token_id=31)
    expected = [reference_decode(model, p, mode, 20, (eos,)) for p in PROMPTS]
    assert_rows_equal(stopped, expected)
    assert stopped.num_tokens[0] != stopped.num_tokens[1]
    assert (stopped.sequences[np.argmin(stopped.num_tokens), min(stopped.num_tokens):] == 31).all()


def test_forward_counts_follow_the_schedule():
    model = decode_model()
    vanilla = decode(model, PROMPTS, mode="vanilla", max_new_tokens=MAX_NEW, eos_token_ids=())
    assert (vanilla.backbone_forwards, vanilla.module_forwards) == (MAX_NEW, [])
    # Turbo, 30 tokens: prefill (1 token) + module phase (10), then cycles of 11 until the third
    # ends the run (the first module run also took the prompt's pairs).
    turbo = decode(model, PROMPTS, mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())
    assert (turbo.backbone_forwards, turbo.module_forwards) == (3, [3] * 10)


@pytest.mark.slow
def test_lossless_equals_vanilla_in_every_row():
    model = agreeing_model()
    vanilla = decode(model, PROMPTS, mode="vanilla", max_new_tokens=MAX_NEW, eos_token_ids=())
    lossless = decode(model, PROMPTS, mode="lossless", max_new_tokens=MAX_NEW, eos_token_ids=())
    np.testing.assert_array_equal(lossless.sequences, vanilla.sequences)
    assert lossless.backbone_forwards < vanilla.backbone_forwards / 2
    acceptance = lossless.acceptance
    assert acceptance[0] > 0.5 and 0 < min(a for a in acceptance if a) < 0.5, acceptance  # full and partial
    assert all(a >= b for a, b in zip(acceptance, acceptance[1:]))
    eos = eos_for_different_stops(vanilla.sequences.tolist())
    want = decode(model, PROMPTS, mode="vanilla", max_new_tokens=20, eos_token_ids=(eos,))
    got = decode(model, PROMPTS, mode="lossless", max_new_tokens=20, eos_token_ids=(eos,))
    np.testing.assert_array_equal(got.sequences, want.sequences)
    assert got.num_tokens[0] != got.num_tokens[1]


def test_vanilla_equals_transformers_greedy(tmp_path):
    import torch

    from tests.helpers.hf_fixtures import make_qwen2_checkpoint

    torch_model = make_qwen2_checkpoint(str(tmp_path / "qwen2"), seed=4)
    model = load_pretrained(str(tmp_path / "qwen2"), progress=False)
    prompts = [[7, 1, 99, 42, 3, 250, 17], [200, 5]]
    ours = decode(model, prompts, mode="vanilla", max_new_tokens=24, eos_token_ids=())
    for row, prompt in enumerate(prompts):
        with torch.no_grad():
            hf = torch_model.generate(torch.tensor([prompt]), max_new_tokens=24, min_new_tokens=24, do_sample=False,
                                      eos_token_id=None, pad_token_id=0)
        assert ours.sequences[row].tolist() == hf[0, len(prompt):].tolist(), f"row {row}"


def test_new_prompt_of_the_same_bucket_does_not_recompile():
    model = decode_model()
    decode(model, PROMPTS, mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())
    other = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [9] * 11]
    with count_compiles() as counts:
        result = decode(model, other, mode="turbo", max_new_tokens=17, eos_token_ids=(1, 2), seed=5)
    assert result.sequences.shape[0] == 2
    assert counts.compiles == 0
