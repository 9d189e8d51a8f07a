"""Storage of files set aside for review: the `moved_out` table (migration 0004).

`dups --move-to DIR --yes` re-points a moved file's row to its new path and records the path it
had before here: dups leaves such rows out (the group is not offered again), `undo` deletes the
record, and an ingest of a folder that held the file before the move prunes the row once the
file is gone from the review folder too (the user deleted it there).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, ForeignKey, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from searcher.catalog import Base, ImageRow, new_session


class MovedOutRow(Base):
    __tablename__ = "moved_out"

    image_id: Mapped[int] = mapped_column(Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    original_path: Mapped[str] = mapped_column(Text, index=True)
    log: Mapped[str | None] = mapped_column(Text)
    created: Mapped[str] = mapped_column(String(32))


def mark_moved_out(session: Session, image_id: int, original_path: str, log: str | None) -> None:
    """Record that this row's file was moved out of `original_path` for review (in the caller's transaction)."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    session.merge(MovedOutRow(image_id=image_id, original_path=original_path, log=log, created=created))


def clear_moved_out(session: Session, image_id: int) -> None:
    session.execute(delete(MovedOutRow).where(MovedOutRow.image_id == image_id))


def moved_out_ids(engine: Engine) -> set[int]:
    with new_session(engine) as session:
        return set(session.scalars(select(MovedOutRow.image_id)))


def moved_out_from(session: Session, roots: list[str]) -> list:
    """Rows (id, path, size, mtime_ns, status, kind, sampling) moved out of a folder under `roots`."""
    rows = session.execute(
        select(
            ImageRow.id, ImageRow.path, ImageRow.size, ImageRow.mtime_ns, ImageRow.status, ImageRow.kind, ImageRow.sampling,
            MovedOutRow.original_path,
        ).join(MovedOutRow, MovedOutRow.image_id == ImageRow.id)
    ).all()  # fmt: skip
    return [r for r in rows if any(_under(r.original_path, root) for root in roots)]


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")
