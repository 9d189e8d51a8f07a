"""Vector indexes: the VectorIndex protocol every caller is typed against, and its hnswlib implementation.

Labels are catalog image ids. Index files are a cache of the catalog: each is saved with a
sidecar JSON recording the extractor version, the catalog state it was built from (a
CatalogStamp: generation, signature rows, highest id) and a checksum of the file, and is rebuilt
from the catalog whenever any of them disagrees, or the file is missing, short or corrupt. The
checksum is verified before hnswlib reads the file (hnswlib trusts its input: a corrupt file
can crash it). A save writes and syncs a temporary file, checks it is whole (a full disk makes
hnswlib write a short file without a word), then renames it into place, sidecar last. Each save
also writes the vectors as arrays beside the index (vector_copy.py), which is where vectors() reads
them from.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import hnswlib
import numpy as np

from searcher.catalog import vector_copy
from searcher.catalog.checksum import file_checksum
from searcher.catalog.vector_copy import VectorCopy

M = 16
EF_CONSTRUCTION = 200
MIN_EF_SEARCH = 128
GROWTH = 1.5
SIDECAR_FORMAT = 2
# hnswlib's saveIndex header (hnswalg.h): offsetLevel0, max_elements, cur_element_count,
# size_data_per_element, label_offset, offsetData (size_t); maxlevel (int); enterpoint (uint32);
# maxM, maxM0, M (size_t); mult (double); ef_construction (size_t). Then cur_element_count level-0
# records of size_data_per_element bytes, then per element a uint32 length and that many bytes.
_HNSW_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
_LINK_SIZE = struct.Struct("<I")
# Up to this many live vectors a search scans them all (a few MB of arithmetic): the answer is exact,
# so it does not depend on the order the vectors were inserted in (HNSW graphs do), and ties are
# broken by label. Above it the HNSW graph answers (approximate; recall measured by bench/scale.py).
EXACT_LIMIT = 5_000


class VectorIndex(Protocol):
    """The seam for vector stores (hnswlib here; e.g. Milvus next): what ingest, query and dups need."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: Iterable[int]) -> None: ...
    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def search_many(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def vectors(self, ids: list[int]) -> np.ndarray: ...
    def save(self, stamp: CatalogStamp) -> None: ...
    def __contains__(self, image_id: int) -> bool: ...
    def __len__(self) -> int: ...
    def ids(self) -> list[int]: ...


class IndexUnusable(Exception):
    """The saved index cannot be used as it is (missing, corrupt, other version or catalog state)."""


@dataclass(frozen=True)
class CatalogStamp:
    """The catalog state an index must reflect: its generation and, for this signature, how many
    vectors it holds and the highest image id (cheap content checks that catch an index saved
    from another moment of the catalog, whichever process saved it)."""

    generation: int
    count: int
    max_id: int

    def as_dict(self) -> dict:
        return {"generation": self.generation, "count": self.count, "max_id": self.max_id}


def check_hnsw_file(path: Path) -> None:
    """IndexUnusable unless the file is exactly as long as its own header and link lists say: a
    write cut short (disk full) leaves a shorter file, which hnswlib's save reports no error for."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _HNSW_HEADER.size:
            raise IndexUnusable(f"short file ({size} bytes)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            fields = _HNSW_HEADER.unpack_from(data, 0)
            count, record = fields[2], fields[3]
            position = _HNSW_HEADER.size + count * record
            for _ in range(count):
                if position + 4 > size:
                    raise IndexUnusable("short file (cut inside its link lists)")
                position += 4 + _LINK_SIZE.unpack_from(data, position)[0]
    if position != size:
        raise IndexUnusable(f"file is {size} bytes, its own structure says {position}")


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HnswIndex:
    """hnswlib index with growth, deletions (slots reused) and an atomic save with a sidecar."""

    def __init__(self, path: Path, dim: int, space: str, version: str, empty: bool = True):
        self.path = Path(path)
        self.dim = dim
        self.space = space
        self.version = version
        self._index = hnswlib.Index(space=space, dim=dim)
        if empty:
            self._index.init_index(max_elements=1024, ef_construction=EF_CONSTRUCTION, M=M, allow_replace_deleted=True)
        self._deleted: set[int] = set()
        self._live: set[int] = set()
        self._dense: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # labels, vectors, squared norms
        self._copy: VectorCopy | None = None  # the vectors as last saved (vector_copy.py)
        self._changed: set[int] = set()  # labels added or replaced since: the copy is wrong for them

    @property
    def sidecar_path(self) -> Path:
        return self.path.with_suffix(".json")

    @classmethod
    def load(cls, path: Path, dim: int, space: str, version: str, stamp: CatalogStamp) -> HnswIndex:
        """The saved index, or IndexUnusable saying why it cannot be trusted."""
        index = cls(path, dim, space, version, empty=False)
        meta = index._check_sidecar(stamp)
        try:
            if meta.get("file_size") != index.path.stat().st_size:
                raise IndexUnusable("file size differs from the one recorded")
            if meta.get("checksum") != file_checksum(index.path):
                raise IndexUnusable("corrupt (checksum differs from the one recorded)")
        except OSError as e:
            raise IndexUnusable(f"unreadable ({e.strerror})") from None
        try:
            index._index.load_index(str(index.path), allow_replace_deleted=True)
        except (RuntimeError, ValueError, MemoryError) as e:
            raise IndexUnusable(f"corrupt ({e})") from None
        if index._index.dim != dim:
            raise IndexUnusable("dimension mismatch")
        deleted = meta.get("deleted", [])
        index._deleted = set(deleted) if isinstance(deleted, list) else set()
        index._live = set(index._index.get_ids_list()) - index._deleted
        if len(index._live) != stamp.count:
            raise IndexUnusable(f"holds {len(index._live)} vectors, the catalog {stamp.count}")
        index._copy = VectorCopy.open(index.path, meta.get("copy"), dim, index._live)
        return index

    def _check_sidecar(self, stamp: CatalogStamp) -> dict:
        """The sidecar, if it describes an index of this extractor saved from the catalog as it is now."""
        if not self.path.exists() or not self.sidecar_path.exists():
            raise IndexUnusable("missing")
        try:
            meta = json.loads(self.sidecar_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexUnusable(f"unreadable sidecar ({e})") from None
        if not isinstance(meta, dict):
            raise IndexUnusable(f"sidecar holds a JSON {type(meta).__name__}, not an object")
        expected = {"format": SIDECAR_FORMAT, "dim": self.dim, "space": self.space, "version": self.version}
        for key, value in expected.items():
            if meta.get(key) != value:
                raise IndexUnusable(f"{key} is {meta.get(key)!r}, expected {value!r}")
        saved = meta.get("catalog")
        if saved != stamp.as_dict():
            raise IndexUnusable(f"saved from another state of the catalog ({_state(saved)}, now {_state(stamp.as_dict())})")
        return meta

    def __len__(self) -> int:
        return len(self._live)

    @property
    def has_copy(self) -> bool:
        """Whether vectors() reads from a saved vector copy (vector_copy.py) rather than from hnswlib."""
        return self._copy is not None

    def open_saved_vectors(self) -> VectorCopy | None:
        """A reader of its own on the saved vector copy, when that copy holds every live vector as
        it is now (none added or replaced since it was written), else None. The caller closes it;
        it stays readable after this index is let go or saved again (a pass over the whole catalog,
        dups, reads vectors from it in blocks instead of holding them all)."""
        if self._copy is None or self._changed:
            return None
        return self._copy.duplicate()

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._live

    def ids(self) -> list[int]:
        """Labels of the live vectors, ascending."""
        return sorted(self._live)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace vectors by label (an existing label gets its new vector)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._dense = None
        if self._copy is not None:
            self._changed.update(int(i) for i in ids)
        revived = [int(i) for i in ids if int(i) in self._deleted]
        for label in revived:
            self._index.unmark_deleted(label)
            self._deleted.discard(label)
        needed = self._index.get_current_count() + len(ids)
        if needed > self._index.get_max_elements():
            self._index.resize_index(max(needed, int(self._index.get_max_elements() * GROWTH)))
        self._index.add_items(vectors, ids, replace_deleted=True)
        self._live.update(int(i) for i in ids)
        if self._deleted:
            # Replaced slots drop their old label from the index.
            self._deleted &= set(self._index.get_ids_list())

    def remove(self, ids: Iterable[int]) -> None:
        self._dense = None
        for image_id in ids:
            image_id = int(image_id)
            if image_id in self._live:
                self._index.mark_deleted(image_id)
                self._live.discard(image_id)
                self._deleted.add(image_id)

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances) of the k nearest live vectors, nearest first.

        hnswlib distances: "l2" is the squared L2 distance, "cosine" is 1 - cosine similarity.
        """
        labels, distances = self.search_many(np.asarray(vector, np.float32).reshape(1, -1), k)
        return labels[0], distances[0]

    def search_many(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batched kNN: (labels, distances), one row per vector, nearest first; rows are padded with -1
        labels (and inf distances) when fewer than k live vectors exist."""
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        k = min(k, len(self._live))
        if k <= 0 or not len(vectors):
            return np.full((len(vectors), 0), -1, dtype=np.int64), np.empty((len(vectors), 0), dtype=np.float32)
        if len(self._live) <= EXACT_LIMIT:
            return self._exact_search(vectors, k)
        self._index.set_ef(max(MIN_EF_SEARCH, 2 * k))
        labels, distances = self._index.knn_query(vectors, k=k)
        return labels.astype(np.int64), distances

    def _exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """kNN by scanning every live vector, in hnswlib's distances; ties go to the smaller label."""
        if self._dense is None:
            labels = np.array(sorted(self._live), dtype=np.int64)
            matrix = self.vectors(list(labels))
            self._dense = (labels, matrix, np.einsum("ij,ij->i", matrix, matrix))
        labels, matrix, norms = self._dense
        if self.space == "cosine":
            unit = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
            distances = 1.0 - unit @ matrix.T
        else:
            distances = np.maximum(
                np.einsum("ij,ij->i", queries, queries)[:, None] + norms[None, :] - 2.0 * (queries @ matrix.T), 0.0
            )
        rows = np.arange(len(queries))[:, None]
        near = (
            np.argpartition(distances, k - 1, axis=1)[:, :k]
            if k < len(labels)
            else np.tile(np.arange(len(labels)), (len(queries), 1))
        )
        order = np.lexsort((labels[near], distances[rows, near]), axis=1)
        near = near[rows, order]
        return labels[near], distances[rows, near].astype(np.float32)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Stored vectors of these ids (cosine spaces store them L2-normalised): from the exact
        search's matrix or the saved copy where they hold them, else from hnswlib (slow)."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not len(wanted):
            return np.empty((0, self.dim), dtype=np.float32)
        if self._dense is not None:
            labels, matrix, _ = self._dense
            rows = np.minimum(np.searchsorted(labels, wanted), len(labels) - 1)
            if np.array_equal(labels[rows], wanted):
                return matrix[rows]
        out = np.empty((len(wanted), self.dim), dtype=np.float32)
        found = np.zeros(len(wanted), dtype=bool)
        if self._copy is not None:
            rows, found = self._copy.rows(wanted)
            if self._changed:
                found &= ~np.isin(wanted, np.fromiter(self._changed, np.int64, len(self._changed)))
            out[found] = self._copy.read(rows[found])
        if not found.all():
            # A list, not return_type="numpy": the latter is 2x slower in hnswlib 0.8.
            out[~found] = np.asarray(self._index.get_items(wanted[~found].tolist()), dtype=np.float32)
        return out

    def save(self, stamp: CatalogStamp) -> None:
        """Record this index as the one of catalog state `stamp`: index file, then sidecar, each written
        to a temporary name, synced, checked and renamed over the old one. An index that does not
        hold `stamp`'s vectors is refused (IndexUnusable); a failed write raises OSError and leaves
        the previous files as they were."""
        if len(self._live) != stamp.count or max(self._live, default=0) != stamp.max_id:
            raise IndexUnusable(
                f"holds {len(self._live)} vectors up to id {max(self._live, default=0)}, the catalog {stamp.count} up to {stamp.max_id}"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp_meta = self.sidecar_path.with_name(self.sidecar_path.name + ".tmp")
        labels = np.fromiter(sorted(self._live), np.int64, len(self._live))
        tmp_copy = vector_copy.temporary_paths(self.path)
        try:
            self._index.save_index(str(tmp))
            _sync(tmp)
            try:
                check_hnsw_file(tmp)
            except IndexUnusable as e:  # hnswlib does not report failed writes; this is what they leave
                raise OSError(f"the index file was not written whole ({e}); is the disk full?") from None
            copy_record = vector_copy.write(self.path, labels, self.vectors, self.dim)
            meta = {
                "format": SIDECAR_FORMAT,
                "dim": self.dim,
                "space": self.space,
                "version": self.version,
                "catalog": stamp.as_dict(),
                "file_size": tmp.stat().st_size,
                "checksum": file_checksum(tmp),
                "count": len(self._live),
                "deleted": sorted(self._deleted),
                "copy": copy_record,
            }
            with open(tmp_meta, "w", encoding="utf-8") as f:
                f.write(json.dumps(meta))
                f.flush()
                os.fsync(f.fileno())
            for done, final in zip(tmp_copy, vector_copy.paths(self.path)):
                os.replace(done, final)
            os.replace(tmp, self.path)
            os.replace(tmp_meta, self.sidecar_path)
        finally:
            for leftover in (tmp, tmp_meta, *tmp_copy):
                leftover.unlink(missing_ok=True)
        if self._copy is not None:
            self._copy.close()
        self._copy = VectorCopy(labels, vector_copy.paths(self.path)[1], self.dim)
        self._changed = set()


def _state(saved) -> str:
    if not isinstance(saved, dict):
        return "no catalog state recorded"
    return f"generation {saved.get('generation')}, {saved.get('count')} vectors up to id {saved.get('max_id')}"


def build(path: Path, dim: int, space: str, version: str, batches: Iterable[tuple[Sequence[int], np.ndarray]]) -> HnswIndex:
    """A fresh index of the given (ids, vectors) batches (not saved): every vector backend is a
    cache that is rebuilt this way from the catalog."""
    index = HnswIndex(path, dim, space, version)
    for ids, vectors in batches:
        if len(ids):
            index.add(np.asarray(ids, dtype=np.int64), vectors)
    return index


def rebuild(path: Path, extractor, batches: Iterable[tuple[Sequence[int], Sequence[bytes]]]) -> HnswIndex:
    """A fresh index of this extractor's embeddings of the given (ids, stored blobs) batches."""
    vectors = (
        (ids, np.stack([extractor.embedding(extractor.from_blob(b)) for b in blobs]) if len(ids) else None)
        for ids, blobs in batches
    )
    return build(path, extractor.dim, extractor.space, extractor.version, vectors)


def load_or_rebuild(path: Path, extractor, stamp: CatalogStamp, batches, warn=None, save=None) -> HnswIndex:
    """The saved index at `path` if it matches (extractor version, catalog stamp, checksum), else one
    rebuilt from `batches()`. A rebuilt index, or a saved one without its vector copy (saved by an
    older searcher, or the copy is damaged), is handed to `save(index)` (the catalog decides whether
    it may be recorded as current), if given. `warn` receives one-line reasons."""
    try:
        index = HnswIndex.load(path, extractor.dim, extractor.space, extractor.version, stamp)
    except IndexUnusable as reason:
        index = rebuild(path, extractor, batches())
        if warn and (len(index) or str(reason) != "missing"):
            warn(f"{extractor.name} index {reason}: rebuilt from the catalog ({len(index)} vectors)")
    else:
        if index.has_copy or not len(index):
            return index
    if save is not None:
        save(index)
    return index


def read_sidecar(path: Path) -> dict:
    """The sidecar JSON of an index file ({} when missing, unreadable or not an object)."""
    try:
        meta = json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}
