"""The vectors of a saved index as plain arrays beside it: what a query reads them from.

hnswlib keeps the vectors but hands them back slowly (`get_items`: ~60-120 us for one 1280-d vector,
46 ms for a query's 400 candidates at 100k images), and the exact search of a small catalog needs
them all at open. So every save also writes, beside `index-NAME.bin`:
    index-NAME.labels.npy   int64, the live labels, ascending
    index-NAME.vectors.npy  float32, one row per label: the vector exactly as hnswlib returns it
                            (L2-normalised in a cosine space), so scores do not depend on the source
and records their sizes and crc32 in the index's sidecar ("copy"). On load a copy whose files or
labels disagree with the sidecar or the index is not used (the index answers alone, slowly, and the
next save writes a good copy); it is never trusted on its own.
"""

from __future__ import annotations

import copy
import io
import itertools
import os
import zlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from searcher.catalog import checksum

CHUNK = 4096  # rows written at a time: a save never holds a whole 100k x 1280 matrix in memory
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def paths(index_path: Path) -> tuple[Path, Path]:
    """(labels file, vectors file) of the index file `index_path`."""
    stem = index_path.with_suffix("")
    return stem.with_name(stem.name + ".labels.npy"), stem.with_name(stem.name + ".vectors.npy")


def temporary_paths(index_path: Path) -> list[Path]:
    """Where `write` puts the copy before the caller renames it into place."""
    return [p.with_name(p.name + ".tmp") for p in paths(index_path)]


class VectorCopy:
    """Sorted labels and an open vectors file, read with pread: a memory map would count every row
    a process ever read in its resident memory (1.8 GB for a query process at 100k images)."""

    def __init__(self, labels: np.ndarray, vectors_path: Path, dim: int) -> None:
        self.labels = labels
        self.dim = dim
        self.row_bytes = 4 * dim
        # Kept open: a later save replaces the file by rename; this copy goes on reading the one it checked.
        self._file = open(vectors_path, "rb")
        try:
            version = np.lib.format.read_magic(self._file)
            if version not in HEADER_READERS:
                raise ValueError(f"{vectors_path.name}: .npy format {version} is not read here")
            shape, fortran_order, dtype = HEADER_READERS[version](self._file)
            if dtype != np.float32 or fortran_order or shape != (len(labels), dim):
                raise ValueError(f"{vectors_path.name} holds {dtype} {shape}, expected float32 {(len(labels), dim)}")
        except ValueError:
            self._file.close()
            raise
        self.offset = self._file.tell()

    @classmethod
    def open(cls, index_path: Path, record: object, dim: int, live: set[int]) -> VectorCopy | None:
        """The copy the sidecar's `record` describes, or None when it is absent or does not match."""
        if not isinstance(record, dict):
            return None
        labels_path, vectors_path = paths(index_path)
        try:
            for path, key in ((labels_path, "labels"), (vectors_path, "vectors")):
                expected = record.get(key)
                if not isinstance(expected, dict) or expected.get("file_size") != path.stat().st_size:
                    return None
                if expected.get("checksum") != checksum.file_checksum(path):
                    return None
            labels = np.load(labels_path, allow_pickle=False)
            if labels.dtype != np.int64 or labels.ndim != 1:
                return None
            if len(labels) != len(live) or not np.array_equal(labels, np.fromiter(sorted(live), np.int64, len(live))):
                return None
            return cls(labels, vectors_path, dim)
        except (OSError, ValueError):
            return None

    def rows(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of each wanted label, whether the copy holds it)."""
        if not len(self.labels):
            return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
        rows = np.minimum(np.searchsorted(self.labels, wanted), len(self.labels) - 1)
        return rows, self.labels[rows] == wanted

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of these rows, in their order: one pread per run of consecutive rows (a
        query's candidates are scattered; dups reads whole ranges)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.empty((0, self.dim), dtype=np.float32)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        firsts = np.concatenate([[0], np.flatnonzero(np.diff(ordered) != 1) + 1])
        counts = np.diff(np.concatenate([firsts, [len(rows)]]))
        fd, size, offset = self._file.fileno(), self.row_bytes, self.offset
        data = b"".join(
            [os.pread(fd, n * size, offset + row * size) for row, n in zip(ordered[firsts].tolist(), counts.tolist())]
        )
        if len(data) != len(rows) * size:
            raise OSError(f"vector copy {self._file.name} is shorter than its header says")
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        out[order] = np.frombuffer(data, dtype=np.float32).reshape(len(rows), self.dim)
        return out

    def duplicate(self) -> VectorCopy:
        """Another reader of the same file (a duplicated descriptor, pread needs no shared offset):
        it goes on reading this copy after a later save closes this reader and renames a new one in."""
        other = copy.copy(self)
        other._file = os.fdopen(os.dup(self._file.fileno()), "rb")
        return other

    def close(self) -> None:
        self._file.close()


def write(index_path: Path, labels: np.ndarray, fetch: Callable[[np.ndarray], np.ndarray], dim: int) -> dict:
    """Write the copy of `labels` (ascending) to `temporary_paths(index_path)`, synced, for the
    caller to rename into place; `fetch(labels)` gives their vectors. Returns the sidecar's record
    of the two files (size and crc32 of each, computed as they are written). Plain writes, not a
    memory map: a full disk is then an OSError, not a SIGBUS."""
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    vectors = (fetch(labels[start : start + CHUNK]) for start in range(0, len(labels), CHUNK))
    labels_tmp, vectors_tmp = temporary_paths(index_path)
    return {
        "labels": _write_npy(labels_tmp, np.int64, (len(labels),), [labels]),
        "vectors": _write_npy(vectors_tmp, np.float32, (len(labels), dim), vectors),
    }


def _write_npy(path: Path, dtype, shape: tuple, blocks: Iterable[np.ndarray]) -> dict:
    """A C-order .npy file of `shape` from `blocks` (its rows, in order), synced: {file_size, checksum}."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    )
    crc, size = 0, 0
    with open(path, "wb") as f:
        for data in itertools.chain([header.getvalue()], (np.ascontiguousarray(b, dtype=dtype).tobytes() for b in blocks)):
            f.write(data)
            crc, size = zlib.crc32(data, crc), size + len(data)
        f.flush()
        os.fsync(f.fileno())
    return {"file_size": size, "checksum": checksum.as_text(crc)}
