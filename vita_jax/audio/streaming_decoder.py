"""Streaming token -> wav with the bookkeeping of GLM-4-Voice's `AudioDecoder.token2wav` (spec section 6).

Each chunk of codes is decoded by the flow conditioned on earlier tokens (`prompt_token`) and
the mels returned so far (`prompt_feat`); only the new frames are kept. Every non-final chunk
holds back its last `mel_overlap` (34) frames, cross-faded into the next chunk with a Hamming
window, and the audio of its last kept frame, re-synthesised at the start of the next chunk
from a 1-frame mel cache and the last 256 source samples. Returned mels are post-fade,
post-cache-prepend and post-trim, exactly like the original (including its 1-frame drift).

`context_tokens=None` conditions every chunk on the whole history, as the original does: the
flow then runs over all tokens so far (its estimator attends over all frames, so no earlier
result can be reused exactly) and the cost of a chunk grows with the stream. An integer
bounds the history to the last `context_tokens` codes and the matching last mel frames, so
every chunk has the same shapes and cost: a deviation from the original that changes only
the conditioning, not the chunk boundaries, cross-fades or caches. The default is
DEFAULT_CONTEXT_TOKENS (one 10-code encoder block).
"""

import jax
import numpy as np

DEFAULT_CONTEXT_TOKENS = 10
TOKEN_OVERLAP = 5  # tokens; the original's token_overlap_len
MEL_CACHE = 1  # frames
SOURCE_CACHE = 256  # samples


class StreamingDecoder:
    """Decode a stream chunk by chunk: `push(codes, finalize)` -> (wav chunk, returned mel [F, n_mels])."""

    def __init__(self, decoder, key=None, context_tokens=DEFAULT_CONTEXT_TOKENS, n_timesteps=None):
        self.dec = decoder
        self.n_timesteps = decoder.steps(n_timesteps)
        self.key = decoder.resolve_key(key)
        if context_tokens is not None and context_tokens < 0:
            raise ValueError(f"context_tokens must be None or >= 0, got {context_tokens}")
        self.context_tokens = context_tokens
        self.mel_overlap = decoder.mel_frames(TOKEN_OVERLAP)
        self.window = np.hamming(2 * self.mel_overlap)
        self.history = np.zeros(0, np.int32)
        self.prompt_feat = np.zeros((0, decoder.n_mels), np.float32)
        self.overlap = None
        self.cache_mel = None
        self.cache_source = None
        self.chunk_index = 0
        self.finished = False

    def flow_noise_key(self):
        """The original re-seeds its CFM noise identically on every call: one key for all chunks."""
        return self.key

    def source_key(self, chunk_index):
        return jax.random.fold_in(jax.random.fold_in(self.key, 1), chunk_index)

    def _conditioning(self, n_new):
        """(prompt tokens, prompt mel, frames of the chunk's new region)."""
        n_total = len(self.history) + n_new
        new_frames = self.dec.mel_frames(n_total) - len(self.prompt_feat)
        if self.context_tokens is None or len(self.history) <= self.context_tokens:
            return self.history, self.prompt_feat, new_frames
        tokens = self.history[len(self.history) - self.context_tokens:]
        n_feat = self.dec.mel_frames(len(tokens) + n_new) - new_frames
        feat = self.prompt_feat[len(self.prompt_feat) - n_feat:] if n_feat > 0 else self.prompt_feat[:0]
        return tokens, feat, new_frames

    def can_push(self, n_codes):
        """Whether `n_codes` new codes make a non-final chunk: more mel frames than the overlap it
        holds back (otherwise gather more codes first)."""
        if n_codes == 0:
            return False
        frames = self._conditioning(n_codes)[2] + (0 if self.cache_mel is None else len(self.cache_mel))
        return frames > self.mel_overlap

    def finish(self):
        """End a stream whose last chunk was pushed as non-final: the held-back frames (mel cache +
        overlap) are vocoded as they are, with no next chunk to cross-fade into. Returns the wav."""
        if self.finished or self.overlap is None:
            raise RuntimeError("finish() ends a stream after a non-final chunk")
        mel = np.concatenate([self.cache_mel, self.overlap])
        wav, _ = self.dec.vocode(mel, self.source_key(self.chunk_index), self.cache_source)
        self.finished = True
        return wav

    def push(self, codes, finalize=False):
        """Decode one chunk; returns (wav [samples], mel [frames, n_mels]) as the original returns them."""
        if self.finished:
            raise RuntimeError("this stream was finalized; start a new StreamingDecoder")
        codes = self.dec.check_codes(codes, name=f"code chunk {self.chunk_index}")
        prompt_tokens, prompt_feat, new_frames = self._conditioning(len(codes))
        tokens = np.concatenate([prompt_tokens, codes])
        n_frames = self.dec.mel_frames(len(tokens))
        if new_frames <= 0:
            raise ValueError(f"code chunk {self.chunk_index}: {len(codes)} codes add no mel frames to the stream")
        noise = self.dec.draw_noise(self.flow_noise_key(), n_frames)
        mel = self.dec.flow(tokens, prompt_feat, noise, self.n_timesteps)[len(prompt_feat):]
        if self.overlap is not None:
            n = min(self.mel_overlap, len(mel))
            faded = mel[:n] * self.window[:n, None] + self.overlap[:n] * self.window[self.mel_overlap:][:n, None]
            mel[:n] = faded.astype(np.float32)
        if self.cache_mel is not None:
            mel = np.concatenate([self.cache_mel, mel])
        key = self.source_key(self.chunk_index)
        if finalize:
            wav, _ = self.dec.vocode(mel, key, self.cache_source)
            self.finished = True
        else:
            if len(mel) <= self.mel_overlap:
                raise ValueError(
                    f"code chunk {self.chunk_index}: {len(codes)} codes give {len(mel)} mel frames, not more than "
                    f"the {self.mel_overlap}-frame overlap a non-final chunk holds back"
                )
            self.overlap, mel = mel[-self.mel_overlap:], mel[: -self.mel_overlap]
            wav, source = self.dec.vocode(mel, key, self.cache_source)
            self.cache_mel, self.cache_source = mel[-MEL_CACHE:], source[-SOURCE_CACHE:]
            wav = wav[:-SOURCE_CACHE]
        self.history = np.concatenate([self.history, codes])
        self.prompt_feat = np.concatenate([self.prompt_feat, mel])
        self.chunk_index += 1
        return wav, mel

    def run(self, code_chunks):
        """Yield the wav of each chunk; the last chunk of the iterable is decoded with finalize=True.

        Reads one chunk ahead to know which is last; callers that know when a stream ends
        without look-ahead call `push` directly."""
        it = iter(code_chunks)
        try:
            pending = next(it)
        except StopIteration:
            return
        for chunk in it:
            yield self.push(pending)[0]
            pending = chunk
        yield self.push(pending, finalize=True)[0]
