"""Storage of review decisions ("these are not duplicates") and lookups of one catalog entry by id.

Decisions are keyed by content (sha256), not by row id, so they survive renames, moves and a
re-ingest: a group by its id ("g" + the smallest sha256 of its members), a pair by its two sha256s
in sorted order. `searcher dups` and `searcher serve` hide what is recorded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, String, delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, aliased, mapped_column

from searcher.catalog import Base, ImageRow, new_session


class IgnoredGroupRow(Base):
    __tablename__ = "ignored_groups"

    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[str] = mapped_column(String(32))


class IgnoredPairRow(Base):
    __tablename__ = "ignored_pairs"

    sha_a: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha_a < sha_b
    sha_b: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[str] = mapped_column(String(32))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _insert_ignoring_duplicates(engine: Engine, row_type, values: dict) -> None:
    with new_session(engine) as session:
        if engine.dialect.name == "sqlite":
            session.execute(sqlite_insert(row_type).values(**values).on_conflict_do_nothing())
        elif session.get(row_type, tuple(values[k.name] for k in row_type.__table__.primary_key)) is None:
            session.add(row_type(**values))
        session.commit()


def add_ignored_group(engine: Engine, group_id: str) -> None:
    """Record that the group with this id is not a group of duplicates (idempotent)."""
    _insert_ignoring_duplicates(engine, IgnoredGroupRow, {"group_id": group_id, "created": _now()})


def remove_ignored_group(engine: Engine, group_id: str) -> bool:
    """Forget that decision; False when there was none."""
    with new_session(engine) as session:
        removed = session.execute(delete(IgnoredGroupRow).where(IgnoredGroupRow.group_id == group_id)).rowcount
        session.commit()
    return bool(removed)


def add_ignored_pair(engine: Engine, sha_a: str, sha_b: str) -> None:
    """Record that the files with these two contents are not duplicates of each other (idempotent)."""
    a, b = sorted((sha_a, sha_b))
    _insert_ignoring_duplicates(engine, IgnoredPairRow, {"sha_a": a, "sha_b": b, "created": _now()})


def ignored_group_ids(engine: Engine) -> set[str]:
    with new_session(engine) as session:
        return set(session.scalars(select(IgnoredGroupRow.group_id)))


def ignored_pairs(engine: Engine) -> set[tuple[str, str]]:
    """(sha_a, sha_b) with sha_a < sha_b."""
    with new_session(engine) as session:
        return {(r.sha_a, r.sha_b) for r in session.execute(select(IgnoredPairRow.sha_a, IgnoredPairRow.sha_b))}


@dataclass(frozen=True)
class Entry:
    """One catalog entry as a reviewer sees it: a file, or a frame / person crop inside a video."""

    id: int
    path: str  # the file; for a frame or crop, its video
    kind: str
    status: str
    sha256: str | None
    width: int | None
    height: int | None
    size: int | None
    frame: int | None = None
    time: float | None = None
    box: tuple[int, ...] | None = None


def entry_by_id(engine: Engine, image_id: int) -> Entry | None:
    parent = aliased(ImageRow)
    with new_session(engine) as session:
        row = session.execute(
            select(ImageRow, parent.path).outerjoin(parent, ImageRow.parent_id == parent.id).where(ImageRow.id == image_id)
        ).first()
    if row is None:
        return None
    image, video_path = row
    box = tuple(int(v) for v in image.box.split(",")) if image.box else None
    return Entry(
        id=image.id,
        path=video_path or image.path,
        kind=image.kind,
        status=image.status,
        sha256=image.sha256,
        width=image.width,
        height=image.height,
        size=image.size,
        frame=image.frame_index if video_path else None,
        time=image.time_s if video_path else None,
        box=box,
    )


def entry_ids_by_path(engine: Engine, paths: list[str]) -> dict[str, int]:
    """Catalog ids of these file paths (the ones the catalog has)."""
    found: dict[str, int] = {}
    with new_session(engine) as session:
        for start in range(0, len(paths), 500):
            batch = paths[start : start + 500]
            found.update(session.execute(select(ImageRow.path, ImageRow.id).where(ImageRow.path.in_(batch))).all())
    return found
