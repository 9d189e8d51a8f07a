"""Every SQL statement of searcher, as named methods over one engine.

Statements are SQLAlchemy Core/ORM constructs, dialect-neutral (SQLite and PostgreSQL); the few
that differ (upserts) go through the dialect. Nothing outside searcher.catalog builds a query.
Reads return plain rows or dicts; the writes of an ingest go through one `Batch` (a transaction)
at a time, retried whole when a concurrent writer made it fail (`run_batch`).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from sqlalchemy import Engine, cast, delete, func, insert, select, update
from sqlalchemy import Integer as SqlInteger
from sqlalchemy import String as SqlString
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, aliased

from searcher.catalog.engine import current_revision
from searcher.catalog.schema import (
    GENERATION_KEY,
    KIND_CROP,
    KIND_IMAGE,
    KIND_VIDEO,
    STATUS_OK,
    IgnoredGroupRow,
    IgnoredPairRow,
    ImageRow,
    MovedOutRow,
    SignatureRow,
    StateRow,
)

SIGNATURE_COUNTS_KEY = "signature_counts"
IN_BATCH = 500  # ids per IN (...) list: well under every database's parameter limit
CATALOG_ID_KEY = "catalog_id"  # names this catalog's collections on a shared vector server
BATCH_ATTEMPTS = 8
# PostgreSQL SQLSTATEs worth a retry of the whole transaction: serialization failure, deadlock detected.
RETRYABLE_SQLSTATES = {"40001", "40P01"}


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def dispose(self) -> None:
        self.engine.dispose()

    # ---- catalog state ----

    def schema_revision(self) -> str | None:
        return current_revision(self.engine)

    def generation(self) -> int:
        with self.session() as session:
            return _generation(session)

    def bump_generation(self) -> tuple[int, int]:
        """Mark that signatures are about to change (index files saved before are out of date);
        returns (previous, new) generation. One atomic statement: concurrent writers each get
        their own number, so a writer can tell whether another one ran while it did."""
        increment = cast(cast(StateRow.value, SqlInteger) + 1, SqlString)
        statement = _upsert(self.engine, StateRow, {"key": GENERATION_KEY, "value": "1"}, ["key"], {"value": increment})
        with self.session() as session:
            new = int(session.execute(statement.returning(StateRow.value)).scalar_one())
            session.commit()
        return new - 1, new

    def database_bytes(self) -> int:
        """Size of a server database (PostgreSQL); 0 where the dialect cannot tell (a SQLite file is measured on disk)."""
        if self.engine.dialect.name != "postgresql":
            return 0
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.pg_database_size(func.current_database()))).scalar_one())

    def catalog_id(self) -> str:
        """A random id given to this catalog once (the first caller's wins), kept in its state table."""
        statement = _insert(self.engine, StateRow).values(key=CATALOG_ID_KEY, value=uuid.uuid4().hex[:16])
        with self.session() as session:
            session.execute(statement.on_conflict_do_nothing(index_elements=["key"]))
            session.commit()
            return session.get(StateRow, CATALOG_ID_KEY).value

    # ---- signatures ----

    def signature_counts(self) -> list[tuple[str, str, int]]:
        """(extractor, version, rows) of every stored signature kind, sorted. Read from the summary
        the last completed ingest left (catalog_state), when no change began since; else counted
        (a GROUP BY over every signature: about 0.5 s at 100k images)."""
        with self.session() as session:
            cached = session.get(StateRow, SIGNATURE_COUNTS_KEY)
            if cached is not None:
                try:
                    data = json.loads(cached.value)
                    if data.get("generation") == _generation(session):
                        return [tuple(row) for row in data["counts"]]
                except (ValueError, TypeError, KeyError):
                    pass  # unreadable: count
            return _count_signatures(session)

    def remember_signature_counts(self) -> None:
        """Store the signature counts with the current generation (ingest calls this once it has
        applied everything; the next change bumps the generation and so voids them)."""
        with self.session() as session:
            counts = _count_signatures(session)
            value = json.dumps({"generation": _generation(session), "counts": counts})
            session.merge(StateRow(key=SIGNATURE_COUNTS_KEY, value=value))
            session.commit()

    def signature_stamp(self, name: str, version: str) -> tuple[int, int, int]:
        """(generation, rows, highest image id) of one extractor version's signatures, read in one
        transaction: what an index file of that signature must have been saved from to be current."""
        query = select(func.count(), func.coalesce(func.max(SignatureRow.image_id), 0)).where(
            SignatureRow.extractor == name, SignatureRow.version == version
        )
        with self.session() as session:
            count, max_id = session.execute(query).one()
            return _generation(session), int(count), int(max_id)

    def signature_names(self) -> list[str]:
        with self.session() as session:
            return sorted(session.scalars(select(SignatureRow.extractor).distinct()))

    def iter_signatures(self, name: str, version: str, chunk: int = 4096) -> Iterator[tuple[list[int], list[bytes]]]:
        """(image ids, blobs) of every signature of this extractor version, `chunk` rows at a time."""
        query = (
            select(SignatureRow.image_id, SignatureRow.data)
            .where(SignatureRow.extractor == name, SignatureRow.version == version)
            .execution_options(yield_per=chunk)
        )
        with self.session() as session:
            for rows in session.execute(query).partitions():
                yield [row.image_id for row in rows], [row.data for row in rows]

    def signatures_by_ids(self, name: str, version: str, ids: Iterable[int]) -> dict[int, bytes]:
        """Stored blobs of this extractor version for these images (absent ones are left out)."""
        ids = list(ids)
        blobs: dict[int, bytes] = {}
        with self.session() as session:
            for start in range(0, len(ids), IN_BATCH):
                query = select(SignatureRow.image_id, SignatureRow.data).where(
                    SignatureRow.image_id.in_(ids[start : start + IN_BATCH]),
                    SignatureRow.extractor == name,
                    SignatureRow.version == version,
                )
                blobs.update((row.image_id, row.data) for row in session.execute(query))
        return blobs

    # ---- images ----

    def hit_rows(self, ids: list[int]) -> dict[int, tuple]:
        """id -> (path, video path or None, frame index, time, box) of these rows."""
        parent = aliased(ImageRow)
        query = (
            select(ImageRow.id, ImageRow.path, parent.path, ImageRow.frame_index, ImageRow.time_s, ImageRow.box)
            .outerjoin(parent, ImageRow.parent_id == parent.id)
            .where(ImageRow.id.in_(ids))
        )
        with self.session() as session:
            return {row[0]: tuple(row[1:]) for row in session.execute(query)}

    def sort_keys(self, ids: list[int]) -> dict[int, tuple[str, str]]:
        """id -> (sha256, path): a key that orders images the same in every catalog of the same files
        (ids follow the ingest order), for tie-breaks."""
        keys: dict[int, tuple[str, str]] = {}
        with self.session() as session:
            for start in range(0, len(ids), IN_BATCH):
                query = select(ImageRow.id, ImageRow.sha256, ImageRow.path).where(ImageRow.id.in_(ids[start : start + IN_BATCH]))
                keys.update((row.id, (row.sha256 or "", row.path)) for row in session.execute(query))
        return keys

    def ok_rows(self) -> list:
        """(id, path, sha256, width, height, size, mtime_ns) of every row whose extraction succeeded, by id."""
        query = (
            select(ImageRow.id, ImageRow.path, ImageRow.sha256, ImageRow.width, ImageRow.height, ImageRow.size, ImageRow.mtime_ns)
            .where(ImageRow.status == STATUS_OK)
            .order_by(ImageRow.id)
        )
        with self.session() as session:
            return session.execute(query).all()

    def repoint(self, old: str, new: str) -> bool:
        """The row of path `old` now describes path `new`; False (nothing done) when `new` has a row already."""
        with self.session() as session:
            if session.scalar(select(ImageRow.id).where(ImageRow.path == new)) is not None:
                return False
            session.execute(update(ImageRow).where(ImageRow.path == old).values(path=new))
            session.commit()
        return True

    def paths(self) -> dict[int, str]:
        """id -> path of every row (frames and crops have their frame key)."""
        with self.session() as session:
            return dict(session.execute(select(ImageRow.id, ImageRow.path)).all())

    def crop_rows(self) -> list[tuple[int, int, str]]:
        """(id, frame index, "x,y,w,h") of every person crop."""
        query = select(ImageRow.id, ImageRow.frame_index, ImageRow.box).where(ImageRow.kind == KIND_CROP)
        with self.session() as session:
            return [tuple(row) for row in session.execute(query)]

    def status_counts(self) -> dict[str, int]:
        with self.session() as session:
            return dict(session.execute(select(ImageRow.status, func.count()).group_by(ImageRow.status)).all())

    def kind_counts(self) -> dict[str, int]:
        with self.session() as session:
            return dict(session.execute(select(ImageRow.kind, func.count()).group_by(ImageRow.kind)).all())

    def row_id(self, path: str) -> int | None:
        with self.session() as session:
            return session.scalar(select(ImageRow.id).where(ImageRow.path == path))

    def set_file_stat(self, path: str, size: int, mtime_ns: int) -> None:
        """A file's size and time changed without its bytes (a link replaced it): the next ingest sees it unchanged."""
        with self.session() as session:
            session.execute(update(ImageRow).where(ImageRow.path == path).values(size=size, mtime_ns=mtime_ns))
            session.commit()

    def entry(self, image_id: int) -> dict | None:
        """One row as a reviewer sees it: id, path (for a frame or crop: its video's), kind, status, sha256,
        width, height, size, and for a frame or crop frame, time and box ("x,y,w,h"); None when absent."""
        parent = aliased(ImageRow)
        query = select(ImageRow, parent.path).outerjoin(parent, ImageRow.parent_id == parent.id).where(ImageRow.id == image_id)
        with self.session() as session:
            found = session.execute(query).first()
        if found is None:
            return None
        row, video_path = found
        entry = {k: getattr(row, k) for k in ("id", "kind", "status", "sha256", "width", "height", "size")}
        entry["path"] = video_path or row.path
        entry["frame"], entry["time"], entry["box"] = (row.frame_index, row.time_s, row.box) if video_path else (None, None, None)
        return entry

    # ---- review decisions: "not duplicates" ----

    def add_ignored_group(self, group_id: str) -> None:
        """Record a group id as "not duplicates" (idempotent)."""
        with self.session() as session:
            if session.get(IgnoredGroupRow, group_id) is None:
                session.add(IgnoredGroupRow(group_id=group_id, created=_now()))
                session.commit()

    def remove_ignored_group(self, group_id: str) -> bool:
        """Forget that decision; False when there was none."""
        with self.session() as session:
            removed = session.execute(delete(IgnoredGroupRow).where(IgnoredGroupRow.group_id == group_id)).rowcount
            session.commit()
        return bool(removed)

    def add_ignored_pair(self, sha_a: str, sha_b: str) -> None:
        """Record two contents as "not duplicates of each other" (idempotent, either order)."""
        a, b = sorted((sha_a, sha_b))
        with self.session() as session:
            if session.get(IgnoredPairRow, (a, b)) is None:
                session.add(IgnoredPairRow(sha_a=a, sha_b=b, created=_now()))
                session.commit()

    def remove_ignored_pair(self, sha_a: str, sha_b: str) -> bool:
        a, b = sorted((sha_a, sha_b))
        with self.session() as session:
            removed = session.execute(delete(IgnoredPairRow).where(IgnoredPairRow.sha_a == a, IgnoredPairRow.sha_b == b)).rowcount
            session.commit()
        return bool(removed)

    def ignored_group_ids(self) -> set[str]:
        with self.session() as session:
            return set(session.scalars(select(IgnoredGroupRow.group_id)))

    def ignored_pairs(self) -> set[tuple[str, str]]:
        """(sha_a, sha_b) with sha_a < sha_b."""
        with self.session() as session:
            return {(row.sha_a, row.sha_b) for row in session.execute(select(IgnoredPairRow.sha_a, IgnoredPairRow.sha_b))}

    # ---- files set aside for review (migration 0005) ----

    def repoint_for_review(self, old: str, new: str, log: str | None) -> bool:
        """Like repoint, and the row is marked set aside for review (`log`: the move log), or, with
        log None (an undo), no longer set aside. False (nothing done) when `new` has a row already."""
        with self.session() as session:
            if session.scalar(select(ImageRow.id).where(ImageRow.path == new)) is not None:
                return False
            image_id = session.scalar(select(ImageRow.id).where(ImageRow.path == old))
            if image_id is None:
                return True
            session.execute(update(ImageRow).where(ImageRow.id == image_id).values(path=new))
            session.execute(delete(MovedOutRow).where(MovedOutRow.image_id == image_id))
            if log is not None:
                session.add(MovedOutRow(image_id=image_id, original_path=old, log=log, created=_now()))
            session.commit()
        return True

    def moved_out_ids(self) -> set[int]:
        with self.session() as session:
            return set(session.scalars(select(MovedOutRow.image_id)))

    def moved_out_rows(self) -> list:
        """(id, path, size, mtime_ns, status, kind, sampling, error, original_path) of every file set aside."""
        query = select(*_file_columns(), MovedOutRow.original_path).join(MovedOutRow, MovedOutRow.image_id == ImageRow.id)
        with self.session() as session:
            return session.execute(query).all()

    def has_rows_under(self, folder: str) -> bool:
        """Whether any row's path is `folder` or inside it."""
        prefix = folder.rstrip("/") + "/"
        under = (ImageRow.path == folder) | (func.substr(ImageRow.path, 1, len(prefix)) == prefix)
        with self.session() as session:
            return session.scalar(select(ImageRow.id).where(under).limit(1)) is not None

    # ---- what an ingest plans with ----

    def file_rows(self) -> list:
        """(id, path, size, mtime_ns, status, kind, sampling, error) of every row that is a file (not a frame or crop).
        Plain rows, not ORM objects: a no-op rerun over 100k files must take seconds at most."""
        query = select(*_file_columns()).where(ImageRow.parent_id.is_(None))
        with self.session() as session:
            return session.execute(query).all()

    def lacking_signature(self, name: str, version: str) -> list[tuple[int, int | None]]:
        """(id, parent id) of the good non-video rows without a signature of this extractor version."""
        current = select(SignatureRow.image_id).where(SignatureRow.extractor == name, SignatureRow.version == version)
        query = select(ImageRow.id, ImageRow.parent_id).where(
            ImageRow.status == STATUS_OK, ImageRow.kind != KIND_VIDEO, ImageRow.id.not_in(current)
        )
        with self.session() as session:
            return [tuple(row) for row in session.execute(query)]

    def known_hashes(self) -> frozenset[str]:
        with self.session() as session:
            return frozenset(session.scalars(select(ImageRow.sha256).where(ImageRow.status == STATUS_OK).distinct()))

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """One transaction of ingest writes, committed when the block ends without an error."""
        with self.session() as session:
            yield Batch(session)
            session.commit()

    def run_batch(self, apply: Callable[[Batch], None], undo: Callable[[], None]) -> None:
        """apply(batch) in one transaction; when a concurrent writer made it fail (the same path
        inserted twice, a deadlock, a serialization failure), `undo()` forgets what the attempt
        counted and the whole transaction runs again, after a short random wait."""
        for attempt in range(BATCH_ATTEMPTS):
            try:
                with self.batch() as batch:
                    apply(batch)
                return
            except DBAPIError as e:
                if not _retryable(e) or attempt == BATCH_ATTEMPTS - 1:
                    raise
                undo()
                time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))


class Batch:
    """The writes of an ingest inside one transaction. Rows come back as objects whose attributes
    the caller sets (path, size, status...); they are written at the next flush or at commit."""

    def __init__(self, session: Session):
        self.session = session

    def row_by_path(self, path: str) -> ImageRow | None:
        return self.session.scalar(select(ImageRow).where(ImageRow.path == path))

    def rows_by_paths(self, paths: list[str]) -> dict[str, ImageRow]:
        """The rows of these paths that exist, in IN_BATCH-sized reads (not one select per file)."""
        rows: dict[str, ImageRow] = {}
        for start in range(0, len(paths), IN_BATCH):
            chunk = paths[start : start + IN_BATCH]
            rows.update((row.path, row) for row in self.session.scalars(select(ImageRow).where(ImageRow.path.in_(chunk))))
        return rows

    def insert_images(self, rows: list[dict]) -> list[int]:
        """Bulk insert of new image rows (Core executemany with RETURNING); their ids, in order."""
        if not rows:
            return []
        statement = insert(ImageRow).returning(ImageRow.id, sort_by_parameter_order=True)
        return list(self.session.scalars(statement, rows))

    def insert_signatures(self, rows: list[dict]) -> None:
        """Bulk insert of new signature rows (image_id, extractor, version, data): Core executemany,
        no ORM identity map; the caller makes sure none of them exists yet."""
        if rows:
            self.session.execute(insert(SignatureRow), rows)

    def new_row(self, path: str, kind: str = KIND_IMAGE, **values) -> ImageRow:
        row = ImageRow(path=path, kind=kind, **values)
        self.session.add(row)
        return row

    def flush(self) -> None:
        """Give new rows their ids."""
        self.session.flush()

    def ok_rows_with_sha(self, sha256: str) -> list[ImageRow]:
        return list(self.session.scalars(select(ImageRow).where(ImageRow.sha256 == sha256, ImageRow.status == STATUS_OK)))

    def signatures_of(self, image_id: int) -> list[tuple[str, str, bytes]]:
        """(extractor, version, blob) of one image."""
        query = select(SignatureRow.extractor, SignatureRow.version, SignatureRow.data).where(SignatureRow.image_id == image_id)
        return [tuple(row) for row in self.session.execute(query)]

    def put_signature(self, image_id: int, name: str, version: str, blob: bytes) -> None:
        """Insert or replace one signature in a single statement (no read-then-write race)."""
        values = {"image_id": image_id, "extractor": name, "version": version, "data": blob}
        self.session.flush()  # the image row first: the upsert bypasses the unit of work
        self.session.execute(
            _upsert(self.session.get_bind(), SignatureRow, values, ["image_id", "extractor"], ["version", "data"])
        )

    def delete_signatures(self, image_id: int) -> None:
        self.session.execute(delete(SignatureRow).where(SignatureRow.image_id == image_id))

    def delete_images(self, ids: list[int]) -> None:
        """These rows and their signatures."""
        for start in range(0, len(ids), IN_BATCH):
            batch = ids[start : start + IN_BATCH]
            self.session.execute(delete(SignatureRow).where(SignatureRow.image_id.in_(batch)))
            self.session.execute(delete(ImageRow).where(ImageRow.id.in_(batch)))

    def clear_moved_out(self, image_id: int) -> None:
        """The file is back in a library folder: offered again by dups."""
        self.session.execute(delete(MovedOutRow).where(MovedOutRow.image_id == image_id))

    def drop_children(self, video_id: int) -> list[int]:
        """Delete the frame and crop rows of a video; returns their ids."""
        children = list(self.session.scalars(select(ImageRow.id).where(ImageRow.parent_id == video_id)))
        self.delete_images(children)
        return children


def _insert(bind, table):
    """The dialect's INSERT, which knows ON CONFLICT (SQLite >= 3.24 and PostgreSQL both do)."""
    name = bind.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # engine.open_engine refuses other databases before any statement runs
        raise NotImplementedError(name)
    return insert(table)


def _upsert(bind, table, values: dict, keys: list[str], update: list[str] | dict):
    """INSERT values, or on a conflict over `keys` UPDATE the `update` columns (from the new values,
    or the given expressions)."""
    statement = _insert(bind, table).values(**values)
    if not isinstance(update, dict):
        update = {column: statement.excluded[column] for column in update}
    return statement.on_conflict_do_update(index_elements=keys, set_=update)


def _retryable(error: DBAPIError) -> bool:
    """A failure that another transaction caused and that a fresh attempt may not meet again."""
    if isinstance(error, IntegrityError):
        return True  # e.g. a concurrent ingest inserted the same path first: the retry sees its row
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return sqlstate in RETRYABLE_SQLSTATES or "database is locked" in str(error.orig)


def _count_signatures(session: Session) -> list[tuple[str, str, int]]:
    query = (
        select(SignatureRow.extractor, SignatureRow.version, func.count())
        .group_by(SignatureRow.extractor, SignatureRow.version)
        .order_by(SignatureRow.extractor, SignatureRow.version)
    )
    return [tuple(row) for row in session.execute(query).all()]


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _generation(session: Session) -> int:
    row = session.get(StateRow, GENERATION_KEY)
    return int(row.value) if row else 0


def _file_columns() -> tuple:
    """The columns an ingest plans with: (id, path, size, mtime_ns, status, kind, sampling, error)."""
    return (
        ImageRow.id,
        ImageRow.path,
        ImageRow.size,
        ImageRow.mtime_ns,
        ImageRow.status,
        ImageRow.kind,
        ImageRow.sampling,
        ImageRow.error,
    )
