"""The grain pipeline: jsonl -> encoded samples -> packed rows -> batches, split in data shards.

Records are split into `num_shards` shards (record i -> shard i % num_shards); each shard is
shuffled deterministically per epoch (repeated forever), encoded, packed and batched on its own.
Process p of P owns shards [p*S/P, (p+1)*S/P) and yields their batches concatenated, so the
global batch (all processes' rows in process order) does not depend on the number of processes.
The iterator state (JSON bytes, one file per process through grain's orbax handler) restores
exactly the batches a never-interrupted run would have seen.
"""

import json

import grain
from absl import flags
import jax
import numpy as np

from vita_jax.data.audio_codes import AudioCodeResolver, read_code_cache
from vita_jax.data.interleave import parse_ratios
from vita_jax.data.jsonl_source import JsonlSource, expand_paths
from vita_jax.data.packing import PackedRowsIterDataset
from vita_jax.data.samples import SampleEncoder


def shard_dataset(source, shard, num_shards, encoder, seq_len, rows_per_batch, seed, worker_count, read_threads):
    """One shard's IterDataset of batches {field: [rows_per_batch, ...]}. Encoding holds the GIL:
    parallelism comes from worker processes; read threads (0: none) only help slow storage.
    An encoder with `audio_slots` (VITA-Audio-Plus) adds the rows' audio features."""
    ds = grain.MapDataset.source(source)[shard::num_shards].shuffle(seed=seed).repeat().map(encoder)
    reads = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=4 * read_threads)
    records = len(range(shard, len(source), num_shards))
    ds = PackedRowsIterDataset(ds.to_iter_dataset(reads), seq_len, max_consecutive_skips=records,
                               audio_slots=getattr(encoder, "audio_slots", None))
    ds = ds.batch(rows_per_batch, drop_remainder=True)
    if worker_count > 0:
        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; callers without absl.app
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return ds


def owned_shards(num_shards, process_index, process_count):
    if num_shards % process_count:
        raise ValueError(f"data.num_shards={num_shards} must be a multiple of the process count {process_count}")
    per = num_shards // process_count
    return list(range(process_index * per, (process_index + 1) * per))


class ShardedBatchIterator:
    """This process's batches: its shards' batches concatenated along the rows."""

    def __init__(self, datasets, shards):
        self.shards = shards
        self._iterators = [iter(ds) for ds in datasets]

    def __iter__(self):
        return self

    def __next__(self):
        batches = [next(it) for it in self._iterators]
        return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

    def get_state(self):
        return json.dumps({str(s): it.get_state() for s, it in zip(self.shards, self._iterators)}).encode()

    def set_state(self, state):
        states = json.loads(state)
        if sorted(states) != sorted(map(str, self.shards)):
            raise ValueError(f"data iterator state holds shards {sorted(states)}, this process owns {self.shards}")
        for s, it in zip(self.shards, self._iterators):
            it.set_state(states[str(s)])

    def start_prefetch(self):
        """Called by grain's orbax checkpoint handler after it restores the iterator state."""
        for it in self._iterators:
            if hasattr(it, "start_prefetch"):
                it.start_prefetch()

    def close(self):
        for it in self._iterators:
            if hasattr(it, "close"):
                it.close()


def make_encoder(cfg, tokenizer, ids, speech_tokenizer=None, plus=None):
    """The SampleEncoder described by the data config. `plus`: (front end, `<|context_of_audio|>`
    id, audio slots per row, frames per slot) for VITA-Audio-Plus (data/plus_samples.py)."""
    cache = read_code_cache(expand_paths(cfg.code_cache)) if cfg.code_cache else {}
    resolver = AudioCodeResolver(cache, speech_tokenizer, cfg.data_root)
    if plus is not None:
        from vita_jax.data.plus_samples import PlusSampleEncoder

        return PlusSampleEncoder(tokenizer, ids, resolver, parse_ratios(cfg.ratios), cfg.seq_len, *plus,
                                 data_root=cfg.data_root, on_bad_sample=cfg.on_bad_sample)
    return SampleEncoder(tokenizer, ids, resolver, parse_ratios(cfg.ratios), cfg.seq_len, cfg.on_bad_sample)


def make_batch_iterator(cfg, encoder, global_batch_size, process_index=None, process_count=None):
    """This process's ShardedBatchIterator for data config `cfg` (see configs/ data fields)."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    num_shards = cfg.num_shards or process_count
    if global_batch_size % num_shards:
        raise ValueError(f"global batch size {global_batch_size} must be a multiple of data.num_shards {num_shards}")
    source = JsonlSource(expand_paths(cfg.files))
    if len(source) < num_shards:
        raise ValueError(f"{len(source)} samples cannot fill data.num_shards={num_shards} shards")
    shards = owned_shards(num_shards, process_index, process_count)
    datasets = [shard_dataset(source, s, num_shards, encoder, cfg.seq_len, global_batch_size // num_shards,
                              cfg.seed, cfg.worker_count, cfg.read_threads) for s in shards]
    return ShardedBatchIterator(datasets, shards)
