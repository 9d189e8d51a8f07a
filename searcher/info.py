"""Facts about a catalog (`searcher info`): where it is, its schema, what it holds and what it weighs.

Read-only: the database is opened (and, like every command, migrated to the current schema) but no
index is loaded; index facts come from each index's sidecar JSON and file size.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from sqlalchemy import func, select

from searcher.catalog import CatalogLocation, ImageRow, SignatureRow, current_revision, get_generation, head_revision, new_session, open_catalog
from searcher.errors import SearcherError


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


def catalog_info(location: CatalogLocation) -> CatalogInfo:
    """Everything `searcher info` shows, gathered from the database, the sidecars and the file system."""
    engine = open_catalog(location, create=False)
    try:
        schema = current_revision(engine)
        with new_session(engine) as session:
            generation = get_generation(session)
            images = dict(session.execute(select(ImageRow.status, func.count()).group_by(ImageRow.status)).all())
            kind_column = getattr(ImageRow, "kind", None)  # recorded by catalogs that hold videos
            kinds = dict(session.execute(select(kind_column, func.count()).group_by(kind_column)).all()) if kind_column is not None else {}
            stored = session.execute(
                select(SignatureRow.extractor, SignatureRow.version, func.count())
                .group_by(SignatureRow.extractor, SignatureRow.version)
                .order_by(SignatureRow.extractor, SignatureRow.version)
            ).all()
    finally:
        engine.dispose()
    versions = {name: _current_version(name) for name in dict.fromkeys(name for name, _, _ in stored)}
    signatures = [
        SignatureFacts(name, version, count, None if versions[name] is None else version == versions[name])
        for name, version, count in stored
    ]
    indexes = []
    for name in versions:
        path = location.index_path(name)
        if not path.exists():
            continue
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            meta = {}
        indexes.append(
            IndexFacts(
                name=name,
                path=str(path),
                vectors=meta.get("count"),
                bytes=path.stat().st_size,
                up_to_date=versions[name] is not None and meta.get("version") == versions[name] and meta.get("generation") == generation,
            )
        )
    db = location.db_path
    database_bytes = sum(os.stat(p).st_size for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists())
    index_bytes = sum(p.stat().st_size for p in location.directory.glob("index-*") if p.is_file())
    total = _folder_bytes(str(location.directory))
    return CatalogInfo(
        catalog=str(location.directory),
        database=str(db),
        schema=schema,
        schema_head=head_revision(),
        generation=generation,
        images={"ok": images.get("ok", 0), "failed": images.get("failed", 0)},
        kinds=kinds,
        signatures=signatures,
        indexes=indexes,
        disk={"database": database_bytes, "indexes": index_bytes, "other": total - database_bytes - index_bytes, "total": total},
    )
