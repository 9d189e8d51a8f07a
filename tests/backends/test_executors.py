"""Extraction on Ray gives exactly what the local pool gives."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import create_engine, select

from searcher.catalog import Catalog, CatalogLocation
from searcher.catalog.schema import ImageRow, SignatureRow
from searcher.errors import UsageError
from searcher.executors import make_executor, parse_executor
from searcher.features import DEFAULT_SIGNATURES, build_extractor
from searcher.ingest import IngestOptions

from conftest import PHOTOS

pytestmark = pytest.mark.backends


def _signatures(location: CatalogLocation) -> dict[tuple[str, str], bytes]:
    engine = create_engine(location.url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(ImageRow.path, SignatureRow.extractor, SignatureRow.data).join(
                SignatureRow, SignatureRow.image_id == ImageRow.id
            )
        ).all()
    engine.dispose()
    return {(path.rsplit("/", 1)[-1], name): data for path, name, data in rows}


def test_ray_executor_gives_the_local_signatures(ray_cluster, tmp_path):
    files = PHOTOS[:20]  # more than one chunk, so several Ray tasks run
    local, remote = CatalogLocation(tmp_path / "local"), CatalogLocation(tmp_path / "ray")
    ingest(files, local, IngestOptions(workers=2))
    summary = ingest(files, remote, IngestOptions(executor="ray"))
    assert summary.added == len(files) and summary.failed == 0
    expected, got = _signatures(local), _signatures(remote)
    assert expected.keys() == got.keys() and len(expected) == len(DEFAULT_SIGNATURES) * len(files)
    for key, blob in expected.items():
        if key[1] == "ae":  # float inference: equal up to summation order
            extractor = build_extractor("ae")
            assert np.allclose(extractor.from_blob(blob), extractor.from_blob(got[key]), atol=1e-5), key
        else:
            assert blob == got[key], key


def test_ray_executor_reports_a_bad_file_like_the_local_pool(ray_cluster, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    summary = ingest([tmp_path / "photos", *PHOTOS[:17]], CatalogLocation(tmp_path / "cat"), IngestOptions(executor="ray"))
    assert summary.added == 17 and summary.failed == 1
    assert "broken.jpg" in summary.failures[0][0]


def test_executor_names_are_checked():
    assert parse_executor("ray://10.0.0.1:10001") == "ray://10.0.0.1:10001"
    for bad in ("spark", "ray://", "rayy"):
        with pytest.raises(UsageError, match="unknown executor"):
            parse_executor(bad)
    assert list(make_executor("local", 1).map(len, [[1, 2], [3]], lambda: None, ())) == [2, 1]


def ingest(paths, location, options):
    with Catalog.open(location) as catalog:
        return catalog.ingest(paths, options)
