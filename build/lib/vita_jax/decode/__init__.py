"""Decoding: the section-7 schedules (Vanilla, Balance, Boost, Turbo, custom) and the lossless
draft-and-verify mode as compiled JAX loops, sampling, and streaming events."""

from vita_jax.decode.decoder import DEFAULT_EOS, DecodeResult, decode, generate, stream
from vita_jax.decode.schedule import LOSSLESS, PRESETS
from vita_jax.decode.streaming import AudioChunkEvent, EndEvent, TextEvent

__all__ = ["DEFAULT_EOS", "DecodeResult", "decode", "generate", "stream", "LOSSLESS", "PRESETS",
           "AudioChunkEvent", "EndEvent", "TextEvent"]
