"""Shared fixtures of the speech-tokenizer tests: real speech from espeak-ng, tiny checkpoints."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from vita_jax.audio.wav_io import load_audio
from vita_jax.convert.rules import DictSource, import_tree
from vita_jax.convert.tokenizer_checkpoint import encoder_keys, tokenizer_rules


def espeak_speech(tmp_dir, text="The quick brown fox jumps over the lazy dog.", name="speech.wav"):
    """Synthesise `text` with espeak-ng (22.05 kHz wav); return (path, 16 kHz float32 waveform)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required by the speech-tokenizer tests (apt-get install espeak-ng)")
    path = os.path.join(tmp_dir, name)
    subprocess.run(["espeak-ng", "-w", path, text], check=True, capture_output=True)
    return path, load_audio(path)


def tiled(wav, n_samples):
    """`wav` repeated to exactly `n_samples` samples."""
    return np.resize(wav, n_samples).astype(np.float32)


def reference_features(segments, return_tensors="np"):
    """transformers' WhisperFeatureExtractor(feature_size=128) as GLM-4-Voice calls it on the
    segments of a batch: (input_features [B, 128, T], attention_mask [B, T])."""
    from transformers import WhisperFeatureExtractor

    out = WhisperFeatureExtractor(feature_size=128)(
        segments,
        sampling_rate=16000,
        return_tensors=return_tensors,
        padding="longest",
        pad_to_multiple_of=1280,
        return_attention_mask=True,
    )
    return out["input_features"], out["attention_mask"]


def speech_pair(tmp_dir):
    """(test speech path, its 16 kHz waveform, calibration speech waveform with other words)."""
    path, speech = espeak_speech(tmp_dir)
    _, calibration = espeak_speech(tmp_dir, "Calibration speech, different words from the test sentence.", "cal.wav")
    return path, speech, calibration


def encoder_params(state_dict, config):
    """WhisperVQEncoder params from a torch reference's state dict, through the converter's rules."""
    source = encoder_keys(DictSource(state_dict, "reference state dict"), config)
    return import_tree(tokenizer_rules(config), source, "config.json")["params"]

