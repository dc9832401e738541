"""Mode lists, the static plan, and bad input rejected before anything compiles."""

import functools
import math

import pytest

from vita_jax.configs.model import tiny
from vita_jax import VitaAudioModel
from vita_jax.decode import decode
from vita_jax.decode.decoder import bucket, prompt_bucket, prompt_buckets
from tests.helpers.compiles import count_compiles
from vita_jax.decode.schedule import Cycle, parse_mode, plan_for


def test_presets_and_custom_lists():
    assert parse_mode("Vanilla", 10) == ((math.inf, 0),)
    assert parse_mode("turbo", 10) == ((1, 10),)
    assert parse_mode([1, 4, 3, 8, 4, 10], 10) == parse_mode("balance", 10)
    assert parse_mode(["inf", 0], 0) == ((math.inf, 0),)


def test_turbo_plan_matches_section_7():
    plan = plan_for("turbo", 10, 16)
    # cycle 1: the prefill is its backbone step; each module's first run takes the P prompt pairs
    assert plan.transient == (Cycle(0, 0, (16,) * 10),)
    # then one backbone forward over 11 tokens and ten module forwards over 11 pairs each
    assert plan.steady == Cycle(11, 0, (11,) * 10)
    assert plan_for("boost", 10, 16).steady == Cycle(11, 3, (14,) * 10)
    assert plan_for("vanilla", 10, 16).steady == Cycle(1, 0, ())
    # Balance: modules 4..9 first run in later cycles (over the prompt's pairs too), then 14 pairs
    balance = plan_for("balance", 10, 16)
    assert balance.transient[1].module_chunks == (7, 7, 7, 7, 23, 23, 23, 23)
    assert balance.steady == Cycle(11, 3, (14,) * 10)


def test_cache_is_not_sized_by_the_modules_prompt_wide_first_chunk():
    """The modules' first run reads the prompt from slot 0, so the cache needs the prompt bucket, the
    output bucket and one steady chunk (+ margins), not another prompt bucket."""
    from vita_jax.decode.decoder import prepare

    model = VitaAudioModel.random(tiny().replace(num_mctp_modules=10), seed=0)
    turbo = prepare(model, [[1] * 100], mode="turbo", max_new_tokens=128)
    assert plan_for("turbo", 10, 128).transient_tokens == 128 + 1 + 10
    assert turbo.spec.slots == 128 + 128 + 11 + 10 + 2  # was 128 + 128 + 128 + 10 + 2


@pytest.mark.parametrize("mode, message", [
    ("fast", "unknown mode 'fast'"),
    ([1, 2, 3], "even, non-zero length"),
    ([], "even, non-zero length"),
    ([1, -2], "is negative"),
    ([0, 2], "must be >= 1"),
    ([1, 2.5], "is not an integer"),
    ([1, 4], "asks for 4 module steps but the model has 3"),
    (["inf", 0, 1, 2], "only allowed in the last pair"),
    (7, "preset name or a list"),
])
def test_malformed_modes(mode, message):
    with pytest.raises(ValueError, match=message):
        parse_mode(mode, 3)


def test_buckets():
    assert [bucket(n) for n in (1, 16, 17, 32, 33, 100)] == [16, 16, 32, 32, 64, 128]
    assert [prompt_bucket(n) for n in (1, 16, 17, 24, 25, 96, 97, 129)] == [16, 16, 24, 24, 32, 96, 128, 192]
    assert all(0 <= prompt_bucket(n) - n < prompt_bucket(n) / 3 for n in range(16, 3000))  # < 1/3 padding
    assert prompt_buckets(100) == [16, 24, 32, 48, 64, 96] and prompt_buckets(15) == []
    assert {prompt_bucket(n) for n in range(1, 2049)} == set(prompt_buckets(2048))  # what the server compiles ahead


@functools.lru_cache(maxsize=None)
def _never_decoded_model():
    return VitaAudioModel.random(tiny(), seed=0)


@pytest.mark.parametrize("prompt, options, message", [
    ([[]], {}, "prompt 0 is empty"),
    ([], {}, "input_ids is empty"),
    ([[1, 2], [3, 256]], {}, r"prompt 1: token ids outside the vocabulary \[0, 256\)"),
    ([[1, -1]], {}, "outside the vocabulary"),
    ([[1] * 500], {"max_new_tokens": 20}, "prompt of 500 tokens \\+ max_new_tokens 20 exceeds the cache of 512"),
    ([[1] * 10], {"max_new_tokens": 10, "max_cache_length": 16}, "exceeds the cache of 16"),
    ([[1, 2]], {"mode": "hyper"}, "unknown mode 'hyper'"),
    ([[1, 2]], {"mode": [1, 3, 2]}, "even, non-zero length"),
    ([[1, 2]], {"mode": [1, -3]}, "is negative"),
    ([[1, 2]], {"mode": [1, 10]}, "asks for 10 module steps but the model has 3"),
    ([[1, 2]], {"max_new_tokens": 0}, "max_new_tokens must be an integer >= 1"),
    ([[1, 2]], {"mode": "lossless", "num_draft": 4}, r"num_draft 4 must be in \[1, 3\]"),
    ([[1, 2]], {"mode": "lossless", "do_sample": True}, "lossless mode verifies greedy tokens"),
    ([[1, 2]], {"do_sample": True, "temperature": 0.0}, "temperature must be > 0"),
    ([[1, 2]], {"do_sample": True, "top_p": 1.5}, r"top_p must be in \(0, 1\]"),
])
def test_bad_input_fails_before_compiling(prompt, options, message):
    model = _never_decoded_model()
    with count_compiles() as counts, pytest.raises(ValueError, match=message):
        decode(model, prompt, **{"mode": "vanilla", **options})
    assert counts.traces == 0 and counts.compiles == 0  # nothing was traced or compiled
