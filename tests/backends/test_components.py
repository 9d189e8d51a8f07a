"""The components the backend tests rely on really start here."""

from sqlalchemy import create_engine, text


def test_throwaway_postgresql_answers(pg_url):
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        assert connection.execute(text("SHOW server_version")).scalar().startswith("15")
    engine.dispose()


def test_each_test_gets_its_own_database(pg_cluster, pg_url):
    assert pg_cluster.new_database() != pg_url
