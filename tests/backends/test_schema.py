"""The schema is the same on SQLite and PostgreSQL, made by the same migrations, and ids are never reused."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from searcher.catalog.engine import current_revision, head_revision, make_engine, upgrade
from searcher.catalog.schema import Base

pytestmark = pytest.mark.backends


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/catalog.db"
    return request.getfixturevalue("pg_url")


def test_migrations_build_exactly_the_models_on_both_dialects(empty_database):
    engine = make_engine(empty_database)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_a_deleted_image_id_is_never_handed_out_again(empty_database):
    engine = make_engine(empty_database)
    upgrade(engine)
    add = text("INSERT INTO images (path, size, mtime_ns, status) VALUES (:p, 1, 1, 'ok')")
    with engine.begin() as c:
        for path in ("a", "b", "c"):
            c.execute(add, {"p": path})
        c.execute(text("DELETE FROM images WHERE path = 'c'"))
    with engine.begin() as c:
        c.execute(add, {"p": "d"})
        assert c.execute(text("SELECT id FROM images WHERE path = 'd'")).scalar() == 4
    engine.dispose()


def test_a_sqlite_catalog_made_before_0004_stops_reusing_ids(tmp_path):
    from alembic import command

    from searcher.catalog.engine import _alembic_config

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(_alembic_config(engine), "0002")
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO images (path, size, mtime_ns, status) VALUES ('a', 1, 1, 'ok'), ('b', 1, 1, 'ok')")
        c.exec_driver_sql("INSERT INTO signatures VALUES (2, 'hist', '1', x'00')")
    upgrade(engine)
    with engine.begin() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM signatures").scalar() == 1  # kept through the re-creation
        c.exec_driver_sql("DELETE FROM images WHERE id = 2")
        c.exec_driver_sql("INSERT INTO images (path, size, mtime_ns, status) VALUES ('c', 1, 1, 'ok')")
        assert c.exec_driver_sql("SELECT id FROM images WHERE path = 'c'").scalar() == 3
    engine.dispose()
