"""Random access to the lines of jsonl files (a grain data source): item i -> ("file:line", text).

Lines are read with os.pread (no shared file position), so grain's prefetch threads may read
concurrently."""

import glob
import os

import numpy as np


def expand_paths(patterns):
    """Files of comma-separated paths / glob patterns, in the order given (each pattern sorted)."""
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p]
    files = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern))
        if not matched:
            raise FileNotFoundError(f"data file not found: {pattern}")
        files += matched
    return files


class JsonlSource:
    """Indexes the non-empty lines of the files once (byte offsets); reads lines on demand."""

    def __init__(self, files):
        self.files = list(files)
        index = []
        for f, path in enumerate(self.files):
            with open(path, "rb") as fh:
                offset, number = 0, 0
                for line in fh:
                    number += 1
                    if line.strip():
                        index.append((f, offset, len(line), number))
                    offset += len(line)
        if not index:
            raise ValueError(f"no samples in {', '.join(self.files)}")
        self._index = np.asarray(index, np.int64)
        self._fds = {}

    def __len__(self):
        return len(self._index)

    def __getitem__(self, i):
        f, offset, length, number = (int(v) for v in self._index[i])
        fd = self._fds.get(f)
        if fd is None:
            fd = self._fds[f] = os.open(self.files[f], os.O_RDONLY)
        return f"{os.path.basename(self.files[f])}:{number}", os.pread(fd, length, offset).decode("utf-8")

    def __getstate__(self):  # worker processes reopen the files
        return {**self.__dict__, "_fds": {}}
