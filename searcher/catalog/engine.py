"""Engines on a catalog database and its schema: SQLite settings, Alembic upgrade, newer-schema refusal.

Opening a catalog applies Alembic migrations, and refuses a database written by a newer searcher.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError

from searcher.catalog.location import CatalogLocation
from searcher.errors import CatalogError


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the single writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str | URL) -> Engine:
    """An engine on `url`; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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


_REVISION = re.compile(r"^(down_)?revision\b[^=]*=\s*(?:[\"']([^\"']+)[\"']|None)", re.M)


def head_revision_cheap() -> str | None:
    """The head revision read from the migration files themselves, without importing Alembic (about
    0.2 s of imports a catalog open does not need when the schema is current). None if unsure."""
    revisions, parents = set(), set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        for down, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            if value:
                (parents if down else revisions).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def stamped_revision(engine: Engine) -> str | None:
    """The revision in the database's alembic_version table (plain SQL), None when there is none."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (DatabaseError, OperationalError):
        return None


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; refuse a database stamped with a revision this version does not know.
    Alembic is imported only when the stamped revision is not the head."""
    stamped = stamped_revision(engine)
    if stamped is not None and stamped == head_revision_cheap():
        return
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
            f"catalog schema {current} was written by a newer searcher (this one knows up to {head}); upgrade searcher to use it"
        )
    command.upgrade(_alembic_config(engine), "head")


def _prepare_folder(location: CatalogLocation, create: bool) -> None:
    if location.exists:
        return
    if not create:
        raise CatalogError(f"no catalog at {location.display} (run `searcher ingest PATH` first, or pass --catalog)")
    try:
        location.directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CatalogError(f"cannot create catalog folder {location.directory}: {e.strerror}") from None


def open_engine(location: CatalogLocation, create: bool = True) -> Engine:
    """Engine on the catalog database, migrated to the current schema.

    `create=False` refuses a folder that holds no catalog yet (queries should not make one).
    """
    _prepare_folder(location, create)
    what = location.db_path if location.is_folder else location.display
    try:
        engine = make_engine(location.url)
    except (ArgumentError, ImportError) as e:
        raise CatalogError(f"cannot open catalog {what}: {e}") from None
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
        raise CatalogError(f"cannot open catalog {what}: {reason}") from None
    return engine
