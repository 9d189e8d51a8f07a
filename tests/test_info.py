"""info: what a catalog holds, in what schema, and what it weighs on disk."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from searcher.api import info as catalog_info
from searcher.api import ingest
from searcher.catalog.engine import head_revision
from searcher.cli import app
from searcher.errors import CatalogError
from searcher.features.histogram import HistogramExtractor
from searcher.features.orb import OrbExtractor
from searcher.features.thumbnail import ThumbnailExtractor
from searcher.ingest import IngestOptions

from conftest import PHOTOS


@pytest.fixture
def small_catalog(tmp_path, location):
    folder = tmp_path / "images"
    folder.mkdir()
    for photo in PHOTOS[:3]:
        shutil.copy(photo, folder / photo.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff nothing after the header")
    ingest([folder], location, IngestOptions(workers=1, signatures=("hist", "mse", "orb")))
    return location


def test_info_counts_images_signatures_and_index_vectors(small_catalog):
    facts = catalog_info(small_catalog)
    assert facts.catalog == str(small_catalog.directory)
    assert facts.schema == facts.schema_head == head_revision()
    assert facts.images == {"ok": 3, "failed": 1}
    assert [(s.name, s.version, s.count, s.current) for s in facts.signatures] == [
        ("hist", HistogramExtractor.version, 3, True),
        ("mse", ThumbnailExtractor.version, 3, True),
        ("orb", OrbExtractor.version, 3, True),
    ]
    assert {(i.name, i.vectors, i.up_to_date) for i in facts.indexes} == {("hist", 3, True), ("mse", 3, True)}


def test_disk_use_adds_up_to_the_folder(small_catalog):
    disk = catalog_info(small_catalog).disk
    assert disk["database"] > 0 and disk["indexes"] > 0
    assert disk["database"] + disk["indexes"] + disk["other"] == disk["total"]
    on_disk = sum(p.stat().st_size for p in small_catalog.directory.rglob("*") if p.is_file())
    assert disk["total"] == on_disk


def test_an_index_behind_the_catalog_is_reported_out_of_date(small_catalog):
    sidecar = small_catalog.index_path("hist").with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    stamp = meta["catalog"]
    sidecar.write_text(json.dumps({**meta, "catalog": {**stamp, "generation": stamp["generation"] - 1}}))
    states = {i.name: i.up_to_date for i in catalog_info(small_catalog).indexes}
    assert states == {"hist": False, "mse": True}


def test_info_without_a_catalog_is_a_clear_error(tmp_path):
    from searcher.catalog import CatalogLocation

    with pytest.raises(CatalogError, match="no catalog at"):
        catalog_info(CatalogLocation(tmp_path / "nothing"))


def test_cli_info_text_and_json(small_catalog):
    runner = CliRunner()
    text = runner.invoke(app, ["info", "--catalog", str(small_catalog.directory)], catch_exceptions=False)
    assert text.exit_code == 0
    assert f"catalog     {small_catalog.directory}" in text.stdout
    assert "3 ok, 1 failed" in text.stdout and f"signature   orb v{OrbExtractor.version}: 3 (current)" in text.stdout
    data = json.loads(runner.invoke(app, ["info", "--catalog", str(small_catalog.directory), "--format", "json"]).stdout)
    assert data["images"] == {"ok": 3, "failed": 1} and data["schema"] == head_revision()
