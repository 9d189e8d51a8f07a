"""Real backends started by the tests themselves: a throwaway PostgreSQL cluster, Milvus Lite
files, a local Ray cluster. A backend is skipped, with the reason printed, only when its
binaries or packages cannot be found (CI installs them: see .ci/run)."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PG_USER = "postgres"  # initdb refuses root; the server runs as this unprivileged user
_skip_reasons: dict[str, str] = {}


def _skip(component: str, reason: str):
    """Skip with the reason printed once on the terminal, not only in -rs output."""
    if component not in _skip_reasons:
        _skip_reasons[component] = reason
        print(f"\nSKIP {component}: {reason}", file=sys.stderr)
    pytest.skip(f"{component}: {reason}")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    """Run a PostgreSQL binary as the unprivileged user when we are root (CI is)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_USER, "--", *argv]
    return ["su", PG_USER, "-s", "/bin/sh", "-c", " ".join(map(repr, argv))]


class PostgresCluster:
    """initdb into a temp folder, pg_ctl start on a free 127.0.0.1 port; `new_database()` per test."""

    def __init__(self, initdb: str, pg_ctl: str):
        self.initdb, self.pg_ctl = initdb, pg_ctl
        # Not under pytest's tmp folder: that is private to root and the server user must enter it.
        self.root = Path(tempfile.mkdtemp(prefix="searcher-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._names = itertools.count()

    def start(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        run = lambda argv: subprocess.run(_as_server_user(argv), check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
        run([self.initdb, "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"])
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=100"
        run([self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "-t", "60", "start"])

    def stop(self) -> None:
        subprocess.run(
            _as_server_user([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"]), capture_output=True, timeout=60
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"searcher_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_cluster():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        _skip("postgresql", "initdb/pg_ctl not found on PATH nor under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _skip("postgresql", "psycopg is not installed (pip install -e '.[postgres]')")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            _skip("postgresql", f"running as root and no unprivileged '{PG_USER}' user to run the server")
    cluster = PostgresCluster(initdb, pg_ctl)
    try:
        cluster.start()
    except subprocess.CalledProcessError as e:
        cluster.stop()
        pytest.fail(f"throwaway PostgreSQL cluster did not start: {e.stderr or e.stdout}")
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A fresh, empty database on the throwaway cluster."""
    return pg_cluster.new_database()


@pytest.fixture
def milvus_uri(tmp_path) -> str:
    """A Milvus Lite file (embedded server started by pymilvus) private to the test."""
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError:
        _skip("milvus", "pymilvus / milvus-lite are not installed (pip install -e '.[milvus]')")
    return str(tmp_path / "milvus.db")


@pytest.fixture(scope="session")
def ray_cluster():
    """A local two-CPU Ray cluster, shared by the session."""
    try:
        import ray
    except ImportError:
        _skip("ray", "ray is not installed (pip install -e '.[ray]')")
    if not ray.is_initialized():
        # address="local": a private cluster, whatever Ray a `ray start` may have left on the machine.
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
