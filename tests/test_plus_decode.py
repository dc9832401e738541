"""Decoding a Plus model: every mode's greedy output equals the cache-free reference of
test_decode_exact run on the Plus forward (audio spliced), rows of a batch holding their own
audios; the encoder runs inside the compiled program; padded batches equal one-by-one runs."""

import dataclasses

import numpy as np
import pytest

from tests.helpers.compiles import count_compiles
from tests.helpers.plus import TOKENS, speech, tiny_plus
from tests.helpers.decode import MODES, assert_rows_equal, reference_decode
from vita_jax.decode import AudioChunkEvent, EndEvent

MAX_NEW = 24
AUDIOS = [speech(0.45, seed=1), speech(0.3, seed=2)]  # 7 and 5 LFR rows: 11 and 9 placeholders


@dataclasses.dataclass(eq=False)
class WithAudios:
    """The Plus model with fixed audios, seen by reference_decode as a plain model."""

    model: object
    audios: list

    @property
    def config(self):
        return self.model.config

    def forward(self, ids):
        return self.model.forward(ids, audios=self.audios)


def prompts(model):
    """Two rows, each with one audio (row 0 takes AUDIOS[0]), of different lengths."""
    first = model.audio_prompt([5, 6, TOKENS.audio_tag, 7, 8], AUDIOS[:1])
    second = model.audio_prompt([9, TOKENS.audio_tag, 3], AUDIOS[1:])
    return [first, second]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES + ["lossless"], ids=str)
def test_greedy_equals_cache_free_reference(mode):
    model = tiny_plus()
    rows = prompts(model)
    result = model.decode(rows, audios=AUDIOS, mode=mode, max_new_tokens=MAX_NEW, eos_token_ids=())
    reference_mode = "vanilla" if mode == "lossless" else mode
    expected = [reference_decode(WithAudios(model, [audio]), row, reference_mode, MAX_NEW)
                for row, audio in zip(rows, AUDIOS)]
    assert_rows_equal(result, expected)
    assert expected[0] != expected[1]


@pytest.mark.slow
def test_audio_changes_the_output_and_batch_equals_one_by_one():
    model = tiny_plus()
    rows = prompts(model)
    both = model.generate(rows, audios=AUDIOS, mode="boost", max_new_tokens=MAX_NEW, eos_token_ids=())
    for row, audio in enumerate(AUDIOS):
        alone = model.generate([rows[row]], audios=[audio], mode="boost", max_new_tokens=MAX_NEW, eos_token_ids=())
        np.testing.assert_array_equal(both[row], alone[0])
    other = [speech(0.45, seed=5), AUDIOS[1]]
    changed = model.generate(rows, audios=other, mode="boost", max_new_tokens=MAX_NEW, eos_token_ids=())
    assert changed[0].tolist() != both[0].tolist() and changed[1].tolist() == both[1].tolist()


@pytest.mark.slow
def test_forward_padded_batch_equals_one_by_one():
    model = tiny_plus()
    rows = prompts(model)
    width = max(map(len, rows))
    batch = np.array([row + [0] * (width - len(row)) for row in rows])
    out = model.forward(batch, audios=AUDIOS)
    for r, (row, audio) in enumerate(zip(rows, AUDIOS)):
        alone = model.forward(np.array([row]), audios=[audio])
        np.testing.assert_allclose(out.logits[r, :len(row)], alone.logits[0], atol=2e-4, rtol=1e-5)
        for k in range(2):
            np.testing.assert_allclose(out.mctp_logits[k][r, :len(row) - k - 1], alone.mctp_logits[k][0, :len(row) - k - 1],
                                       atol=2e-4, rtol=1e-5)


def test_stream_uses_the_tokenizer_audio_ids_and_a_new_audio_does_not_recompile():
    model = tiny_plus()
    rows = prompts(model)[:1]
    events = list(model.stream(rows, audios=AUDIOS[:1], mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=()))
    generated = model.generate(rows, audios=AUDIOS[:1], mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())[0]
    assert isinstance(events[-1], EndEvent) and events[-1].num_tokens == MAX_NEW
    codes = [c for e in events if isinstance(e, AudioChunkEvent) for c in e.codes]
    closed_chunks = sum(isinstance(e, AudioChunkEvent) and e.closed for e in events)
    assert closed_chunks == int((generated == TOKENS.end_of_audio).sum())
    audio_ids = generated[generated >= TOKENS.audio_0]
    assert codes == (audio_ids - TOKENS.audio_0).tolist()  # every code, those after the last end flushed too
    with count_compiles() as counts:
        model.generate(rows, audios=[speech(0.46, seed=9)], mode="turbo", max_new_tokens=MAX_NEW, eos_token_ids=())
    assert counts.compiles == 0  # same feature bucket, same prompt bucket
