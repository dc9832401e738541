"""The numpy log-mel front end equals transformers' WhisperFeatureExtractor(feature_size=128)
as GLM-4-Voice calls it (padding="longest", pad_to_multiple_of=1280)."""

import numpy as np
import pytest

from tests.helpers.speech_tokenizer import espeak_speech, reference_features, tiled
from vita_jax.audio.features import FeatureConfig, frame_mask, segment_log_mels, split_segments
from vita_jax.round_up import round_up

CONFIG = FeatureConfig()
PAD = 1280  # samples per code: hop 160 x conv stride 2 x pool 4
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return espeak_speech(str(tmp_path_factory.mktemp("speech")))[1]


def signal(name, speech):
    rng = np.random.default_rng(0)
    return {
        "noise": lambda: rng.uniform(-0.5, 0.5, 23000).astype(np.float32),
        "speech": lambda: speech,
        "silence": lambda: np.zeros(16000, np.float32),
        "clipped": lambda: np.clip(speech * 30.0, -1.0, 1.0),
        "multiple_of_1280": lambda: speech[: 1280 * 20],
        "shorter_than_a_frame": lambda: rng.uniform(-0.5, 0.5, 100).astype(np.float32),
        "one_sample": lambda: np.array([0.3], np.float32),
    }[name]()


@pytest.mark.parametrize(
    "name", ["noise", "speech", "silence", "clipped", "multiple_of_1280", "shorter_than_a_frame", "one_sample"]
)
def test_single_segment_matches_extractor(name, speech):
    wav = signal(name, speech)
    want, want_mask = reference_features([wav])
    (got,) = segment_log_mels([wav], CONFIG, PAD)
    assert got.shape == want[0].shape == (128, round_up(len(wav), PAD) // 160)
    np.testing.assert_allclose(got, want[0], atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(frame_mask(len(wav), got.shape[1], 160), want_mask[0].astype(bool))


def test_multi_segment_utterance_matches_extractor(speech):
    """A 41.3 s utterance: two segments featurized together, the short one padded to 30 s."""
    wav = tiled(speech, 16000 * 41 + 4321)
    segments = split_segments(wav, CONFIG)
    assert [len(s) for s in segments] == [480000, len(wav) - 480000]
    want, want_mask = reference_features(segments)
    got = segment_log_mels(segments, CONFIG, PAD)
    for k, (seg, mel) in enumerate(zip(segments, got)):
        frames = round_up(len(seg), PAD) // 160
        assert mel.shape == (128, frames)
        np.testing.assert_allclose(mel, want[k][:, :frames], atol=TOLERANCE, rtol=0)
        np.testing.assert_array_equal(frame_mask(len(seg), want.shape[2], 160), want_mask[k].astype(bool))


def test_padding_is_part_of_the_features(speech):
    """The STFT's reflect padding at the segment's end sees the zero padding: a segment of
    exactly 23 x 1280 samples gives another last frame when padded to 30 s (beside a longer
    segment) than alone (so the utterance-level padding must be replicated)."""
    short = speech[: 1280 * 23]
    (alone,) = segment_log_mels([short], CONFIG, PAD)
    _, padded = segment_log_mels([tiled(speech, 480000), short], CONFIG, PAD)
    assert alone.shape == padded.shape
    assert np.abs(alone - padded).max() > 1e-3
    want = reference_features([tiled(speech, 480000), short])[0][1][:, : alone.shape[1]]
    np.testing.assert_allclose(padded, want, atol=TOLERANCE)
