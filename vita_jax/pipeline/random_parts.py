"""Random checkpoints of the three parts of the speech pipeline, written in their usual layouts, so
that `infer.py --demo`, the tests and the benchmark run the whole path with no download. Random
weights produce noise, not speech.

    llm_dir, tokenizer_dir, decoder_dir = write_random_parts(root)          # tiny: the demo, tests
    write_random_speech_tokenizer(dir, speech_tokenizer_config())          # the real geometry
    write_random_decoder(dir, DecoderConfig(FlowConfig(), HiftConfig()))   # the real geometry
"""

import json
import os

import numpy as np

from vita_jax.audio.decoder_config import DecoderConfig, FlowConfig, HiftConfig, config_yaml_text
from vita_jax.audio.decoder_params import random_decoder_params
from vita_jax.convert.decoder_checkpoint import CHECKPOINT_KIND as DECODER_KIND
from vita_jax.convert.rules import DictSource, import_tree
from vita_jax.convert.tokenizer_checkpoint import TokenizerCheckpoint, export_hf_dir, read_configs, tokenizer_rules
from vita_jax.param_checkpoint import save_params

TINY_AUDIO_CODES = 64


def speech_tokenizer_config(d_model=1280, heads=20, ffn=5120, layers=32, quantize_position=16, codes=16384,
                            block=200, mels=128):
    """A GLM-4-Voice tokenizer `config.json`: the released structure; sizes default to the release's."""
    return {
        "architectures": ["WhisperVQEncoder"], "model_type": "whisper", "num_mel_bins": mels, "d_model": d_model,
        "encoder_attention_heads": heads, "encoder_ffn_dim": ffn, "encoder_layers": layers,
        "max_source_positions": 1500, "activation_function": "gelu", "scale_embedding": False,
        "encoder_causal_convolution": True, "encoder_causal_attention": False, "quantize_causal_encoder": False,
        "quantize_causal_block_size": block, "pooling_kernel_size": 4, "pooling_type": "avg",
        "pooling_position": quantize_position, "quantize_position": quantize_position, "quantize_vocab_size": codes,
        "quantize_encoder_only": True, "quantize_ema_decay": 0.99, "torch_dtype": "float32",
    }


def preprocessor_config(mels=128):
    """The Whisper feature extractor settings the release's tokenizer ships."""
    return {"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": mels, "sampling_rate": 16000,
            "n_fft": 400, "hop_length": 160, "chunk_length": 30, "n_samples": 480000, "nb_max_frames": 3000,
            "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False}


def tiny_speech_tokenizer_config():
    return speech_tokenizer_config(d_model=64, heads=4, ffn=128, layers=2, quantize_position=2,
                                   codes=TINY_AUDIO_CODES)


def tiny_decoder_config():
    """The decoder's structure with small sizes (tests and the demo)."""
    return DecoderConfig(
        flow=FlowConfig(
            input_size=32, output_size=16, spk_embed_dim=8, encoder_size=32, encoder_heads=2, encoder_ffn=48,
            encoder_layers=2, regulator_channels=16, regulator_blocks=2, estimator_in_channels=64,
            estimator_channels=(32, 32), estimator_head_dim=8, estimator_heads=2, estimator_transformer_blocks=1,
            estimator_mid_blocks=2,
        ),
        hift=HiftConfig(in_channels=16, base_channels=32, f0_cond_channels=16),
    )


def random_speech_tokenizer(hf_config, seed=0):
    """A TokenizerCheckpoint with random weights: kernels ~ N(0, 1/fan_in), norms 1, biases 0, a
    N(0, 1) codebook; drawn as the original state dict, then converted like a real one."""
    model_config, feature_config = read_configs(hf_config, preprocessor_config(hf_config["num_mel_bins"]),
                                                "config.json", "preprocessor_config.json")
    rng = np.random.default_rng(seed)

    def draw(key, shape):
        if key.endswith("layer_norm.weight"):
            return np.ones(shape, np.float32)
        if key.endswith("bias"):
            return np.zeros(shape, np.float32)
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = 1.0 if key.startswith(("codebook", "embed_positions")) else fan_in ** -0.5
        return (rng.standard_normal(shape, np.float32) * scale).astype(np.float32)

    rules = [rule for rule in tokenizer_rules(model_config) if not rule.optional]
    state = {rule.key: draw(rule.key, rule.shape) for rule in rules}
    tree = import_tree(rules, DictSource(state, "random weights"), "config.json")
    return TokenizerCheckpoint(tree, model_config, feature_config, hf_config,
                               preprocessor_config(hf_config["num_mel_bins"]))


def write_random_speech_tokenizer(out_dir, hf_config=None, seed=0):
    """An original-layout `glm-4-voice-tokenizer` directory with random weights (default: tiny)."""
    export_hf_dir(out_dir, random_speech_tokenizer(hf_config or tiny_speech_tokenizer_config(), seed))
    return out_dir


def write_random_decoder(out_dir, cfg=None, seed=0):
    """This project's decoder checkpoint with random weights (default: tiny)."""
    cfg = cfg or tiny_decoder_config()
    save_params(out_dir, random_decoder_params(cfg, seed), DECODER_KIND,
                {"config": cfg.to_dict(), "config_yaml": config_yaml_text(cfg), "source": "random weights"})
    return out_dir


def write_random_llm(out_dir, config, tokenizer, seed=0):
    """A Hugging Face layout qwen2_mtp checkpoint of `config` with random weights, `tokenizer`'s
    files beside them."""
    import tempfile

    from vita_jax.model import VitaAudioModel

    with tempfile.TemporaryDirectory() as side:
        tokenizer.save_pretrained(side)
        model = VitaAudioModel.random(config, seed=seed)
        model.side_files_dir = side
        model.save_pretrained(out_dir, dtype="float32")
    return out_dir


def tiny_text_tokenizer(out_dir, num_audio_codes=TINY_AUDIO_CODES):
    """A small real byte-level BPE in the Qwen2 style (trained on the packaged sample data) with
    VITA-Audio's specials and `num_audio_codes` audio tokens."""
    from vita_jax.configs.train_base import TINY_DATA
    from vita_jax.data.tiny_tokenizer import build_tiny_tokenizer
    from vita_jax.data.tokenizer import load_extended_tokenizer

    with open(TINY_DATA) as f:
        texts = [m["content"] for line in f if line.strip() for m in json.loads(line)["messages"]]
    build_tiny_tokenizer(texts, out_dir)
    return load_extended_tokenizer(out_dir, num_audio_codes)


def tiny_llm_config(vocab_size):
    """The tiny geometry with K=10 modules (every preset mode) and room for 5 s of speech + answer."""
    from vita_jax.configs.model import tiny
    from vita_jax.round_up import round_up

    return tiny().replace(vocab_size=round_up(vocab_size, 8), num_mctp_modules=10, max_position_embeddings=1024)


def write_random_parts(root, seed=0):
    """Tiny random LLM (with its tokenizer), speech tokenizer and speech decoder under `root`;
    returns their three directories."""
    names = ("tiny-vita-audio", "tiny-glm-4-voice-tokenizer", "tiny-glm-4-voice-decoder")
    llm_dir, tokenizer_dir, decoder_dir = (os.path.join(root, name) for name in names)
    text_tokenizer = tiny_text_tokenizer(os.path.join(root, "tiny-text-tokenizer"))
    write_random_llm(llm_dir, tiny_llm_config(len(text_tokenizer)), text_tokenizer, seed)
    write_random_speech_tokenizer(tokenizer_dir, seed=seed)
    write_random_decoder(decoder_dir, seed=seed)
    return llm_dir, tokenizer_dir, decoder_dir
