"""Model geometries. `get_config("tiny" | "toy" | "qwen2.5-0.5b" | "vita-audio-7b")` returns a ModelConfig."""

from vita_jax.model_config import ModelConfig


def tiny():
    """A few-layer model for tests and the demo (K=3 MCTP modules)."""
    return ModelConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=2,
        num_heads=4, num_kv_heads=2, rope_theta=10000.0, max_position_embeddings=512,
        num_mctp_modules=3,
    )


def toy():
    """The toy MCTP experiment's geometry (docs/toy-mctp.md): 4 backbone layers, K=10 modules, the toy
    corpus's vocabulary (484 tokens: BPE words + specials + 64 audio codes, padded to 488)."""
    return ModelConfig(
        vocab_size=488, hidden_size=64, intermediate_size=192, num_layers=4,
        num_heads=4, num_kv_heads=2, rope_theta=10000.0, max_position_embeddings=1024,
        num_mctp_modules=10,
    )


def qwen2_5_0_5b():
    """Qwen2.5-0.5B geometry with the VITA-Audio vocabulary and K=10 modules."""
    return ModelConfig(
        vocab_size=168072, hidden_size=896, intermediate_size=4864, num_layers=24,
        num_heads=14, num_kv_heads=2, rope_theta=1e6, max_position_embeddings=32768,
        num_mctp_modules=10,
    )


def vita_audio_7b():
    """The released VITA-Audio 7B geometry (Qwen2.5-7B backbone, K=10)."""
    return ModelConfig(
        vocab_size=168072, hidden_size=3584, intermediate_size=18944, num_layers=28,
        num_heads=28, num_kv_heads=4, rope_theta=1e6, max_position_embeddings=32768,
        num_mctp_modules=10,
    )


PRESETS = {"tiny": tiny, "toy": toy, "qwen2.5-0.5b": qwen2_5_0_5b, "vita-audio-7b": vita_audio_7b}


def get_config(arg="tiny"):
    """The preset named `arg`."""
    if arg not in PRESETS:
        raise ValueError(f"unknown model preset {arg!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[arg]()
