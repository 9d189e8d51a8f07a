"""The embedded default needs none of the scale-out extras; asking for a missing one is a one-line error naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import PHOTOS

# Runs the CLI with the extras' modules made unimportable, as in an install without them.
WITHOUT_EXTRAS = """
import sys
for name in ("ray", "pymilvus", "milvus_lite", "psycopg", "psycopg_binary", "grpc"):
    sys.modules[name] = None
from searcher.cli import main
sys.argv = ["searcher", *sys.argv[1:]]
main()
"""


def _searcher_without_extras(*args, cwd):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.mark.slow
def test_the_embedded_default_runs_without_the_extras(tmp_path):
    done = _searcher_without_extras("ingest", *PHOTOS[:3], "--catalog", tmp_path / "c", "--signatures", "hist,mse", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("3 added")
    done = _searcher_without_extras("query", PHOTOS[0], "--catalog", tmp_path / "c", "--format", "jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(PHOTOS[0]) in done.stdout


@pytest.mark.parametrize(
    "args, extra",
    [
        (["ingest", PHOTOS[0], "--executor", "ray"], "searcher[ray]"),
        (["query", PHOTOS[0], "--vectors", "milvus:./m.db"], "searcher[milvus]"),
        (["info", "--catalog", "postgresql+psycopg://u@127.0.0.1:9/db"], "searcher[postgres]"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(args, extra, tmp_path):
    if args[0] == "query":  # a catalog to query, made without Milvus
        made = _searcher_without_extras("ingest", PHOTOS[0], "--catalog", tmp_path / "c", "--signatures", "hist", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        args = [*args, "--catalog", tmp_path / "c"]
    done = _searcher_without_extras(*args, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and extra in lines[0], done.stderr
    assert not (tmp_path / "m.db").exists()


def test_every_command_with_a_catalog_takes_the_vector_backend_too():
    import inspect

    from searcher.cli import app

    takes = {
        command.callback.__name__: set(inspect.signature(command.callback).parameters) for command in app.registered_commands
    }
    with_catalog = {name for name, params in takes.items() if "catalog" in params}
    assert {"ingest", "query", "dups", "info", "reindex", "compare", "migrate", "serve"} <= with_catalog
    assert [name for name in with_catalog if "vectors" not in takes[name]] == []
    assert "executor" in takes["ingest"]
