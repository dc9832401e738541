"""VITA-Audio-Plus as one Flax module: VITA-Audio (backbone + MCTP modules) plus the SenseVoice
encoder and the adapter, whose rows replace the `<|context_of_audio|>` placeholders of the
backbone's input embeddings (spec section 4). The MCTP modules keep embedding the token ids,
placeholders included (section 4.3).

Extra methods (through `module.apply(..., method=...)`):
  encode_audio       features [A, T, 560] + lengths [A] -> adapter rows [A, T + 4, H], lengths + 4
  prompt_embeddings  E[ids] with the placeholders replaced by the adapter rows (decoding's prefill)
"""

import jax.numpy as jnp

from vita_jax.nn.vita_audio import VitaAudio
from vita_jax.plus.adapter import AudioAdapter
from vita_jax.plus.sensevoice import SenseVoiceConfig, SenseVoiceEncoder


def splice_audio_rows(embeddings, input_ids, context_id, audio_rows, audio_lengths):
    """Placeholder number r (counted over the flattened batch, row-major) takes row r of the valid
    audio rows concatenated in order (audio a contributes audio_rows[a, :audio_lengths[a]]).

    embeddings [B, S, E], input_ids [B, S], audio_rows [A, L, E], audio_lengths [A].
    A gather with static shapes; the caller checks that the counts agree.
    """
    is_context = input_ids == context_id
    rank = (jnp.cumsum(is_context.reshape(-1)) - 1).reshape(input_ids.shape)
    ends = jnp.cumsum(audio_lengths)
    audio = jnp.clip(jnp.searchsorted(ends, rank, side="right"), 0, audio_rows.shape[0] - 1)
    row = jnp.clip(rank - (ends[audio] - audio_lengths[audio]), 0, audio_rows.shape[1] - 1)
    rows = audio_rows[audio, row].astype(embeddings.dtype)
    return jnp.where(is_context[..., None], rows, embeddings)


class VitaAudioPlus(VitaAudio):
    audio_config: SenseVoiceConfig = SenseVoiceConfig()
    context_token_id: int = -1
    round_features: bool = True  # features rounded to bfloat16 before the encoder, as the original

    def setup(self):
        super().setup()
        self.audio_encoder = SenseVoiceEncoder(self.audio_config)
        self.audio_adapter = AudioAdapter(self.config.hidden_size, self.audio_config.dtype,
                                          self.audio_config.param_dtype)

    def encode_audio(self, features, lengths):
        """features [A, T, 560] (zero-padded after lengths[a]) -> (adapter rows [A, T + 4, H], lengths + 4)."""
        if self.round_features:
            features = features.astype(jnp.bfloat16).astype(jnp.float32)
        encoded, lengths = self.audio_encoder(features, lengths)
        return self.audio_adapter(encoded), lengths

    def prompt_embeddings(self, input_ids, features, feature_lengths):
        """E[input_ids] [B, S, E] with the placeholders replaced by the audios' adapter rows. Audios of
        feature length 0 are padding (count buckets, training's audio slots): they take no placeholder."""
        rows, lengths = self.encode_audio(features, feature_lengths)
        lengths = jnp.where(feature_lengths > 0, lengths, 0)
        return splice_audio_rows(self.backbone.embed(input_ids), input_ids, self.context_token_id, rows, lengths)

    def __call__(self, input_ids, features=None, feature_lengths=None, segment_ids=None, positions=None,
                 detach_backbone=False, with_logits=True):
        """VitaAudio's forward with the audio spliced into the backbone's input (no audio: features None)."""
        embeddings = None if features is None else self.prompt_embeddings(input_ids, features, feature_lengths)
        return super().__call__(input_ids, segment_ids, positions, detach_backbone, with_logits,
                                input_embeddings=embeddings)
