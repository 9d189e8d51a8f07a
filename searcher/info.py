"""Facts about a catalog (`searcher info`): where it is, its schema, what it holds and what it weighs.

Read-only: the database is opened (and, like every command, migrated to the current schema) but no
index is loaded; index facts come from each index's sidecar JSON and file size.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from searcher.errors import SearcherError

if TYPE_CHECKING:
    from searcher.catalog import Catalog


@dataclass
class SignatureFacts:
    name: str
    version: str
    count: int
    current: bool | None  # the version this searcher computes (None: its extractor cannot be built here)


@dataclass
class IndexFacts:
    name: str
    path: str
    vectors: int | None  # as recorded in the sidecar
    bytes: int
    up_to_date: bool  # matches the catalog's generation and the extractor version (else rebuilt on next use)


@dataclass
class CatalogInfo:
    catalog: str
    database: str
    schema: str | None
    schema_head: str
    generation: int
    images: dict[str, int]  # by status: ok, failed
    kinds: dict[str, int]  # by kind (image, video, frame, crop) when the catalog records kinds
    signatures: list[SignatureFacts] = field(default_factory=list)
    indexes: list[IndexFacts] = field(default_factory=list)
    disk: dict[str, int] = field(default_factory=dict)  # bytes: database, indexes, other, total

    def to_dict(self) -> dict:
        return asdict(self)


def _current_version(name: str) -> str | None:
    from searcher.features import build_extractor

    try:
        return build_extractor(name).version
    except SearcherError:  # e.g. the autoencoder weights are not installed here
        return None


def _folder_bytes(directory: str) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _index_facts(catalog: Catalog, versions: dict[str, str | None], generation: int) -> list[IndexFacts]:
    from searcher.catalog import vector_copy
    from searcher.catalog.vectors import CatalogStamp, read_sidecar

    if catalog.milvus_uri:
        return _collection_facts(catalog, versions, generation)
    facts = []
    for name in versions:
        path = catalog.location.index_path(name)
        if not path.exists():
            continue
        meta = read_sidecar(path)
        version = versions[name]
        current = (
            version is not None and meta.get("catalog") == CatalogStamp(*catalog.store.signature_stamp(name, version)).as_dict()
        )
        up_to_date = current and meta.get("version") == version
        size = sum(p.stat().st_size for p in (path, *vector_copy.paths(path)) if p.is_file())  # the graph and its vector copy
        facts.append(IndexFacts(name=name, path=str(path), vectors=meta.get("count"), bytes=size, up_to_date=up_to_date))
    return facts


def _collection_facts(catalog: Catalog, versions: dict[str, str | None], generation: int) -> list[IndexFacts]:
    """The Milvus collections of the catalog's signatures: vectors held, and whether they are current."""
    from searcher.catalog.milvus import collection_properties, stamp_text
    from searcher.catalog.vectors import CatalogStamp

    facts = []
    for name in versions:
        collection = catalog.collection(name)
        props = collection_properties(catalog.milvus_uri, collection)
        if props is None:
            continue
        version = versions[name]
        up_to_date = (
            version is not None
            and props.get("version") == version
            and props.get("catalog") == stamp_text(CatalogStamp(*catalog.store.signature_stamp(name, version)))
        )
        where = f"milvus:{catalog.milvus_uri}#{collection}"
        facts.append(IndexFacts(name=name, path=where, vectors=props.get("count"), bytes=0, up_to_date=up_to_date))
    return facts


def _disk(catalog: Catalog) -> dict[str, int]:
    """Bytes of the database (a folder catalog's SQLite file with its WAL), the index files, the rest."""
    location = catalog.location
    # Closing the pooled connections lets SQLite fold its WAL back into the database file, so the
    # figures are those of the catalog at rest (the engine reconnects on its next use).
    catalog.store.dispose()
    database_bytes = 0 if location.is_folder else catalog.store.database_bytes()
    if location.is_folder:
        db = location.db_path
        database_bytes = sum(
            os.stat(p).st_size for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists()
        )
    # index files, their sidecars and vector copies; a stray index-*.tmp (a save that was killed) is not an index
    index_bytes = sum(
        p.stat().st_size for p in location.vector_dir.glob("index-*") if p.suffix in (".bin", ".json", ".npy") and p.is_file()
    )
    total = _folder_bytes(str(location.vector_dir))
    if not location.is_folder:  # the database is on a server; the folder holds only vector files
        total += database_bytes
    return {"database": database_bytes, "indexes": index_bytes, "other": total - database_bytes - index_bytes, "total": total}


def catalog_info(catalog: Catalog) -> CatalogInfo:
    """Everything `searcher info` shows, gathered from the database, the sidecars and the file system."""
    from searcher.catalog.engine import head_revision

    store = catalog.store
    generation = store.generation()
    images = store.status_counts()
    stored = store.signature_counts()
    versions = {name: _current_version(name) for name in dict.fromkeys(name for name, _, _ in stored)}
    signatures = [
        SignatureFacts(name, version, count, None if versions[name] is None else version == versions[name])
        for name, version, count in stored
    ]
    location = catalog.location
    return CatalogInfo(
        catalog=location.display,
        database=str(location.db_path) if location.is_folder else location.display,
        schema=store.schema_revision(),
        schema_head=head_revision(),
        generation=generation,
        images={"ok": images.get("ok", 0), "failed": images.get("failed", 0)},
        kinds=store.kind_counts(),
        signatures=signatures,
        indexes=_index_facts(catalog, versions, generation),
        disk=_disk(catalog),
    )
