"""The catalog: SQLAlchemy models of images and their signatures, and opening a catalog folder.

A catalog is a folder: `catalog.db` (SQLite, the source of truth) and `index-<signature>.bin`
HNSW files beside it (a cache rebuilt from the database whenever it disagrees). Opening a
catalog applies Alembic migrations, and refuses a database written by a newer searcher.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Engine,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from searcher.errors import CatalogError

DEFAULT_CATALOG_DIR = ".searcher"
CATALOG_ENV = "SEARCHER_CATALOG"
DB_NAME = "catalog.db"

STATUS_OK = "ok"
STATUS_FAILED = "failed"

KIND_IMAGE = "image"  # an image file
KIND_VIDEO = "video"  # a video file: holds no signature itself, its frames and crops do
KIND_FRAME = "frame"  # a sampled frame of a video
KIND_CROP = "crop"  # a person found in a sampled frame


class Base(DeclarativeBase):
    pass


class ImageRow(Base):
    """One file. Its id is the label of its vectors in every HNSW index."""

    __tablename__ = "images"
    # AUTOINCREMENT: a deleted image's id (an index label) is never handed to another image.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(8), default=KIND_IMAGE, server_default=KIND_IMAGE)
    # Frames and crops belong to their video row; their `path` is a key, not a file (see frame_key).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
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


GENERATION_KEY = "generation"


def get_generation(session: Session) -> int:
    row = session.get(StateRow, GENERATION_KEY)
    return int(row.value) if row else 0


def bump_generation(session: Session) -> int:
    """Mark that signatures are about to change: index files saved before this are out of date."""
    generation = get_generation(session) + 1
    session.merge(StateRow(key=GENERATION_KEY, value=str(generation)))
    return generation


@dataclass(frozen=True)
class CatalogLocation:
    directory: Path

    @property
    def db_path(self) -> Path:
        return self.directory / DB_NAME

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def index_path(self, signature: str) -> Path:
        return self.directory / f"index-{signature}.bin"


def locate(catalog: str | os.PathLike | None) -> CatalogLocation:
    """--catalog DIR, else $SEARCHER_CATALOG, else ./.searcher."""
    chosen = catalog or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG_DIR
    return CatalogLocation(Path(chosen).expanduser().resolve())


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the single writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def migrations_dir() -> Path:
    return Path(str(resources.files("searcher.migrations")))


def _alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(migrations_dir())).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; refuse a database stamped with a revision this version does not know."""
    from alembic import command
    from alembic.script import ScriptDirectory

    current = current_revision(engine)
    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    if current == head:
        return
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise CatalogError(
            f"catalog schema {current} was written by a newer searcher (this one knows up to {head}); "
            "upgrade searcher to use it"
        )
    command.upgrade(_alembic_config(engine), "head")


def make_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_catalog(location: CatalogLocation, create: bool = True) -> Engine:
    """Engine on the catalog database, migrated to the current schema.

    `create=False` refuses a folder that holds no catalog yet (queries should not make one).
    """
    if not location.db_path.exists():
        if not create:
            raise CatalogError(f"no catalog at {location.directory} (run `searcher ingest PATH` first, or pass --catalog)")
        try:
            location.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CatalogError(f"cannot create catalog folder {location.directory}: {e.strerror}") from None
    engine = make_engine(location.url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        upgrade(engine)
    except CatalogError:
        engine.dispose()
        raise
    except (DatabaseError, OperationalError) as e:
        engine.dispose()
        reason = str(e.orig) if getattr(e, "orig", None) else str(e)
        raise CatalogError(f"cannot open catalog {location.db_path}: {reason}") from None
    return engine


def new_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
