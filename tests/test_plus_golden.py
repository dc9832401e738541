"""VITA-Audio-Plus against the golden data of the original PyTorch code (the shared fixture
`vita-audio-plus-small`, laid beside the repository as CI does; VITA_PLUS_FIXTURE overrides):
features, encoder, adapter, padded batch, spliced embeddings, backbone and MCTP logits, the
original's greedy generate, and a bit-identical export."""

import functools
import json

import jax
import numpy as np
import pytest

from tests.helpers.plus import golden, golden_available
from vita_jax.convert.safetensors_io import SafetensorsReader
from vita_jax.plus import load_plus

pytestmark = pytest.mark.skipif(not golden_available(), reason="shared fixture vita-audio-plus-small not found")


@functools.lru_cache(maxsize=None)
def model():
    return load_plus(golden("plus"), param_dtype="float32", progress=False)


@functools.lru_cache(maxsize=None)
def expected():
    with open(golden("expected.json")) as f:
        return json.load(f)


def ref(name):
    return np.load(golden("ref", f"{name}.npy"))


def wav(i):
    return np.load(golden("wav", f"speech{i}.npy"))


def rel(got, want):
    return np.abs(np.asarray(got) - want).max() / np.abs(want).max()


def test_token_ids_come_from_the_tokenizer_files():
    tokens, want = model().tokens, expected()["token_ids"]
    assert (tokens.begin_of_audio, tokens.end_of_audio, tokens.context_of_audio, tokens.audio_tag, tokens.audio_0,
            tokens.num_audio_codes) == (want["begin_of_audio"], want["end_of_audio"], want["context_of_audio"],
                                        want["audio_tag"], want["audio_0"], want["num_audio_codes"])
    assert tokens.eos_ids == (want["im_end"], want["endoftext"])


@pytest.mark.parametrize("i", [0, 1])
def test_features_encoder_and_adapter(i):
    m = model()
    features = m.features(wav(i))
    assert np.abs(features - ref(f"features_{i}")).max() < 1e-4
    encoder = jax.jit(lambda p, f, n: m.module.apply({"params": p}, f.astype("bfloat16").astype("float32"), n,
                                                     method=lambda mod, f, n: mod.audio_encoder(f, n)))
    encoded, _ = encoder(m.params, ref(f"features_{i}")[None], np.array([len(features)]))
    assert rel(encoded[0], ref(f"encoder_out_{i}")) < 1e-4
    adapted = m.encode(wav(i))
    assert adapted.shape == ref(f"adapter_out_{i}").shape
    assert rel(adapted, ref(f"adapter_out_{i}")) < 1e-4


def test_padded_batch_of_two_audios():
    m = model()
    rows, out_lengths = m.encode_batch([wav(0), wav(1)])
    np.testing.assert_array_equal(out_lengths, ref("encoder_lens_batched"))
    want = ref("adapter_out_batched")
    for a, n in enumerate(ref("encoder_lens_batched")):
        assert rel(rows[a, :n], want[a, :n]) < 1e-4


def test_prompt_expansion_splice_and_logits():
    m = model()
    ids = m.audio_prompt(expected()["prompt_ids_before_expansion"], [wav(0), wav(1)])
    np.testing.assert_array_equal(ids, ref("input_ids"))
    features, lengths = m.audio_batch([wav(0), wav(1)])
    embeddings = m.module.apply({"params": m.params}, np.array([ids]), features, lengths, method="prompt_embeddings")
    assert rel(embeddings[0], ref("inputs_embeds")) < 1e-4
    out = m.forward(np.array([ids]), audios=[wav(0), wav(1)])
    assert rel(out.hidden[0], ref("hidden_backbone")) < 1e-3
    assert rel(out.logits[0], ref("logits")) < 1e-3
    np.testing.assert_array_equal(np.argmax(out.logits[0], -1), ref("logits").argmax(-1))
    for k in range(3):
        want = ref(f"mctp_logits_{k}")
        got = np.asarray(out.mctp_logits[k][0, :len(want)])
        assert rel(got, want) < 1e-3
        np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))


def test_greedy_generate_equals_the_original():
    spec = expected()["generate"]
    got = model().generate([spec["prompt_ids"]], audios=[wav(0), wav(1)], mode=spec["mode"],
                           max_new_tokens=len(spec["generated"]))
    assert got[0].tolist() == spec["generated"]
    assert ref("generate_ids")[len(spec["prompt_ids"]):].tolist() == spec["generated"]


def test_export_reloads_bit_identically(tmp_path):
    source = load_plus(golden("plus"), progress=False)  # bf16 as stored
    source.save(str(tmp_path / "ours"))
    ours = load_plus(str(tmp_path / "ours"), progress=False)
    ours.save_pretrained(str(tmp_path / "hf"), dtype="bfloat16")
    original = SafetensorsReader(golden("plus", "model.safetensors"))
    exported = SafetensorsReader(str(tmp_path / "hf" / "model.safetensors"))
    assert sorted(exported.keys()) == sorted(original.keys())
    for key in original.keys():
        a, b = original.read(key), exported.read(key)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), key
    with open(golden("plus", "config.json")) as f, open(tmp_path / "hf" / "config.json") as g:
        want, got = json.load(f), json.load(g)
    assert got["model_type"] == "qwen2_mtp_sensevoice" and got["architectures"] == want["architectures"]
    assert {k: got[k] for k in want if k != "transformers_version"} == \
           {k: want[k] for k in want if k != "transformers_version"}
    for name in ("am.mvn", "added_tokens.json", "config.yaml", "generation_config.json"):
        assert (tmp_path / "hf" / name).read_bytes() == open(golden("plus", name), "rb").read(), name
