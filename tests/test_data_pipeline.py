"""Packing, bad-input handling, and the grain pipeline: determinism, saved state, shards per process."""

import json

import ml_collections
import numpy as np
import pytest

from tests.helpers.train import SAMPLE_DATA, tiny_tokenizer
from vita_jax.data.audio_codes import AudioCodeResolver
from vita_jax.data.chat_template import IGNORE
from vita_jax.data.interleave import BOOST
from vita_jax.data.pipeline import make_batch_iterator, make_encoder
from vita_jax.data.samples import SKIP_REASONS, SampleEncoder, SampleError


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def data_config(files=SAMPLE_DATA, **fields):
    cfg = dict(files=files, tokenizer="", num_audio_codes=64, ratios="boost", seq_len=160, num_shards=2, seed=3,
               worker_count=0, read_threads=0, on_bad_sample="skip", code_cache="", speech_tokenizer_dir="",
               data_root="")
    cfg.update(fields)
    return ml_collections.ConfigDict(cfg)


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_rows_are_packed_samples_with_restarting_positions(tok):
    tokenizer, ids = tok
    cfg = data_config(num_shards=1)
    encoder = make_encoder(cfg, tokenizer, ids)
    batch = next(make_batch_iterator(cfg, encoder, global_batch_size=2, process_index=0, process_count=1))
    assert batch["input_ids"].shape == (2, 160) and batch["skipped"].shape == (2, len(SKIP_REASONS))
    with open(SAMPLE_DATA) as f:
        encoded = [encoder((f"l{i}", line)) for i, line in enumerate(f)]
    by_ids = {tuple(s["input_ids"]): s for s in encoded if isinstance(s, dict)}
    assert batch["segment_ids"].max() >= 2  # several samples share a row
    for row in range(2):
        seg, pos = batch["segment_ids"][row], batch["positions"][row]
        n_segments = seg.max()
        for s in range(1, n_segments + 1):
            where = np.flatnonzero(seg == s)
            assert np.array_equal(where, np.arange(where[0], where[0] + len(where)))  # contiguous
            assert np.array_equal(pos[where], np.arange(len(where)))
            sample = by_ids[tuple(batch["input_ids"][row][where])]
            assert np.array_equal(batch["labels"][row][where], sample["labels"])
        pad = seg == 0
        assert np.all(batch["labels"][row][pad] == IGNORE) and np.all(pos[pad] == 0)
        assert np.flatnonzero(pad).min(initial=160) >= np.flatnonzero(~pad).max()  # padding at the end


def bad_lines(tmp_path):
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
    lines = [
        good,
        {"messages": [{"role": "user", "content": "<|audio|> and <|audio|>"}, {"role": "assistant", "content": "x"}],
         "audios": ["a.wav"], "audio_codes": [[1]]},                                        # tags != audios
        {"messages": [{"role": "user", "content": "<|audio|>"}, {"role": "assistant", "content": "x"}],
         "audios": ["missing.wav"]},                                                         # no file, no codes
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}]},  # empty turn
        {"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "x"}]},  # long
        "not json",
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_bad_samples_are_counted_skips_or_clear_errors(tok, tmp_path):
    tokenizer, ids = tok
    path = bad_lines(tmp_path)
    encoder = SampleEncoder(tokenizer, ids, AudioCodeResolver(data_root=str(tmp_path)), BOOST, 160)
    with open(path) as f:
        results = [encoder((f"bad.jsonl:{i + 1}", line)) for i, line in enumerate(f)]
    assert isinstance(results[0], dict)
    assert [r.reason for r in results[1:]] == ["audio_mismatch", "missing_audio", "empty_assistant", "too_long",
                                               "bad_record"]
    assert "missing.wav" in results[2].message and results[4].where == "bad.jsonl:5"
    strict = SampleEncoder(tokenizer, ids, AudioCodeResolver(), BOOST, 160, on_bad_sample="error")
    with pytest.raises(SampleError, match="bad.jsonl:2: audio_mismatch: 2 <\\|audio\\|> tags but 1 audios"):
        strict(("bad.jsonl:2", path.read_text().splitlines()[1]))

    # through the pipeline: every skip is counted in the batches, nothing is lost silently
    cfg = data_config(files=str(path), num_shards=1, seq_len=40)
    it = make_batch_iterator(cfg, make_encoder(cfg, tokenizer, ids), 1, process_index=0, process_count=1)
    batches = take(it, 6)  # an epoch is one good sample and one bad sample of each kind
    assert all(b["segment_ids"].max() == 1 for b in batches)  # only the good sample fits a 40-token row
    counts = np.sum([b["skipped"].sum(axis=0) for b in batches], axis=0)
    assert all(len(batches) - 1 <= n <= len(batches) + 1 for n in counts), counts


def test_iterator_state_restores_the_same_batches(tok):
    tokenizer, ids = tok
    cfg = data_config()
    encoder = make_encoder(cfg, tokenizer, ids)
    make = lambda: make_batch_iterator(cfg, encoder, 4, process_index=0, process_count=1)  # noqa: E731
    first = make()
    take(first, 3)
    state = first.get_state()
    want = take(first, 4)
    resumed = make()
    resumed.set_state(state)
    for a, b in zip(want, take(resumed, 4)):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    other_seed = make_batch_iterator(data_config(seed=4), encoder, 4, process_index=0, process_count=1)
    assert not all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(take(make(), 3),
                                                                                   take(other_seed, 3)))


def test_each_process_reads_only_its_shards(tok):
    tokenizer, ids = tok
    cfg = data_config(num_shards=2)
    encoder = make_encoder(cfg, tokenizer, ids)
    single = make_batch_iterator(cfg, encoder, 4, process_index=0, process_count=1)
    parts = [make_batch_iterator(cfg, encoder, 4, process_index=p, process_count=2) for p in (0, 1)]
    assert [p.shards for p in parts] == [[0], [1]]
    for _ in range(3):
        whole, halves = next(single), [next(p) for p in parts]
        for k in whole:
            np.testing.assert_array_equal(whole[k], np.concatenate([h[k] for h in halves]))
    with pytest.raises(ValueError, match="num_shards=3 must be a multiple of the process count 2"):
        make_batch_iterator(data_config(num_shards=3), encoder, 6, process_index=0, process_count=2)


def test_worker_processes_give_a_deterministic_resumable_stream(tok):
    tokenizer, ids = tok
    cfg = data_config(num_shards=1, worker_count=1)
    encoder = make_encoder(cfg, tokenizer, ids)
    it = make_batch_iterator(cfg, encoder, 2, process_index=0, process_count=1)
    try:
        take(it, 2)
        state = it.get_state()
        want = take(it, 2)
    finally:
        it.close()
    resumed = make_batch_iterator(cfg, encoder, 2, process_index=0, process_count=1)
    try:
        resumed.set_state(state)
        for a, b in zip(want, take(resumed, 2)):
            np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    finally:
        resumed.close()
