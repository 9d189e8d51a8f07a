"""Catalog schema: created by migrations, upgraded on open, refused when newer than this searcher."""

import shutil
import sqlite3

import pytest
from sqlalchemy import inspect

from searcher.catalog.engine import current_revision, head_revision, open_engine
from searcher.errors import CatalogError
from searcher.features import build_extractor


def test_new_catalog_is_migrated_to_head(location):
    engine = open_engine(location)
    assert current_revision(engine) == head_revision()
    assert {"images", "signatures", "catalog_state"} <= set(inspect(engine).get_table_names())
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_catalog_without_schema_is_upgraded(location):
    location.directory.mkdir(parents=True)
    sqlite3.connect(location.db_path).close()  # an empty database file, as an interrupted first run leaves it
    engine = open_engine(location)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_catalog_from_a_newer_searcher_is_refused(location):
    open_engine(location).dispose()
    with sqlite3.connect(location.db_path) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(CatalogError, match="newer searcher"):
        open_engine(location)


def test_query_side_does_not_create_a_catalog(location):
    with pytest.raises(CatalogError, match="no catalog at"):
        open_engine(location, create=False)
    assert not location.directory.exists()


def test_a_file_that_is_not_a_database_is_a_clear_error(location):
    location.directory.mkdir(parents=True)
    location.db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError, match="catalog database is corrupt: .*restore a backup"):
        open_engine(location)


def test_catalog_from_an_older_version_is_upgraded_keeping_its_rows(location):
    from alembic import command

    from searcher.catalog.engine import _alembic_config, make_engine

    location.directory.mkdir(parents=True)
    engine = make_engine(location.url)
    command.upgrade(_alembic_config(engine), "0001")  # the first released schema
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO images (path, size, mtime_ns, sha256, width, height, status) VALUES ('/a.jpg', 1, 2, 'ab', 3, 4, 'ok')"
        )
        c.exec_driver_sql("INSERT INTO signatures VALUES (1, 'hist', '1', x'00')")
    engine.dispose()
    engine = open_engine(location)
    assert current_revision(engine) == head_revision()
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT path, kind, parent_id FROM images").one() == ("/a.jpg", "image", None)
        assert c.exec_driver_sql("SELECT count(*) FROM signatures").scalar() == 1
    engine.dispose()


def test_the_cheap_head_revision_is_alembics():
    from searcher.catalog.engine import head_revision, head_revision_cheap

    assert head_revision_cheap() == head_revision()


def test_signature_counts_come_from_the_summary_ingest_leaves_and_follow_each_change(tmp_path):
    from searcher import Catalog
    from searcher.catalog.store import _count_signatures
    from searcher.ingest import IngestOptions

    from conftest import SAMPLE

    photos = sorted((SAMPLE / "photos").iterdir())
    (tmp_path / "lib").mkdir()
    for p in photos[:3]:
        shutil.copy(p, tmp_path / "lib" / p.name)
    with Catalog.open(tmp_path / "cat") as catalog:
        catalog.ingest([tmp_path / "lib"], IngestOptions(workers=1, signatures=("hist", "mse")))
        with catalog.store.session() as session:
            counted = _count_signatures(session)
        versions = {name: build_extractor(name).version for name in ("hist", "mse")}
        assert catalog.store.signature_counts() == counted == [("hist", versions["hist"], 3), ("mse", versions["mse"], 3)]
        shutil.copy(photos[3], tmp_path / "lib" / photos[3].name)
        catalog.store.bump_generation()  # a change began (and, say, was interrupted): counted again
        assert catalog.store.signature_counts() == counted
        catalog.ingest([tmp_path / "lib"], IngestOptions(workers=1, signatures=("hist", "mse")))
        assert catalog.store.signature_counts() == [("hist", versions["hist"], 4), ("mse", versions["mse"], 4)]
