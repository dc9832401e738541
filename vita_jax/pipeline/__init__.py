"""Speech in, speech out: `VoiceChat` joins the LLM, the speech tokenizer and the speech decoder
(spoken chat, ASR, TTS with a voice prompt; streamed, multi-turn). See docs/speech-pipeline.md."""

from vita_jax.pipeline.events import AudioChunk, Note, TextDelta, TurnEnd
from vita_jax.pipeline.voice_chat import PipelineSetupError, VoiceChat

__all__ = ["VoiceChat", "PipelineSetupError", "AudioChunk", "Note", "TextDelta", "TurnEnd"]
