"""The catalog's tables: images (files, video frames, person crops), their signatures, catalog state."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUS_OK = "ok"
STATUS_FAILED = "failed"

KIND_IMAGE = "image"  # an image file
KIND_VIDEO = "video"  # a video file: holds no signature itself, its frames and crops do
KIND_FRAME = "frame"  # a sampled frame of a video
KIND_CROP = "crop"  # a person found in a sampled frame

GENERATION_KEY = "generation"


class Base(DeclarativeBase):
    pass


class ImageRow(Base):
    """One file. Its id is the label of its vectors in every vector index."""

    __tablename__ = "images"
    # AUTOINCREMENT: a deleted image's id (an index label) is never handed to another image.
    # Constraints carry the names the migrations gave them (a later migration drops them by name).
    __table_args__ = (UniqueConstraint("path", name="uq_images_path"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(8), default=KIND_IMAGE, server_default=KIND_IMAGE)
    # Frames and crops belong to their video row; their `path` is a key, not a file (see frame_key).
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE", name="fk_images_parent"), index=True
    )
    frame_index: Mapped[int | None] = mapped_column(Integer)
    time_s: Mapped[float | None] = mapped_column(Float)
    box: Mapped[str | None] = mapped_column(String(64))  # "x,y,w,h" in frame pixels
    sampling: Mapped[str | None] = mapped_column(String(64))  # how a video was sampled


def frame_key(video_id: int, frame_index: int, box: tuple[int, int, int, int] | None = None) -> str:
    """Unique `path` of a frame or crop row. It names the video by id, so a moved video's
    frames need no update; it never starts with "/", so no folder scan mistakes it for a file."""
    key = f"video:{video_id}#frame={frame_index}"
    return key + (f"&box={','.join(map(str, box))}" if box else "")


class SignatureRow(Base):
    """One signature of one image, tagged with the extractor version that computed it."""

    __tablename__ = "signatures"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    extractor: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class StateRow(Base):
    """Small key/value facts about the catalog, e.g. the generation that index files are checked against."""

    __tablename__ = "catalog_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class IgnoredGroupRow(Base):
    """A group a reviewer marked "not duplicates", by its id ("g" + the smallest sha256 of its members):
    keyed by content, so the decision survives renames, moves and a re-ingest."""

    __tablename__ = "ignored_groups"

    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[str] = mapped_column(String(32))  # ISO 8601, UTC


class IgnoredPairRow(Base):
    """Two contents (sha256, sha_a < sha_b) a reviewer marked "not duplicates of each other"."""

    __tablename__ = "ignored_pairs"

    sha_a: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha_b: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[str] = mapped_column(String(32))


class MovedOutRow(Base):
    """A file `dups --move-to` set aside for review (migration 0005): its row follows the file to the
    review folder; this remembers where it was. dups leaves it out, undo deletes the record, and an
    ingest of a folder that held it prunes the row once the file is gone from the review folder."""

    __tablename__ = "moved_out"

    image_id: Mapped[int] = mapped_column(Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    original_path: Mapped[str] = mapped_column(Text, index=True)
    log: Mapped[str | None] = mapped_column(Text)
    created: Mapped[str] = mapped_column(String(32))
