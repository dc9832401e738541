"""Random packed rows in the training batch layout, for benchmarks and tests (no data files)."""

import numpy as np


def random_packed_batch(vocab, rows=4, seq_len=32, seed=0):
    """{"input_ids", "labels", "segment_ids", "positions"} int32 numpy [rows, seq_len]: 3 samples per
    row (cut at random), a short padding tail, about 20% of the labels -100."""
    rng = np.random.default_rng(seed)
    batch = {k: np.zeros((rows, seq_len), np.int32) for k in ("input_ids", "labels", "segment_ids", "positions")}
    for r in range(rows):
        cuts = sorted(rng.choice(np.arange(4, seq_len - 2), 2, replace=False))
        for s, (a, b) in enumerate(zip([0, *cuts], [*cuts, seq_len - rng.integers(0, 3)]), 1):
            ids = rng.integers(0, vocab, b - a)
            batch["input_ids"][r, a:b] = ids
            batch["labels"][r, a:b] = np.where(rng.random(b - a) < 0.8, ids, -100)
            batch["segment_ids"][r, a:b] = s
            batch["positions"][r, a:b] = np.arange(b - a)
        batch["labels"][r, batch["segment_ids"][r] == 0] = -100
    return batch
