"""Plus checkpoints: export to the Hugging Face layout and this project's format reload bit for
bit (through the `llm-to-hf` / `llm-to-jax` commands too); bad checkpoints and bad calls give one
clear error naming the file, key or count."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from tests.helpers.plus import TOKENS, speech, tiny_plus, tokenizer_files
from vita_jax.audio.wav_io import AudioLoadError
from vita_jax.cli.convert import main as convert_main
from vita_jax.convert.hf_checkpoint import CheckpointError
from vita_jax.convert.safetensors_io import SafetensorsReader, write_safetensors
from vita_jax.plus import load_plus
from vita_jax.plus.frontend import CmvnError
from vita_jax.plus.model import AudioPromptError


def assert_same_params(a, b):
    flat_a, flat_b = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (path, x), (_, y) in zip(flat_a, flat_b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), jax.tree_util.keystr(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny random Plus model written as a Hugging Face folder (float32) with its side files."""
    model = tiny_plus()
    model.side_files_dir = tokenizer_files(str(tmp_path_factory.mktemp("side")))
    out = str(tmp_path_factory.mktemp("plus") / "hf")
    model.save_pretrained(out, dtype="float32")
    return model, out


def test_hf_export_and_own_format_reload_bit_identically(exported, tmp_path):
    model, hf_dir = exported
    with open(os.path.join(hf_dir, "config.json")) as f:
        config = json.load(f)
    assert config["model_type"] == "qwen2_mtp_sensevoice" and config["num_nextn_predict_layers"] == 10
    keys = SafetensorsReader(os.path.join(hf_dir, "model.safetensors")).keys()
    assert "model.audio_model.model.encoder.encoders0.0.self_attn.fsmn_block.weight" in keys
    assert "model.audio_projection.mlp.2.weight" in keys
    loaded = load_plus(hf_dir, progress=False)
    assert_same_params(loaded.params, model.params)
    assert loaded.tokens == TOKENS and loaded.audio_config == model.audio_config
    convert_main(["llm-to-jax", "--hf-dir", hf_dir, "--out", str(tmp_path / "ours")])
    ours = load_plus(str(tmp_path / "ours"))
    assert_same_params(ours.params, model.params)
    convert_main(["llm-to-hf", "--ckpt", str(tmp_path / "ours"), "--out", str(tmp_path / "again"),
                  "--dtype", "float32", "--max-shard-size", "200KB"])
    again = tmp_path / "again"
    assert (again / "model.safetensors.index.json").is_file() and (again / "am.mvn").is_file()
    assert_same_params(load_plus(str(again), progress=False).params, model.params)
    audio = speech(0.4)
    np.testing.assert_array_equal(ours.encode(audio), model.encode(audio))


def _copy_without(src, dst, drop=(), drop_keys=()):
    shutil.copytree(src, dst)
    for name in drop:
        os.remove(os.path.join(dst, name))
    if drop_keys:
        reader = SafetensorsReader(os.path.join(src, "model.safetensors"))
        keep = [k for k in reader.keys() if not k.startswith(drop_keys)]
        write_safetensors(os.path.join(dst, "model.safetensors"),
                          [(k, reader.shape(k), reader.dtype(k)) for k in keep], reader.read)
    return str(dst)


def test_bad_checkpoints_are_named(exported, tmp_path):
    _, hf_dir = exported
    with pytest.raises(CmvnError, match=r"am\.mvn"):
        load_plus(_copy_without(hf_dir, tmp_path / "no_mvn", drop=["am.mvn"]), progress=False)
    with pytest.raises(CheckpointError, match="missing the audio weights.*model.audio_model"):
        load_plus(_copy_without(hf_dir, tmp_path / "no_audio", drop_keys=("model.audio_model.",)), progress=False)
    with pytest.raises(CheckpointError, match="missing the audio weights.*model.audio_projection"):
        load_plus(_copy_without(hf_dir, tmp_path / "no_adapter", drop_keys=("model.audio_projection.",)),
                  progress=False)
    broken = _copy_without(hf_dir, tmp_path / "no_context")
    with open(os.path.join(broken, "added_tokens.json")) as f:
        names = json.load(f)
    del names["<|context_of_audio|>"]
    with open(os.path.join(broken, "added_tokens.json"), "w") as f:
        json.dump(names, f)
    with pytest.raises(ValueError, match=r"added_tokens.json: no token '<\|context_of_audio\|>'"):
        load_plus(broken, progress=False)
    wrong = _copy_without(hf_dir, tmp_path / "wrong_type")
    with open(os.path.join(wrong, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(wrong, "config.json"), "w") as f:
        json.dump({**config, "model_type": "qwen2_mtp"}, f)
    with pytest.raises(ValueError, match="config.json: model_type 'qwen2_mtp' is not a VITA-Audio-Plus checkpoint"):
        load_plus(wrong, progress=False)


def test_placeholders_and_audios_must_agree():
    model = tiny_plus()
    one = model.audio_prompt([5, TOKENS.audio_tag, 6], [speech(0.3)])
    two = model.audio_prompt([5, TOKENS.audio_tag, 6, TOKENS.audio_tag], [speech(0.3), speech(0.5)])
    with pytest.raises(AudioPromptError, match="hold 2 run.* but 1 audio"):
        model.forward(np.array([two]), audios=[speech(0.3)])
    with pytest.raises(AudioPromptError, match="hold 1 run.* but 2 audio"):
        model.generate([one], audios=[speech(0.3), speech(0.5)], max_new_tokens=2)
    with pytest.raises(AudioPromptError, match="hold 1 run.* but 0 audio"):
        model.generate([one], max_new_tokens=2)
    with pytest.raises(AudioPromptError, match=r"run 0 \(row 0, positions 2\.\.10\) has 9 tokens but audios\[0\] "
                                               r"gives T \+ 4 = 12"):
        model.forward(np.array([one]), audios=[speech(0.5)])
    with pytest.raises(AudioPromptError, match="more <|audio|> tags than the 1 audio"):
        model.audio_prompt([TOKENS.audio_tag, TOKENS.audio_tag], [speech(0.3)])
    with pytest.raises(AudioLoadError, match=r"audios\[0\]: the audio signal contains NaN"):
        model.forward(np.array([one]), audios=[np.full(4800, np.nan, np.float32)])
    with pytest.raises(AudioLoadError, match=r"audios\[0\]: the audio signal is empty"):
        model.encode(np.zeros(0, np.float32))
    with pytest.raises(AudioLoadError, match="sample_rate must be a positive integer"):
        model.encode(speech(0.3), sample_rate=16000.0)
    with pytest.raises(AudioLoadError, match="must be a list"):
        model.forward(np.array([one]), audios=speech(0.3))
