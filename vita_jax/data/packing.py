"""Greedy packing of variable-length samples into fixed-length rows (a checkpointable grain stage).

Row fields (int32): input_ids, labels (-100 = not learned, padding), segment_ids (1, 2, ... per
sample, 0 = padding), positions (restart at 0 per sample), skipped ([len(SKIP_REASONS)] counts of
the samples skipped while this row was filled). Samples keep their order; a sample that does not
fit starts the next row. The iterator state is the parent's state before the pending sample, so
a restored iterator rebuilds exactly the rows it would have produced. A whole pass over the
shard's records with every one skipped (`max_consecutive_skips`) raises NoUsableSamples instead
of spinning forever on a repeated data set.

With `audio_slots=(A, T)` (VITA-Audio-Plus) a row also holds audio_features [A, T, 560] float32
and audio_lengths [A] (0 = empty slot): its samples' input audios in order; a sample whose audios
would not fit in the remaining slots starts the next row.
"""

import logging

import grain
import numpy as np

from vita_jax.data.chat_template import IGNORE
from vita_jax.data.samples import SKIP_REASONS, Skip
from vita_jax.plus.frontend import FEATURE_SIZE

MAX_LOGGED_SKIPS = 20


class NoUsableSamples(ValueError):
    """Every record of a pass over the data was skipped."""


class PackedRowsIterDataset(grain.IterDataset):
    def __init__(self, parent, seq_len, max_consecutive_skips=None, audio_slots=None):
        super().__init__(parent)
        self.seq_len = seq_len
        self.max_consecutive_skips = max_consecutive_skips
        self.audio_slots = audio_slots

    def __iter__(self):
        return _PackedRowsIterator(self._parent.__iter__(), self.seq_len, self.max_consecutive_skips,
                                   self.audio_slots)


def empty_row(seq_len, audio_slots=None):
    row = {
        "input_ids": np.zeros(seq_len, np.int32), "labels": np.full(seq_len, IGNORE, np.int32),
        "segment_ids": np.zeros(seq_len, np.int32), "positions": np.zeros(seq_len, np.int32),
        "skipped": np.zeros(len(SKIP_REASONS), np.int32),
    }
    if audio_slots is not None:
        count, frames = audio_slots
        row["audio_features"] = np.zeros((count, frames, FEATURE_SIZE), np.float32)
        row["audio_lengths"] = np.zeros(count, np.int32)
    return row


class _PackedRowsIterator(grain.DatasetIterator):
    def __init__(self, parent, seq_len, max_consecutive_skips=None, audio_slots=None):
        super().__init__(parent)
        self.seq_len = seq_len
        self.max_consecutive_skips = max_consecutive_skips
        self.audio_slots = audio_slots
        self._pending, self._pending_state = None, None
        self._logged, self._consecutive_skips = 0, 0

    def __next__(self):
        row, used, segment, audios_used = empty_row(self.seq_len, self.audio_slots), 0, 0, 0
        while True:
            if self._pending is None:
                state = self._parent.get_state()
                try:
                    item = next(self._parent)
                except StopIteration:
                    if segment == 0 and not row["skipped"].any():
                        raise
                    return row
                if isinstance(item, Skip):
                    self._count_skip(row, item)
                    continue
                self._pending, self._pending_state, self._consecutive_skips = item, state, 0
            n = len(self._pending["input_ids"])
            if n > self.seq_len:
                raise ValueError(f"sample of {n} tokens exceeds the row length {self.seq_len}")
            audios = self._pending.get("audios", []) if self.audio_slots is not None else []
            if audios and len(audios) > self.audio_slots[0]:
                raise ValueError(f"sample of {len(audios)} audios exceeds the row's {self.audio_slots[0]} audio slots")
            if used + n > self.seq_len or audios_used + len(audios) > (self.audio_slots or (0,))[0]:
                return row
            segment += 1
            row["input_ids"][used:used + n] = self._pending["input_ids"]
            row["labels"][used:used + n] = self._pending["labels"]
            row["segment_ids"][used:used + n] = segment
            row["positions"][used:used + n] = np.arange(n)
            used += n
            for features in audios:
                row["audio_features"][audios_used, :len(features)] = features
                row["audio_lengths"][audios_used] = len(features)
                audios_used += 1
            self._pending = None

    def _count_skip(self, row, skip):
        row["skipped"][SKIP_REASONS.index(skip.reason)] += 1
        self._consecutive_skips += 1
        if self.max_consecutive_skips and self._consecutive_skips > self.max_consecutive_skips:
            raise NoUsableSamples(f"no usable sample: all {self.max_consecutive_skips} records of a pass over the data "
                                  f"were skipped, e.g. {skip.where} ({skip.reason}): {skip.message}")
        if self._logged < MAX_LOGGED_SKIPS:
            self._logged += 1
            logging.warning("skipped sample %s (%s): %s", skip.where, skip.reason, skip.message)

    def get_state(self):
        return {"parent": self._pending_state if self._pending is not None else self._parent.get_state()}

    def set_state(self, state):
        self._parent.set_state(state["parent"])
        self._pending, self._pending_state = None, None
