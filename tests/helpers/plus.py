"""Shared pieces of the VITA-Audio-Plus tests: small data copied from the golden fixture, a tiny
random Plus model with its tokenizer / am.mvn side files, and the shared fixture's location."""

import functools
import json
import os

import jax
import numpy as np

from vita_jax.configs.model import tiny
from vita_jax.convert.plus_checkpoint import PlusTokens
from vita_jax.plus.frontend import Frontend
from vita_jax.plus.model import PlusModel
from vita_jax.plus.sensevoice import SenseVoiceConfig

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "vita_audio_plus")
CMVN = os.path.join(DATA, "am.mvn")
# The golden fixture of the original code (beside the repository, as the CI lays out shared/).
GOLDEN = os.environ.get("VITA_PLUS_FIXTURE", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                                          "fixtures", "vita-audio-plus-small"))

# A 64-token vocabulary: text 0..39, the audio specials, then 20 audio codes.
TOKENS = PlusTokens(begin_of_audio=40, end_of_audio=41, context_of_audio=42, audio_tag=43, audio_0=44,
                    num_audio_codes=20, eos_ids=(39,))
TINY_AUDIO = SenseVoiceConfig(output_size=32, attention_heads=4, linear_units=48, num_blocks=3, tp_blocks=2)


def tokenizer_files(folder, tokens=TOKENS):
    """added_tokens.json for `tokens` plus the am.mvn: the side files a Plus folder needs."""
    os.makedirs(folder, exist_ok=True)
    names = {"<|im_end|>": tokens.eos_ids[0], "<|begin_of_audio|>": tokens.begin_of_audio,
             "<|end_of_audio|>": tokens.end_of_audio, "<|context_of_audio|>": tokens.context_of_audio,
             "<|audio|>": tokens.audio_tag}
    names.update({f"<|audio_{i}|>": tokens.audio_0 + i for i in range(tokens.num_audio_codes)})
    with open(os.path.join(folder, "added_tokens.json"), "w") as f:
        json.dump(names, f)
    with open(CMVN) as src, open(os.path.join(folder, "am.mvn"), "w") as dst:
        dst.write(src.read())
    return folder


def _rescaled(params, rule):
    return jax.tree_util.tree_map_with_path(lambda path, x: rule(jax.tree_util.keystr(path), x), params)


@functools.lru_cache(maxsize=None)
def tiny_plus(num_mctp_modules=10, seed=1):
    """A random Plus model: tiny LLM (vocab 64, K modules), 3+2-layer encoder 32 wide. The LLM is
    scaled as in test_decode_exact (embedding / lm_head x10, layers x1.5) so that greedy outputs
    wander; the adapter x4 so that the audio moves the logits. The lm_head rows of the audio
    specials (ids 40..43) are zero, so that, like a trained model, it never emits a placeholder."""
    config = tiny().replace(vocab_size=64, num_mctp_modules=num_mctp_modules)
    model = PlusModel.random(config, TINY_AUDIO, Frontend.from_file(CMVN), TOKENS, seed=seed)

    def rule(name, x):
        if "norm" in name or "audio_encoder" in name:
            return x
        if "audio_adapter" in name:
            return x * 4.0
        return x * (10.0 if "embed_tokens" in name or "lm_head" in name else 1.5)

    params = _rescaled(model.params, rule)
    head = params["backbone"]["lm_head"]["weight"]
    params["backbone"]["lm_head"]["weight"] = head.at[TOKENS.begin_of_audio:TOKENS.audio_0].set(0.0)
    model.params = params
    return model


def speech(seconds, seed=0):
    """A deterministic 16 kHz test signal: harmonics with a moving pitch plus a little noise."""
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(pitch) / 16000
    wav = sum(0.2 / k * np.sin(k * phase) for k in range(1, 6)) + 0.01 * rng.standard_normal(t.size)
    return wav.astype(np.float32)


def golden(*parts):
    return os.path.join(GOLDEN, *parts)


def golden_available():
    return os.path.isfile(golden("expected.json"))


def write_plus_parts(root, seed=0, num_mctp_modules=10):
    """A tiny random VITA-Audio-Plus checkpoint (Hugging Face layout, with a real tiny BPE tokenizer:
    the base VITA-Audio specials, 64 audio codes, then `<|context_of_audio|>` appended, as in the
    spec's unverified variant: its id must be read by string) and a tiny random speech decoder.
    Returns (plus_dir, decoder_dir)."""
    import tempfile

    from vita_jax.convert.plus_checkpoint import read_plus_tokens
    from vita_jax.pipeline.random_parts import tiny_llm_config, tiny_text_tokenizer, write_random_decoder

    plus_dir, decoder_dir = os.path.join(root, "tiny-vita-audio-plus"), os.path.join(root, "tiny-decoder")
    with tempfile.TemporaryDirectory() as side:
        tokenizer = tiny_text_tokenizer(os.path.join(side, "bpe"))
        tokenizer.add_tokens(["<|context_of_audio|>"], special_tokens=True)
        tokenizer.save_pretrained(side)
        with open(CMVN) as src, open(os.path.join(side, "am.mvn"), "w") as dst:
            dst.write(src.read())
        config = tiny_llm_config(len(tokenizer)).replace(num_mctp_modules=num_mctp_modules)
        model = PlusModel.random(config, TINY_AUDIO, Frontend.from_file(CMVN),
                                 read_plus_tokens(side), seed=seed)
        model.side_files_dir = side
        model.save_pretrained(plus_dir, dtype="float32")
    write_random_decoder(decoder_dir, seed=seed)
    return plus_dir, decoder_dir
