"""Streaming safetensors reading and writing with numpy (bfloat16 through ml_dtypes).

Format: 8-byte little-endian header length, a JSON header {key: {dtype, shape, data_offsets}},
then the raw little-endian tensor bytes. Tensors are read one at a time (no mmap, no whole-file
load) so an importer holds at most one source tensor in memory at once.
"""

import json
import os
import struct

import ml_dtypes
import numpy as np

DTYPES = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8), "BOOL": np.dtype(np.bool_),
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


class SafetensorsError(ValueError):
    """A malformed, truncated or unsupported safetensors file; the message names the file."""


class SafetensorsReader:
    """Reads tensors of one .safetensors file on demand, checking the header against the file size."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise SafetensorsError(f"{path}: truncated safetensors file ({size} bytes, no header)")
            (header_len,) = struct.unpack("<Q", raw)
            if 8 + header_len > size:
                raise SafetensorsError(f"{path}: truncated safetensors file (header of {header_len} bytes, file {size})")
            try:
                header = json.loads(f.read(header_len))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise SafetensorsError(f"{path}: unreadable safetensors header: {err}") from err
        self.metadata = header.pop("__metadata__", {}) or {}
        self.data_start = 8 + header_len
        self.entries = header
        for key, entry in header.items():
            if entry["dtype"] not in DTYPES:
                raise SafetensorsError(f"{path}: tensor {key!r} has unsupported dtype {entry['dtype']}")
            begin, end = entry["data_offsets"]
            expected = int(np.prod(entry["shape"], dtype=np.int64)) * DTYPES[entry["dtype"]].itemsize
            if end - begin != expected:
                raise SafetensorsError(f"{path}: tensor {key!r} spans {end - begin} bytes, shape "
                                       f"{entry['shape']} {entry['dtype']} needs {expected}")
            if self.data_start + end > size:
                raise SafetensorsError(f"{path}: truncated safetensors file: tensor {key!r} ends at byte "
                                       f"{self.data_start + end}, file has {size}")

    def keys(self):
        return list(self.entries)

    def shape(self, key):
        return tuple(self.entries[key]["shape"])

    def dtype(self, key):
        return DTYPES[self.entries[key]["dtype"]]

    def read(self, key):
        """The tensor `key` as a fresh numpy array."""
        entry = self.entries[key]
        out = np.empty(entry["shape"], DTYPES[entry["dtype"]])
        with open(self.path, "rb") as f:
            f.seek(self.data_start + entry["data_offsets"][0])
            view = memoryview(out.reshape(-1).view(np.uint8))
            if f.readinto(view) != out.nbytes:
                raise SafetensorsError(f"{self.path}: truncated while reading tensor {key!r}")
        return out


class SafetensorsSource:
    """The tensors of several .safetensors files as one source (keys, shape, where, read), for
    `vita_jax.convert.rules.import_tree`; a key stored in two files is refused."""

    def __init__(self, paths, name):
        self.name = name
        self.readers, self.owner = [SafetensorsReader(path) for path in paths], {}
        for reader in self.readers:
            for key in reader.keys():
                if key in self.owner:
                    raise SafetensorsError(f"{reader.path}: tensor {key!r} also stored in {self.owner[key].path}")
                self.owner[key] = reader

    def keys(self):
        return list(self.owner)

    def shape(self, key):
        return self.owner[key].shape(key)

    def dtype(self, key):
        return self.owner[key].dtype(key)

    def where(self, key):
        return self.owner[key].path

    def read(self, key):
        return self.owner[key].read(key)


def write_safetensors(path, specs, produce, metadata=None):
    """Write tensors one by one. `specs`: list of (key, shape, numpy dtype) fixing the layout;
    `produce(key)` returns that tensor (converted to the given dtype and shape by the caller)."""
    header, offset = {}, 0
    for key, shape, dtype in specs:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[key] = {"dtype": DTYPE_NAMES[np.dtype(dtype)], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header = {"__metadata__": metadata, **header}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for key, shape, dtype in specs:
            tensor = np.ascontiguousarray(produce(key))
            if tensor.shape != tuple(shape) or tensor.dtype != np.dtype(dtype):
                raise ValueError(f"{path}: tensor {key!r} produced as {tensor.shape} {tensor.dtype}, "
                                 f"expected {tuple(shape)} {np.dtype(dtype)}")
            f.write(tensor.reshape(-1).view(np.uint8).data)
