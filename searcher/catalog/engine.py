"""Engines on a catalog database and its schema: SQLite settings, Alembic upgrade, newer-schema refusal.

Opening a catalog brings its schema to the newest revision (a new empty database: created from the
models at once and stamped; an older one: the Alembic migrations it lacks), and refuses a database
written by a newer searcher.
"""

from __future__ import annotations

import os
import re
import sqlite3
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
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


SUPPORTED = ("sqlite", "postgresql")


def _read_only_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str | URL, what: str | None = None) -> Engine:
    """An engine on `url`; SQLite gets WAL, foreign keys and a busy timeout on every connection.
    Database errors that mean the catalog itself is unusable become one-line CatalogErrors."""
    try:
        engine = create_engine(url)
    except ImportError as e:
        if make_url(url).get_backend_name() == "postgresql":
            raise CatalogError(f"a PostgreSQL catalog needs the postgres extra: pip install 'searcher[postgres]' ({e})") from None
        raise
    if engine.dialect.name not in SUPPORTED:
        engine.dispose()
        raise CatalogError(f"catalogs live in SQLite or PostgreSQL, not {engine.dialect.name}")
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "handle_error", _translator(what or engine.url.render_as_string(hide_password=True)))
    return engine


def writable(location: CatalogLocation) -> bool:
    """Whether this process may write a folder catalog's database (and the files SQLite keeps beside it)."""
    db = location.db_path
    companions = [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm")]
    return (
        os.access(location.directory, os.W_OK | os.X_OK)
        and os.access(db, os.W_OK)
        and all(os.access(p, os.W_OK) for p in companions if p.exists())
    )


def read_only_engine(location: CatalogLocation) -> Engine:
    """An engine that only reads a folder catalog nobody may write here (read-only files or folder).
    SQLite opens it with mode=ro; when the database file or its folder is read-only, no process
    can be changing it, and it is opened as immutable: SQLite then creates no -shm/-wal file."""
    immutable = not os.access(location.directory, os.W_OK | os.X_OK) or not os.access(location.db_path, os.W_OK)
    uri = "file:" + quote(str(location.db_path)) + "?mode=ro" + ("&immutable=1" if immutable else "")
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
    event.listen(engine, "connect", _read_only_pragmas)
    event.listen(engine, "handle_error", _translator(str(location.db_path)))
    return engine


CORRUPT = ("malformed", "not a database", "file is encrypted", "database corrupt")
FULL = ("database or disk is full", "disk i/o error")
READ_ONLY = ("readonly database", "read-only database", "readonly")


def catalog_problem(what: str, error: BaseException) -> CatalogError | None:
    """The one-line CatalogError for a database error that means the catalog itself is unusable
    (corrupt, disk full, read-only), or None for any other error."""
    text = str(error).lower()
    if any(k in text for k in CORRUPT):
        return CatalogError(
            f"catalog database is corrupt: {what}: {error} (restore a backup or delete the catalog folder to start over)"
        )
    if any(k in text for k in FULL):
        return CatalogError(f"cannot write the catalog {what}: {error} (is the disk full? work committed so far is kept)")
    if any(k in text for k in READ_ONLY):
        return CatalogError(f"catalog {what} is read-only here ({error}): it can be searched but not changed{_shm_hint(what)}")
    return None


def _shm_hint(what: str) -> str:
    shm = what + "-shm"
    if os.path.exists(shm) and not os.access(shm, os.W_OK):
        return f"; {shm} is not writable (left by another user? delete it while no searcher runs)"
    return ""


def _translator(what: str):
    def translate(context) -> None:
        problem = catalog_problem(what, context.original_exception)
        if problem is not None:
            raise problem from None

    return translate


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


MIGRATION_LOCK = 0x5EA4C4E5  # PostgreSQL advisory lock key held while one process migrates


@contextmanager
def _migration_lock(engine: Engine):
    """Several ingest machines may open one new PostgreSQL catalog at once: one migrates, the others
    wait for it (an advisory lock, on a connection of its own). SQLite's writer lock does this itself."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()


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


VERSION_TABLE = (  # the table Alembic keeps its revision in, as Alembic itself creates it
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)


def _create_when_empty(engine: Engine, head: str) -> bool:
    """A database that holds none of the catalog's tables gets the whole schema in one go from the
    models (Base.metadata.create_all) and is stamped with the head revision, as Alembic's cookbook
    recipe "Building an Up to Date Database from Scratch" does; tests/backends/test_schema.py checks
    that this builds exactly what the migrations build. Replaying every migration on a new catalog
    (importing Alembic, loading its scripts, SQLite table re-creations) took ~0.4 s of every
    new catalog. False when the database is not empty: the migrations bring it up to date."""
    from sqlalchemy import inspect

    from searcher.catalog.schema import Base

    with _migration_lock(engine), engine.begin() as connection:
        present = set(inspect(connection).get_table_names())
        if present & (set(Base.metadata.tables) | {"alembic_version"}):
            return False
        Base.metadata.create_all(connection)
        connection.execute(text(VERSION_TABLE))
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": head})
    return True


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; refuse a database stamped with a revision this version does not know.
    An empty database is created from the models at once; Alembic is imported only when a
    stamped revision is not the head."""
    stamped = stamped_revision(engine)
    cheap_head = head_revision_cheap()
    if stamped is not None and stamped == cheap_head:
        return
    if stamped is None and cheap_head is not None and _create_when_empty(engine, cheap_head):
        return
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    if current_revision(engine) == head:
        return
    with _migration_lock(engine):
        current = current_revision(engine)  # again: another process may have migrated meanwhile
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


def _upgrade_alone(engine: Engine, location: CatalogLocation) -> None:
    """Create or migrate the schema under the catalog's writer lock: two processes making one new
    catalog at once would both create its tables (the second fails). upgrade() looks again inside."""
    from searcher.catalog import lock

    with lock.exclusive(location.vector_dir, "schema upgrade"):
        upgrade(engine)


def open_engine(location: CatalogLocation, create: bool = True) -> Engine:
    """Engine on the catalog database, migrated to the current schema.

    `create=False` refuses a folder that holds no catalog yet (queries should not make one).
    """
    _prepare_folder(location, create)
    what = str(location.db_path) if location.is_folder else location.display
    try:
        if location.is_folder and location.exists and not writable(location):
            engine = read_only_engine(location)
        else:
            engine = make_engine(location.url, what)
    except (ArgumentError, ImportError) as e:
        raise CatalogError(f"cannot open catalog {what}: {e}") from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        # The plain-SQL check first: importing Alembic costs a one-shot command ~0.2 s.
        head = head_revision_cheap()
        if head is None or stamped_revision(engine) != head:
            _upgrade_alone(engine, location)
    except CatalogError:
        engine.dispose()
        raise
    except (DatabaseError, OperationalError) as e:
        engine.dispose()
        original = getattr(e, "orig", None) or e
        raise catalog_problem(what, original) or CatalogError(f"cannot open catalog {what}: {original}") from None
    return engine
