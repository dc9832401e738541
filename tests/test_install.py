"""The package installs with pip into a fresh virtual environment and works from another
directory: load, forward, generate, export to the Hugging Face layout, encode and decode speech,
and every console script answers --help.

The fresh environment sees this environment's third-party packages through a path file (no
downloads: CI has no wheel cache for a second copy of JAX and torch), but not the repository:
`pip install --no-index` must find every declared dependency installed, and the package
itself is built from a copy of the repository and installed as a wheel."""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

from tests.torch_refs.decoder_checkpoint import tiny_decoder_dir
from tests.torch_refs.whisper_vq_ref import random_ref, tiny_hf_config, write_tokenizer_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSOLE_SCRIPTS = ("vita-jax-infer", "vita-jax-train", "vita-jax-convert", "vita-jax-speech-encode",
                   "vita-jax-speech-decode", "vita-jax-serve")

USE_FROM_ELSEWHERE = textwrap.dedent("""
    import sys

    import numpy as np

    import vita_jax
    from vita_jax.audio import load_decoder, load_tokenizer
    from vita_jax.configs.model import get_config

    tokenizer_dir, decoder_dir, out = sys.argv[1:]
    assert not vita_jax.__file__.startswith({repo!r}), vita_jax.__file__
    config = get_config("tiny").replace(num_mctp_modules=10)
    vita_jax.VitaAudioModel.random(config, seed=0).save_pretrained(out + "/hf", dtype="float32")
    model = vita_jax.load_pretrained(out + "/hf", progress=False)
    ids = np.array([[1, 2, 3, 4]], np.int32)
    assert model.forward(ids).logits.shape == (1, 4, model.config.vocab_size)
    generated = model.generate(ids, mode="turbo", max_new_tokens=8)
    model.save_pretrained(out + "/hf_again", dtype="float32")
    codes = load_tokenizer(tokenizer_dir).encode(np.sin(np.arange(16000) / 7.0).astype(np.float32), 16000)
    wav = load_decoder(decoder_dir).token2wav(codes)
    print("ok", generated.shape, len(codes), wav.shape)
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, bin directory) of a fresh venv with the package pip-installed from the repository."""
    root = tmp_path_factory.mktemp("install")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "third_party.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    source = root / "source"  # a copy, so that the build leaves nothing in the repository
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "runs"))
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
                           f"{source}[audio,train,serve]"], cwd=str(root), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return python, str(venv / "bin"), site


@pytest.mark.slow
def test_installed_package_holds_only_vita_jax(installed):
    _, _, site = installed
    names = set(os.listdir(site))
    assert "vita_jax" in names
    assert not names & {"conversion", "configs", "benchmarks", "tests"}, sorted(names)
    packaged = os.path.join(site, "vita_jax")
    assert os.path.isfile(os.path.join(packaged, "configs", "stage4_sft.py"))
    assert os.path.isfile(os.path.join(packaged, "data", "sample.jsonl"))


@pytest.mark.slow
def test_installed_package_works_from_another_directory(installed, tmp_path):
    python, _, _ = installed
    cfg = tiny_hf_config(layers=2, quantize_position=2)
    calibration = np.random.default_rng(0).standard_normal((1, cfg["num_mel_bins"], 400)).astype(np.float32)
    tokenizer_dir = write_tokenizer_dir(str(tmp_path / "tokenizer"), cfg, random_ref(cfg, calibration))
    script = tmp_path / "use.py"
    script.write_text(USE_FROM_ELSEWHERE.format(repo=REPO))
    done = subprocess.run([python, str(script), tokenizer_dir, tiny_decoder_dir()[0], str(tmp_path)],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok (1, 8)")
    assert os.path.isfile(tmp_path / "hf_again" / "config.json")


@pytest.mark.slow
@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_console_script_help(installed, tmp_path, script):
    _, bin_dir, _ = installed
    done = subprocess.run([os.path.join(bin_dir, script), "--help"], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--" in done.stdout  # the options are listed
