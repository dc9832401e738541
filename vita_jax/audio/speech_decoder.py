"""GLM-4-Voice speech decoder: audio codes -> mel (flow, CFM) -> 22.05 kHz wav (HiFT).

`load_decoder(dir)` reads an original `glm-4-voice-decoder` directory (config.yaml, flow.pt,
hift.pt) or this project's converted checkpoint and returns a `SpeechDecoder`:

    dec.token2mel(codes, noise=None, key=None)  -> mel [n_mels, T]
    dec.mel2wav(mel, source=None, key=None)     -> wav [256 T]
    dec.token2wav(codes, key=None)              -> wav (offline)
    dec.stream(code_chunks, key=None)           -> iterator of wav chunks (spec section 6)

The flow's number of CFM Euler steps is `n_timesteps` (default: config.yaml's, 10 in the
release; the release streams with 1): `load_decoder(dir, n_timesteps=1)`, or per call.

Randomness (the CFM's initial noise, the NSF source's phases and noise) comes from an
explicit PRNG key; `key=None` means `jax.random.key(42)`, the original's fixed seed.
The flow runs in token buffers rounded up to `token_bucket` tokens, and the flow and HiFT in
mel buffers rounded up by `bucket_frames` (padding is masked out exactly), so one compiled
program serves all lengths of a bucket.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.audio.decoder_config import DecoderConfig
from vita_jax.audio.flow_matching import mel_length
from vita_jax.audio.flow_model import flow_inference
from vita_jax.audio.hift import HiFTGenerator, draw_source_noise
from vita_jax.convert.decoder_checkpoint import read_decoder
from vita_jax.audio.streaming_decoder import DEFAULT_CONTEXT_TOKENS, StreamingDecoder
from vita_jax.round_up import round_up

DEFAULT_SEED = 42


class DecoderInputError(ValueError):
    """Bad codes, noise, mel or source given to the decoder; the message names the value."""


def load_decoder(decoder_dir, n_timesteps=None):
    """SpeechDecoder from an original decoder directory or a converted checkpoint directory;
    `n_timesteps`: the flow's CFM steps (default: the config's)."""
    cfg, params, _ = read_decoder(decoder_dir)
    return SpeechDecoder(cfg, params, n_timesteps=n_timesteps)


# Compiled programs are shared by every decoder of the same config (a hashable dataclass).
@functools.partial(jax.jit, static_argnums=(1, 2))
def _flow_program(params, cfg, n_timesteps, *args):
    return flow_inference(params, cfg, *args, n_timesteps=n_timesteps)


@functools.partial(jax.jit, static_argnums=1)
def _hift_program(params, cfg, *args):
    return HiFTGenerator(cfg).apply({"params": params}, *args)


@functools.partial(jax.jit, static_argnums=1)
def _hift_decode_program(params, cfg, *args):
    return HiFTGenerator(cfg).apply({"params": params}, *args, method="decode")


def _as_batch1(x, name, ndim):
    """Accept `ndim` dims or a leading batch axis of 1; return with the batch axis."""
    x = np.asarray(x, np.float32)
    if x.ndim == ndim + 1 and x.shape[0] == 1:
        return x
    if x.ndim == ndim:
        return x[None]
    raise DecoderInputError(f"{name}: expected {ndim} dims (or a leading batch of 1), got shape {x.shape}")


def check_steps(n_timesteps):
    """A number of CFM Euler steps: an integer >= 1."""
    if isinstance(n_timesteps, bool) or not isinstance(n_timesteps, (int, np.integer)) or n_timesteps < 1:
        raise DecoderInputError(f"n_timesteps (flow-matching steps) must be an integer >= 1, got {n_timesteps!r}")
    return int(n_timesteps)


def bucket_frames(n):
    """Buffer length for `n` frames: a multiple of 2**(bits(n) - 5) (>= 2), at most ~6% padding
    and 16 buffer sizes per octave of lengths."""
    return round_up(n, max(2, 2 ** (n.bit_length() - 5)))


class SpeechDecoder:
    def __init__(self, cfg: DecoderConfig, params, token_bucket=10, n_timesteps=None):
        self.cfg = cfg
        self.n_timesteps = cfg.flow.n_timesteps if n_timesteps is None else check_steps(n_timesteps)
        self.params = jax.tree.map(jnp.asarray, params)
        self.token_bucket = token_bucket
        self.n_mels = cfg.flow.output_size
        self.hop = cfg.hift.hop_samples
        self.sample_rate = cfg.hift.sampling_rate

    # ---- validation -------------------------------------------------------------------
    def check_codes(self, codes, name="codes"):
        arr = np.asarray(codes)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1:
            raise DecoderInputError(f"{name}: expected a 1-D list of audio codes (or [1, N]), got shape {arr.shape}")
        if arr.size == 0:
            raise DecoderInputError(f"{name}: the code list is empty")
        if not np.issubdtype(arr.dtype, np.integer):
            raise DecoderInputError(f"{name}: audio codes must be integers, got dtype {arr.dtype}")
        vocab = self.cfg.flow.vocab_size
        bad = np.flatnonzero((arr < 0) | (arr >= vocab))
        if bad.size:
            raise DecoderInputError(
                f"{name}: code {int(arr[bad[0]])} at position {int(bad[0])} is outside 0..{vocab - 1}"
            )
        return arr.astype(np.int32)

    @staticmethod
    def resolve_key(key):
        """`key`, or the fixed default key(42) when None."""
        return jax.random.key(DEFAULT_SEED) if key is None else key

    def mel_frames(self, n_tokens):
        """T for `n_tokens` codes: int(float32(N) / 12.5 * 22050 / 256)."""
        return mel_length(n_tokens, self.cfg.flow.input_frame_rate)

    # ---- flow ---------------------------------------------------------------------------
    def draw_noise(self, key, n_frames):
        """The CFM's initial noise [1, n_mels, T] (channel-major, like the original's randn_like(mu))."""
        return np.asarray(jax.random.normal(self.resolve_key(key), (1, self.n_mels, n_frames), jnp.float32))

    def steps(self, n_timesteps):
        """`n_timesteps`, or the decoder's default when None."""
        return self.n_timesteps if n_timesteps is None else check_steps(n_timesteps)

    def flow(self, tokens, prompt_feat, noise, n_timesteps=None):
        """Mel [n_frames, n_mels] of the whole sequence `tokens` (prompt included) with the first
        frames conditioned on `prompt_feat` [F, n_mels]; `noise` [1, n_mels, T] covers all frames;
        `n_timesteps` CFM steps (default: the decoder's)."""
        n_tok, n_frames = len(tokens), noise.shape[-1]
        l_buf, t_buf = round_up(n_tok, self.token_bucket), bucket_frames(n_frames)
        tok = np.zeros((1, l_buf), np.int32)
        tok[0, :n_tok] = tokens
        noise_buf = np.zeros((1, t_buf, self.n_mels), np.float32)
        noise_buf[0, :n_frames] = noise[0].T
        cond = np.zeros((1, t_buf, self.n_mels), np.float32)
        cond[0, : len(prompt_feat)] = prompt_feat
        mel = _flow_program(self.params["flow"], self.cfg.flow, self.steps(n_timesteps), tok, n_tok, n_frames,
                            noise_buf, cond)
        return np.array(mel[0, :n_frames])

    def token2mel(self, codes, noise=None, key=None, n_timesteps=None):
        """Mel [n_mels, T] for the audio `codes`; `noise` [n_mels, T] optionally gives the CFM's start."""
        codes = self.check_codes(codes)
        n_frames = self.mel_frames(len(codes))
        if noise is None:
            noise = self.draw_noise(key, n_frames)
        noise = _as_batch1(noise, "noise", 2)
        if noise.shape[1:] != (self.n_mels, n_frames):
            raise DecoderInputError(
                f"noise: expected shape ({self.n_mels}, {n_frames}) for {len(codes)} codes, got {noise.shape[1:]}")
        return self.flow(codes, np.zeros((0, self.n_mels), np.float32), noise, n_timesteps).T

    # ---- vocoder ------------------------------------------------------------------------
    def source_noise(self, key, n_frames):
        """Initial phases and unit noise of the NSF source for `n_frames` mel frames."""
        return draw_source_noise(self.resolve_key(key), self.cfg.hift, n_frames * self.hop)

    def _mel_buffer(self, mel):
        """mel [T, n_mels] zero-padded to [1, T_buf, n_mels]."""
        buf = np.zeros((1, bucket_frames(len(mel)), self.n_mels), np.float32)
        buf[0, : len(mel)] = mel
        return buf

    def _sample_buffer(self, x, n_buf):
        """[1, L, ...] zero-padded along axis 1 to `n_buf` samples."""
        x = np.asarray(x, np.float32)
        return np.pad(x, [(0, 0), (0, n_buf - x.shape[1])] + [(0, 0)] * (x.ndim - 2))

    def vocode(self, mel, key=None, cache_source=None):
        """(wav [hop*T], source [hop*T]) for mel [T, n_mels]; the source's first samples are
        replaced by `cache_source` when given (streaming)."""
        n = len(mel)
        buf = self._mel_buffer(mel)
        phase, noise = self.source_noise(key, n)
        noise = self._sample_buffer(noise, buf.shape[1] * self.hop)
        cache = np.zeros((1, 0), np.float32) if cache_source is None else np.asarray(cache_source, np.float32)[None]
        wav, src = _hift_program(self.params["hift"], self.cfg.hift, buf, phase, noise, cache, n)
        return np.asarray(wav[0, : n * self.hop]), np.asarray(src[0, : n * self.hop])

    def mel2wav(self, mel, source=None, key=None):
        """Waveform [hop * T] for mel [n_mels, T]; `source` [1, hop * T] optionally gives the NSF excitation."""
        mel = _as_batch1(mel, "mel", 2)
        if mel.shape[1] != self.n_mels or mel.shape[2] == 0:
            raise DecoderInputError(f"mel: expected shape ({self.n_mels}, T>0), got {mel.shape[1:]}")
        mel_t = mel[0].T
        if source is None:
            return self.vocode(mel_t, key)[0]
        source = _as_batch1(source, "source", 1)
        n = mel_t.shape[0]
        if source.shape[1] != self.hop * n:
            raise DecoderInputError(f"source: expected {self.hop * n} samples for {n} frames, got {source.shape[1]}")
        buf = self._mel_buffer(mel_t)
        source = self._sample_buffer(source, buf.shape[1] * self.hop)
        wav = _hift_decode_program(self.params["hift"], self.cfg.hift, buf, source, n)
        return np.asarray(wav[0, : n * self.hop])

    # ---- end to end ---------------------------------------------------------------------
    def token2wav(self, codes, key=None, n_timesteps=None):
        """Offline: 22.05 kHz float32 waveform [hop * T] for the audio `codes`.

        The flow's noise comes from `key`, the source's from `fold_in(key, 1)`."""
        key = self.resolve_key(key)
        mel = self.token2mel(codes, key=key, n_timesteps=n_timesteps)
        return self.mel2wav(mel, key=jax.random.fold_in(key, 1))

    def stream(self, code_chunks, key=None, context_tokens=DEFAULT_CONTEXT_TOKENS, n_timesteps=None):
        """Yield wav chunks for an iterable of code chunks (e.g. 10 codes each), with the original's
        streaming bookkeeping (spec section 6). `context_tokens`: codes of history each chunk is
        conditioned on (default 10, constant cost per chunk); None = all, as the original."""
        streamer = StreamingDecoder(self, key=key, context_tokens=context_tokens, n_timesteps=n_timesteps)
        yield from streamer.run(code_chunks)
