"""Vector indexes on Milvus (`--vectors milvus:URI`): a server (`http://host:19530`) or a Milvus
Lite file (`./vectors.db`, the same client with an embedded server). Needs the milvus extra.

One collection per catalog and signature, named `searcher_<catalog id>_<signature>`; ids are
catalog image ids. Like the hnswlib files, a collection is a cache of the catalog: its
properties record the extractor version, dimension, space and the catalog generation it
reflects, and a collection that disagrees is dropped and rebuilt from the catalog.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Iterable, Sequence

import numpy as np

# gRPC's own logging would print keepalive chatter with the embedded server on stderr.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from searcher.catalog.vectors import IndexUnusable
from searcher.errors import CatalogError, UsageError

M = 16  # the hnswlib parameters, so both backends rank alike
EF_CONSTRUCTION = 200
MIN_EF_SEARCH = 128
WRITE_BATCH = 2000  # rows per upsert call (gRPC messages stay well under their 64 MB cap)
READ_BATCH = 4000  # ids per get call
SEARCH_BATCH = 256  # query vectors per search call (Milvus allows up to 16384)
FORMAT = "1"
_METRICS = {"l2": "L2", "cosine": "COSINE"}

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def client(uri: str):
    """One MilvusClient per URI and process (a Lite file is served by one embedded server)."""
    with _clients_lock:
        if uri not in _clients:
            try:
                import logging

                from pymilvus import MilvusClient

                # pymilvus warns on every iterator over Milvus Lite (no server timestamps): not the user's concern.
                logging.getLogger("pymilvus").setLevel(logging.ERROR)
            except ImportError:
                raise UsageError("--vectors milvus: needs the milvus extra: pip install 'searcher[milvus]'") from None
            if "://" not in uri:
                os.makedirs(os.path.dirname(uri) or ".", exist_ok=True)
            try:
                _clients[uri] = MilvusClient(uri, token=os.environ.get("MILVUS_TOKEN", ""))
            except Exception as e:
                raise CatalogError(f"cannot reach Milvus at {uri}: {type(e).__name__}: {e}") from None
        return _clients[uri]


def close_clients() -> None:
    with _clients_lock:
        for c in _clients.values():
            try:
                c.close()
            except Exception:  # closing is best effort; the embedded server exits with us anyway
                pass
        _clients.clear()


def collection_name(catalog_id: str, signature: str) -> str:
    """Milvus names allow letters, digits and underscores only."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"searcher_{catalog_id}_{signature}")


def collection_properties(uri: str, name: str) -> dict | None:
    """The searcher.* properties of a collection plus its row count ("count"); None when it does not exist."""
    c = client(uri)
    if not c.has_collection(name):
        return None
    props = {k.removeprefix("searcher."): v for k, v in c.describe_collection(name).get("properties", {}).items()}
    props["count"] = int(c.get_collection_stats(name).get("row_count", 0))
    return props


class MilvusIndex:
    """A VectorIndex on one Milvus collection (see searcher.index.VectorIndex)."""

    def __init__(self, uri: str, name: str, dim: int, space: str, version: str):
        if space not in _METRICS:
            raise CatalogError(f"Milvus has no {space!r} space")
        self.uri, self.name, self.dim, self.space, self.version = uri, name, dim, space, version
        self.metric = _METRICS[space]
        self.client = client(uri)
        self._ids: set[int] | None = None  # ids in the collection, read once when first needed

    # ---- life cycle ----

    @classmethod
    def load(cls, uri: str, name: str, dim: int, space: str, version: str, stamp) -> MilvusIndex:
        """The collection if it was saved from catalog state `stamp` (a vectors.CatalogStamp), else
        IndexUnusable saying why."""
        index = cls(uri, name, dim, space, version)
        if not index.client.has_collection(name):
            raise IndexUnusable("missing")
        properties = index.client.describe_collection(name).get("properties", {})
        expected = {"format": FORMAT, "dim": str(dim), "space": space, "version": version}
        for key, value in expected.items():
            if properties.get(f"searcher.{key}") != value:
                raise IndexUnusable(f"{key} is {properties.get(f'searcher.{key}')!r}, expected {value!r}")
        saved = properties.get("searcher.catalog")
        if saved != stamp_text(stamp):
            raise IndexUnusable(f"saved from another state of the catalog ({saved or 'none recorded'}, now {stamp_text(stamp)})")
        index.client.load_collection(name)
        if len(index) != stamp.count:
            raise IndexUnusable(f"holds {len(index)} vectors, the catalog {stamp.count}")
        return index

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Drop the collection and make it anew holding exactly these vectors."""
        self.create()
        self.add(ids, vectors)

    def create(self) -> None:
        """An empty collection with this index's schema (an existing one is dropped)."""
        from pymilvus import DataType, MilvusClient

        if self.client.has_collection(self.name):
            self.client.drop_collection(self.name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        params = self.client.prepare_index_params()
        params.add_index(
            field_name="vector", index_type="HNSW", metric_type=self.metric, params={"M": M, "efConstruction": EF_CONSTRUCTION}
        )
        # Strong: a search sees every write acknowledged before it (ingest then query at once).
        self.client.create_collection(
            self.name, schema=schema, index_params=params, consistency_level="Strong", properties=self._properties(None)
        )
        self._ids = set()

    def _properties(self, stamp) -> dict[str, str]:
        props = {
            "format": FORMAT,
            "dim": str(self.dim),
            "space": self.space,
            "version": self.version,
            "catalog": stamp_text(stamp),
        }
        return {f"searcher.{k}": v for k, v in props.items()}

    def save(self, stamp) -> None:
        """Flush the writes and record the catalog state (a vectors.CatalogStamp) the collection now
        reflects; a collection that does not hold the stamp's vectors is refused (IndexUnusable)."""
        known = self._known()
        if len(known) != stamp.count or max(known, default=0) != stamp.max_id:
            raise IndexUnusable(
                f"holds {len(known)} vectors up to id {max(known, default=0)}, not the catalog's {stamp.count} up to {stamp.max_id}"
            )
        self.client.flush(self.name)
        self.client.alter_collection_properties(self.name, properties=self._properties(stamp))

    # ---- contents ----

    def _known(self) -> set[int]:
        if self._ids is None:
            ids: set[int] = set()
            iterator = self.client.query_iterator(self.name, batch_size=16384, filter="", output_fields=["id"])
            try:
                while batch := iterator.next():
                    ids.update(int(row["id"]) for row in batch)
            finally:
                iterator.close()
            self._ids = ids
        return self._ids

    def __len__(self) -> int:
        return len(self._known())

    def __contains__(self, image_id: int) -> bool:
        return int(image_id) in self._known()

    def ids(self) -> list[int]:
        """Ids of the stored vectors, ascending."""
        return sorted(self._known())

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace vectors by id (cosine vectors stored unit length, as hnswlib does)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if self.space == "cosine":
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        known = self._known()
        for start in range(0, len(ids), WRITE_BATCH):
            rows = [
                {"id": int(i), "vector": v.tolist()}
                for i, v in zip(ids[start : start + WRITE_BATCH], vectors[start : start + WRITE_BATCH])
            ]
            self.client.upsert(self.name, rows)
        known.update(int(i) for i in ids)

    def remove(self, ids: Iterable[int]) -> None:
        known = self._known()
        present = [int(i) for i in ids if int(i) in known]
        for start in range(0, len(present), WRITE_BATCH):
            self.client.delete(self.name, ids=present[start : start + WRITE_BATCH])
        known.difference_update(present)

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances) nearest first, in hnswlib's terms: squared L2, or 1 - cosine similarity."""
        labels, distances = self.search_many(np.asarray(vector, dtype=np.float32).reshape(1, -1), k)
        keep = labels[0] >= 0
        return labels[0][keep], distances[0][keep]

    def search_many(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batched kNN: (labels, distances), one row per vector, nearest first, padded with -1 labels
        (and inf distances) where fewer than k vectors were found."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        k = min(k, len(self))
        labels = np.full((len(vectors), max(k, 0)), -1, dtype=np.int64)
        distances = np.full((len(vectors), max(k, 0)), np.inf, dtype=np.float32)
        if k <= 0:
            return labels, distances
        params = {"metric_type": self.metric, "params": {"ef": max(MIN_EF_SEARCH, 2 * k)}}
        for start in range(0, len(vectors), SEARCH_BATCH):
            batch = vectors[start : start + SEARCH_BATCH]
            answers = self.client.search(
                self.name, data=batch.tolist(), limit=k, anns_field="vector", search_params=params, output_fields=["id"]
            )
            for row, hits in enumerate(answers, start):
                labels[row, : len(hits)] = [int(h["id"]) for h in hits]
                distances[row, : len(hits)] = [h["distance"] for h in hits]
        if self.metric == "COSINE":  # Milvus answers the similarity itself
            distances = np.where(labels >= 0, 1.0 - distances, np.inf).astype(np.float32)
        return labels, distances

    def vectors(self, ids: list[int]) -> np.ndarray:
        """Stored vectors of these ids, in the order asked."""
        if not ids:
            return np.empty((0, self.dim), dtype=np.float32)
        found: dict[int, list[float]] = {}
        wanted = [int(i) for i in ids]
        for start in range(0, len(wanted), READ_BATCH):
            for row in self.client.get(self.name, ids=wanted[start : start + READ_BATCH], output_fields=["vector"]):
                found[int(row["id"])] = row["vector"]
        missing = [i for i in wanted if i not in found]
        if missing:
            raise KeyError(f"ids not in the {self.name} collection: {missing[:5]}")
        return np.asarray([found[i] for i in wanted], dtype=np.float32)


def rebuild(uri: str, name: str, extractor, batches: Iterable[tuple[Sequence[int], Sequence[bytes]]]) -> MilvusIndex:
    """A fresh collection of this extractor's embeddings of the given (ids, blobs) batches."""
    index = MilvusIndex(uri, name, extractor.dim, extractor.space, extractor.version)
    index.create()
    for ids, blobs in batches:
        if len(ids):
            index.add(np.asarray(ids, dtype=np.int64), np.stack([extractor.embedding(extractor.from_blob(b)) for b in blobs]))
    return index


def load_or_rebuild(uri: str, name: str, extractor, stamp, batches, warn=None, save=None) -> MilvusIndex:
    """The collection if it reflects catalog state `stamp`, else one rebuilt from `batches()` and handed
    to `save(index)` (the catalog decides whether it may be recorded as current), as vectors.load_or_rebuild."""
    try:
        return MilvusIndex.load(uri, name, extractor.dim, extractor.space, extractor.version, stamp)
    except IndexUnusable as reason:
        index = rebuild(uri, name, extractor, batches())
        if warn and (len(index) or str(reason) != "missing"):
            warn(f"{extractor.name} Milvus collection {reason}: rebuilt from the catalog ({len(index)} vectors)")
    if save is not None:
        save(index)
    return index


def stamp_text(stamp) -> str:
    """A CatalogStamp as the collection property that records it ("" for none)."""
    return "" if stamp is None else f"generation {stamp.generation}, {stamp.count} vectors up to id {stamp.max_id}"
