"""Query: edited copies find their original; unrelated photos stay below; every metric answers."""

import cv2
import pytest

from searcher.api import query_paths
from searcher.catalog import Catalog
from searcher.errors import CatalogError, UsageError

from conftest import PHOTOS, TRANSFORMS, transform


@pytest.fixture(scope="module")
def searcher(sample_catalog):
    with Catalog.open(sample_catalog, create=False) as s:
        yield s


QUERIED = [PHOTOS[i] for i in (0, 5, 11, 17)]


@pytest.mark.parametrize("kind", TRANSFORMS)
@pytest.mark.parametrize("photo", QUERIED, ids=lambda p: p.stem[:20])
def test_edited_copy_ranks_its_original_in_the_top_3_of_the_fused_ranking(searcher, tmp_path, photo, kind):
    query = tmp_path / f"{kind}.png"
    cv2.imwrite(str(query), transform(cv2.imread(str(photo)), kind))
    hits = searcher.query_result(str(query), top=10).hits
    paths = [h.path for h in hits]
    assert str(photo) in paths[:3], (
        f"{kind} copy of {photo.name}: original at {paths.index(str(photo)) + 1 if str(photo) in paths else 'absent'}"
    )
    original_score = hits[paths.index(str(photo))].score
    unrelated = [h.score for h in hits if h.path != str(photo)]
    assert all(score < original_score for score in unrelated)


def test_a_catalog_image_finds_itself_first_with_a_perfect_score(searcher):
    hit = searcher.query_result(str(PHOTOS[2]), top=1).hits[0]
    assert hit.path == str(PHOTOS[2])
    assert hit.score == pytest.approx(1.0, abs=1e-3)
    assert hit.scores["mse_distance"] == pytest.approx(0.0, abs=1e-4)
    assert hit.scores["mse"] == pytest.approx(1.0, abs=1e-2)
    assert hit.scores["orb_inliers"] > 100


@pytest.mark.parametrize("metric", ["hist", "mse", "orb", "fused"])
def test_each_metric_alone_ranks_the_image_itself_first(searcher, metric):
    hits = searcher.query_result(str(PHOTOS[4]), top=5, metric=metric).hits
    assert hits[0].path == str(PHOTOS[4])
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("method", ["correl", "chisqr", "intersect", "bhattacharyya"])
def test_every_histogram_method_can_rank(searcher, method):
    hits = searcher.query_result(str(PHOTOS[6]), top=3, metric="hist", hist_method=method).hits
    assert hits[0].path == str(PHOTOS[6])
    assert (f"hist_{method}_distance" if method in ("chisqr", "bhattacharyya") else f"hist_{method}") in hits[0].scores


def test_unknown_metric_and_method_are_usage_errors(searcher):
    with pytest.raises(UsageError, match="unknown metric"):
        searcher.query_result(str(PHOTOS[0]), metric="nope")
    with pytest.raises(UsageError, match="unknown histogram method"):
        searcher.query_result(str(PHOTOS[0]), hist_method="nope")


def test_unreadable_query_image_is_reported_not_raised(searcher, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    result = searcher.query_result(str(bad))
    assert result.error == "not a recognised image format" and result.hits == []


def test_folder_query_queries_every_image_in_it(sample_catalog, tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"q{i}.jpg"), cv2.imread(str(PHOTOS[i])))
    results = query_paths([str(tmp_path)], sample_catalog, top=2)
    assert [r.hits[0].path for r in results] == [str(p) for p in PHOTOS[:3]]


def test_query_without_a_catalog_is_a_clear_error(tmp_path):
    from searcher.catalog import CatalogLocation

    with pytest.raises(CatalogError, match="no catalog at"):
        query_paths([str(PHOTOS[0])], CatalogLocation(tmp_path / "none"))
