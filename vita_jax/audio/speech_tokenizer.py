"""GLM-4-Voice speech tokenizer: audio -> 12.5 Hz codes (ids of `<|audio_{id}|>` tokens).

tok = load_tokenizer(tokenizer_dir)   # original directory or this project's checkpoint
tok.features(wav_16k)                 # log-mel [n_mels, 8 * n_codes], as the original computes it
tok.encode(path_or_array)             # codes of one utterance (its 30 s segments in order)
tok.encode_batch(items)               # the same codes for many items, batched over files

Segments of all items are grouped longest first into batches of about BATCH_TOKEN_BUDGET codes.
A batch of several segments runs packed (whisper_vq.Packing): its per-frame layers see only the
segments' own frames, laid end to end, and only the convolutions and attention see rows padded
to a length bucket. Shapes come from a few buckets, so the jitted encoder compiles once per
(rows, row length, packed length). Valid frames never see padding (causal convolutions, masked
keys), so a segment's codes do not depend on its batch.
"""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from vita_jax.audio.features import frame_mask, segment_log_mels, split_segments
from vita_jax.audio.wav_io import AudioLoadError, check_waveform, load_audio, resample
from vita_jax.audio.whisper_vq import Packing, WhisperVQEncoder
from vita_jax.convert.tokenizer_checkpoint import load_checkpoint
from vita_jax.param_layout import layer_slices

BATCH_TOKEN_BUDGET = 256  # codes per packed encoder call (~20 s of audio); fastest of 128-1024, docs/speech-speed.md
BATCH_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # row counts a batch is padded to


def length_buckets(max_tokens, smallest=16):
    """Padded segment lengths in codes: steps of 8 codes up to 256, then 16 (at most ~6% padding
    above 128 codes: a 10 s file's 125 codes run as 128), capped at `max_tokens`."""
    buckets, size = [], smallest
    while size < max_tokens:
        buckets.append(size)
        size += 8 * max(1, size // 128)
    return buckets + [max_tokens]


@dataclasses.dataclass
class Segment:
    """One <= 30 s piece of an item: its log-mel [frames, n_mels] and true sample count."""

    item: int
    index: int
    features: np.ndarray
    n_samples: int


@functools.partial(jax.jit, static_argnames="config")
def _encode_program(variables, features, mask, packing, *, config):
    """Codes of a padded feature batch (packed when `packing` is given); one compiled program per
    (config, shapes), shared by every tokenizer of the same config."""
    return WhisperVQEncoder(config).apply(variables, features, mask, packing)


def unstack_layers(params):
    """`params` with the stacked encoder layers as a tuple of per-layer trees: the encoder then runs
    them unrolled, each weight its own buffer (WhisperVQEncoder.run_layers)."""
    stacked = params["layers"]
    return {**params, "layers": tuple(layer_slices(stacked, jax.tree.leaves(stacked)[0].shape[0]))}


class SpeechTokenizer:
    """Holds the encoder variables on device and one jitted encoder (compiled per shape bucket)."""

    def __init__(self, params, model_config, feature_config):
        self.model_config = model_config
        self.feature_config = feature_config
        self.variables = {"params": unstack_layers(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params))}
        self.frames_per_token = model_config.frames_per_token
        self.samples_per_token = feature_config.hop_length * self.frames_per_token
        max_tokens = feature_config.segment_samples // self.samples_per_token
        self.buckets = length_buckets(max_tokens)
        self.packed_buckets = length_buckets(max(max_tokens, BATCH_TOKEN_BUDGET))

    # ---- front end ----

    def load(self, item, sample_rate=None):
        """A path or a 1-D array (at `sample_rate`, default the tokenizer's) -> checked float32 wav."""
        target = self.feature_config.sampling_rate
        if isinstance(item, (str, os.PathLike)):
            return load_audio(os.fspath(item), target_sr=target)
        wav = check_waveform(item, name="<array>")
        return check_waveform(resample(wav, sample_rate or target, target), name="<array>")

    def segment_features(self, wav_16k):
        """Per 30 s segment: (log-mel [frames, n_mels], n_samples)."""
        segments = split_segments(check_waveform(wav_16k, name="<array>"), self.feature_config)
        mels = segment_log_mels(segments, self.feature_config, self.samples_per_token)
        return [(mel.T, len(seg)) for mel, seg in zip(mels, segments)]

    def features(self, wav_16k):
        """Log-mel [n_mels, frames] of one utterance: its segments' features in time order,
        each as the original featurizes it (padding included; 8 frames per code)."""
        return np.concatenate([mel.T for mel, _ in self.segment_features(wav_16k)], axis=1)

    # ---- encoder ----

    def _codes(self, segment):
        """Codes a segment's features cover (whole codes: 8 frames each)."""
        return segment.features.shape[0] // self.frames_per_token

    def _encode_group(self, segments, bucket, batch):
        """Dispatch the encoder on `segments` padded to `bucket` codes and `batch` rows, packed when
        there are several; returns (each segment's first index in the flattened codes, codes)."""
        frames = bucket * self.frames_per_token
        features = np.zeros((batch, frames, self.feature_config.n_mels), np.float32)
        mask = np.zeros((batch, frames), bool)
        for row, seg in enumerate(segments):
            features[row, : seg.features.shape[0]] = seg.features
            mask[row] = frame_mask(seg.n_samples, frames, self.feature_config.hop_length)
        lengths = [self._codes(seg) for seg in segments]
        packing = None
        if len(segments) > 1:
            pool = self.model_config.pool_size
            packed_codes = next(b for b in self.packed_buckets if b >= sum(lengths))
            packing = Packing.of([n * pool for n in lengths], batch, frames // 2, packed_codes * pool)
        starts = np.cumsum([0] + lengths[:-1])
        return starts, _encode_program(self.variables, features, mask, packing, config=self.model_config)

    def _batches(self, segments):
        """Longest first, greedily: a batch takes segments while their codes fit BATCH_TOKEN_BUDGET
        (at most BATCH_SIZES[-1]); its rows are padded to the bucket of the first (longest) and their
        count to a BATCH_SIZES step. So neighbours have similar lengths and shapes repeat."""
        segments = sorted(segments, key=lambda seg: -seg.features.shape[0])
        start = 0
        while start < len(segments):
            end, total = start + 1, self._codes(segments[start])
            while (end < len(segments) and end - start < BATCH_SIZES[-1]
                   and total + self._codes(segments[end]) <= BATCH_TOKEN_BUDGET):
                total += self._codes(segments[end])
                end += 1
            group = segments[start:end]
            start = end
            bucket = next(b for b in self.buckets if b >= self._codes(group[0]))
            yield bucket, next(b for b in BATCH_SIZES if b >= len(group)), group

    def encode_batch(self, items, sample_rate=None, on_error=None, progress=None):
        """Codes for each item (path or array). A bad item raises AudioLoadError naming it,
        unless `on_error(item, error)` is given: then it is reported there and its entry is None.
        `progress`: optional tqdm-like object, advanced by one per finished item."""
        segments, n_segments, codes = [], {}, [None] * len(items)
        for i, item in enumerate(items):
            try:
                per_segment = self.segment_features(self.load(item, sample_rate))
            except AudioLoadError as err:
                if on_error is None:
                    raise
                on_error(item, err)
                if progress is not None:
                    progress.update(1)
                continue
            n_segments[i] = len(per_segment)
            segments += [Segment(i, k, mel, n) for k, (mel, n) in enumerate(per_segment)]
        results, pending = {}, dict(n_segments)
        # Dispatch every batch first (asynchronously), then collect: host work overlaps compute.
        dispatched = [
            (group, *self._encode_group(group, bucket, rows)) for bucket, rows, group in self._batches(segments)
        ]
        for group, starts, ids in dispatched:
            ids = np.asarray(ids).reshape(-1)
            for seg, start in zip(group, starts):
                n_codes = -(-seg.n_samples // self.samples_per_token)
                results[seg.item, seg.index] = ids[start : start + n_codes]
                pending[seg.item] -= 1
                if pending[seg.item] == 0:
                    codes[seg.item] = [int(c) for k in range(n_segments[seg.item]) for c in results[seg.item, k]]
                    if progress is not None:
                        progress.update(1)
        return codes

    def encode(self, path_or_array, sample_rate=None):
        """Codes (list of int) of one utterance, all 30 s segments in order."""
        return self.encode_batch([path_or_array], sample_rate=sample_rate)[0]


def load_tokenizer(tokenizer_dir):
    """A SpeechTokenizer from an original `glm-4-voice-tokenizer` directory
    (config.json, preprocessor_config.json, *.safetensors) or this project's checkpoint."""
    checkpoint = load_checkpoint(tokenizer_dir)
    return SpeechTokenizer(checkpoint.tree["params"], checkpoint.model_config, checkpoint.feature_config)
