"""Copying a whole catalog database to another (`searcher migrate --catalog SRC --to DEST`):
SQLite -> PostgreSQL, or back, or between two servers.

Rows keep their ids (they are the labels of every vector index, and dups' group ids), in one
transaction on the destination, which must be an empty catalog at the same schema revision: an
interrupted copy leaves nothing behind and can simply be run again. The destination's id
counter is moved past every id the source ever handed out, so no id is ever reused. Vector
indexes are not copied: they are caches, rebuilt from the catalog on first use.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import Engine, func, insert, select, text

from searcher.catalog.store import CATALOG_ID_KEY
from searcher.errors import CatalogError

CHUNK = 2000  # rows per INSERT (executemany): well under every driver's parameter limit


def copy_catalog(
    source: Engine, destination: Engine, tables, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every row of `tables` (images first: children reference it) -> rows copied per table."""
    images = next(t for t in tables if t.name == "images")
    with destination.begin() as dst:
        held = dst.execute(select(func.count()).select_from(images)).scalar()
        if held:
            raise CatalogError(f"the destination catalog already holds {held} images: migrate only into an empty catalog")
        for table in tables:
            if table.name == "catalog_state":
                dst.execute(table.delete())  # a fresh catalog may have a generation row already
        counts: dict[str, int] = {}
        with source.connect() as src:
            for table in tables:
                counts[table.name] = _copy_table(src, dst, table, progress)
            _advance_id_counter(src, dst, images)
    return counts


def _copy_table(src, dst, table, progress) -> int:
    order = [table.c[c.name] for c in table.primary_key.columns]
    query = select(table)
    if "parent_id" in table.c:  # a frame row may only follow its video's row
        query = query.order_by(table.c.parent_id.is_not(None), *order)
    else:
        query = query.order_by(*order)
    if table.name == "catalog_state":  # the copy is another catalog: it names its own Milvus collections
        query = query.where(table.c.key != CATALOG_ID_KEY)
    copied = 0
    result = src.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
    for rows in result.partitions(CHUNK):
        dst.execute(insert(table), [dict(row._mapping) for row in rows])
        copied += len(rows)
        if progress:
            progress(table.name, copied)
    return copied


def _last_id_handed_out(src, images) -> int:
    """The largest id the source ever gave, deleted rows included (SQLite keeps it in sqlite_sequence)."""
    largest = src.execute(select(func.max(images.c.id))).scalar() or 0
    if src.dialect.name == "sqlite":
        seq = src.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": images.name}).scalar()
        largest = max(largest, seq or 0)
    elif src.dialect.name == "postgresql":
        seq = src.execute(text("SELECT last_value FROM images_id_seq")).scalar()
        largest = max(largest, seq or 0)
    return largest


def _advance_id_counter(src, dst, images) -> None:
    last = _last_id_handed_out(src, images)
    if not last:
        return
    if dst.dialect.name == "postgresql":
        dst.execute(text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"), {"t": images.name, "v": last})
    elif dst.dialect.name == "sqlite":
        # AUTOINCREMENT reads its counter from sqlite_sequence; the copy set it to max(id) already.
        dst.execute(text("UPDATE sqlite_sequence SET seq = MAX(seq, :v) WHERE name = :t"), {"t": images.name, "v": last})


def migrate(source, destination, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy the catalog at `source` into a new or empty catalog at `destination` (locations: a folder
    or a database URL); both are first brought to this searcher's schema. Returns rows per table."""
    from searcher.catalog.engine import open_engine
    from searcher.catalog.location import locate
    from searcher.catalog.schema import Base

    source, destination = locate(source), locate(destination)
    if source.url == destination.url:
        raise CatalogError(f"the source and destination are the same catalog ({source.display})")
    src = open_engine(source, create=False)
    try:
        dst = open_engine(destination, create=True)
        try:
            return copy_catalog(src, dst, Base.metadata.sorted_tables, progress)
        finally:
            dst.dispose()
    finally:
        src.dispose()
