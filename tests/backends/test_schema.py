"""The schema is the same on SQLite and PostgreSQL, made by the same migrations, and ids are never reused."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from searcher.catalog.engine import current_revision, head_revision, make_engine, upgrade
from searcher.catalog.schema import Base

pytestmark = pytest.mark.backends


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/catalog.db"
    return request.getfixturevalue("pg_url")


def _migrated(url: str):
    """An engine on `url` with every migration applied one after the other (as an old catalog gets them)."""
    from alembic import command

    from searcher.catalog.engine import _alembic_config

    engine = make_engine(url)
    command.upgrade(_alembic_config(engine), "head")
    return engine


def _describe(engine) -> dict:
    """Everything a schema is made of, as the database reports it: tables, columns (type, nullability,
    default), keys, foreign keys with their ON DELETE, indexes, constraint names (a later migration
    drops a constraint by its name), the stamped revision; on SQLite also
    whether `images` hands out ids with AUTOINCREMENT."""
    inspector = inspect(engine)
    out = {}
    for table in sorted(inspector.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in inspector.get_columns(table)],
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(
                (
                    f["name"],
                    f["constrained_columns"],
                    f["referred_table"],
                    f["referred_columns"],
                    f.get("options", {}).get("ondelete"),
                )
                for f in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted((i["name"], i["column_names"], i["unique"]) for i in inspector.get_indexes(table)),
            "unique": sorted((u["name"], u["column_names"]) for u in inspector.get_unique_constraints(table)),
        }
    with engine.connect() as connection:
        out["revision"] = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if engine.dialect.name == "sqlite":
            ddl = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'images'")).scalar()
            out["images autoincrement"] = "AUTOINCREMENT" in ddl.upper()
    return out


def test_migrations_build_exactly_the_models_on_both_dialects(empty_database):
    engine = _migrated(empty_database)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_a_new_catalog_made_from_the_models_has_the_schema_the_migrations_build(empty_database, tmp_path, request):
    if empty_database.startswith("sqlite"):
        migrated_url = f"sqlite:///{tmp_path}/migrated.db"
    else:
        migrated_url = request.getfixturevalue("pg_cluster").new_database()
    migrated = _migrated(migrated_url)
    created = make_engine(empty_database)
    upgrade(created)  # an empty database: created from the models and stamped, no migration run
    assert _describe(created) == _describe(migrated)
    assert _describe(created)["revision"] == head_revision()
    migrated.dispose()
    created.dispose()


def test_an_unstamped_database_that_holds_catalog_tables_is_never_stamped_as_new(tmp_path):
    from alembic import command

    from searcher.catalog.engine import _alembic_config

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(_alembic_config(engine), "0001")  # images without the video columns
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO images (path, size, mtime_ns, status) VALUES ('kept.jpg', 1, 1, 'ok')")
        c.exec_driver_sql("DELETE FROM alembic_version")  # its revision lost
    # Creating the missing tables and stamping head would pass off the old `images` as current:
    # the migrations run instead, and refuse to create a table that exists.
    with pytest.raises(OperationalError, match="already exists"):
        upgrade(engine)
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT version_num FROM alembic_version").all() == []
        assert c.exec_driver_sql("SELECT path FROM images").scalars().all() == ["kept.jpg"]
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
