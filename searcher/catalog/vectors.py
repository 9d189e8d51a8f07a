"""Vector indexes: the VectorIndex protocol every caller is typed against, and its hnswlib implementation.

Labels are catalog image ids. Index files are a cache of the catalog: each is saved with a
sidecar JSON recording the extractor version and the catalog generation it reflects, and is
rebuilt from the catalog whenever either disagrees, or the file is missing or unreadable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import hnswlib
import numpy as np

M = 16
EF_CONSTRUCTION = 200
MIN_EF_SEARCH = 128
GROWTH = 1.5
SIDECAR_FORMAT = 1
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
    def save(self, generation: int) -> None: ...
    def __contains__(self, image_id: int) -> bool: ...
    def __len__(self) -> int: ...
    def ids(self) -> list[int]: ...


class IndexUnusable(Exception):
    """The saved index cannot be used as it is (missing, corrupt, other version or generation)."""


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

    @property
    def sidecar_path(self) -> Path:
        return self.path.with_suffix(".json")

    @classmethod
    def load(cls, path: Path, dim: int, space: str, version: str, generation: int) -> HnswIndex:
        """The saved index, or IndexUnusable saying why it cannot be trusted."""
        index = cls(path, dim, space, version, empty=False)
        if not index.path.exists() or not index.sidecar_path.exists():
            raise IndexUnusable("missing")
        try:
            meta = json.loads(index.sidecar_path.read_text())
        except (OSError, ValueError) as e:
            raise IndexUnusable(f"unreadable sidecar ({e})") from None
        expected = {"format": SIDECAR_FORMAT, "dim": dim, "space": space, "version": version}
        for key, value in expected.items():
            if meta.get(key) != value:
                raise IndexUnusable(f"{key} is {meta.get(key)!r}, expected {value!r}")
        if meta.get("generation") != generation:
            raise IndexUnusable(f"behind the catalog (generation {meta.get('generation')} vs {generation}; interrupted run?)")
        if meta.get("file_size") != index.path.stat().st_size:
            raise IndexUnusable("file size differs from the one recorded")
        try:
            index._index.load_index(str(index.path), allow_replace_deleted=True)
        except (RuntimeError, ValueError, MemoryError) as e:
            raise IndexUnusable(f"corrupt ({e})") from None
        if index._index.dim != dim:
            raise IndexUnusable("dimension mismatch")
        index._deleted = set(meta.get("deleted", []))
        index._live = set(index._index.get_ids_list()) - index._deleted
        return index

    def __len__(self) -> int:
        return len(self._live)

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

    def vectors(self, ids: list[int]) -> np.ndarray:
        """Stored vectors of these ids (cosine spaces store them L2-normalised)."""
        if not ids:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.asarray(self._index.get_items(list(ids), return_type="numpy"), dtype=np.float32)

    def save(self, generation: int) -> None:
        """Write index then sidecar, each to a temporary name first and renamed over the old one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        self._index.save_index(str(tmp))
        size = tmp.stat().st_size
        os.replace(tmp, self.path)
        meta = {
            "format": SIDECAR_FORMAT,
            "dim": self.dim,
            "space": self.space,
            "version": self.version,
            "generation": generation,
            "file_size": size,
            "count": len(self._live),
            "deleted": sorted(self._deleted),
        }
        tmp_meta = self.sidecar_path.with_name(self.sidecar_path.name + ".tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, self.sidecar_path)


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


def load_or_rebuild(path: Path, extractor, generation: int, batches, warn=None) -> HnswIndex:
    """The saved index at `path` if it matches (extractor version, catalog generation), else one rebuilt
    from `batches()` (and saved, when the folder is writable). `warn` receives a one-line reason."""
    try:
        return HnswIndex.load(path, extractor.dim, extractor.space, extractor.version, generation)
    except IndexUnusable as reason:
        index = rebuild(path, extractor, batches())
        if warn and (len(index) or str(reason) != "missing"):
            warn(f"{extractor.name} index {reason}: rebuilt from the catalog ({len(index)} vectors)")
    try:
        index.save(generation)
    except OSError as e:
        if warn:
            warn(f"cannot save rebuilt {extractor.name} index: {e.strerror}")
    return index


def read_sidecar(path: Path) -> dict:
    """The sidecar JSON of an index file ({} when missing or unreadable)."""
    try:
        return json.loads(Path(path).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
