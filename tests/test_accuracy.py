"""Accuracy guarantees of the calibrated, adaptively verified ranking (issue 10).

- the first hit does not depend on --top, even for a copy the signatures rank far down;
- compare is symmetric;
- a near-black copy and a greyscale copy of a photo find it;
- the calibrated score is a probability; a grey pair gives the colour histogram no weight;
- small images (176x144 video frames) still verify with ORB.
"""

from __future__ import annotations

import itertools
import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from searcher import calibration, scoring
from searcher.catalog import Catalog, CatalogLocation
from searcher.cli import app
from searcher.comparison import compare_images
from searcher.errors import UsageError
from searcher.features.autoencoder import AutoencoderExtractor
from searcher.features.histogram import HistogramExtractor
from searcher.features.orb import OrbExtractor
from searcher.features.thumbnail import ThumbnailExtractor

from conftest import PHOTOS, ingest_quiet

TARGET = PHOTOS[0]


def _gradient(rng, width=800, height=600) -> np.ndarray:
    """A smooth colour gradient: textureless (ORB cannot verify it) but close to a page-like query."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b, c = rng.uniform(0.5, 1.5, 3)
    planes = [xx / width * 200 * a + 30, yy / height * 180 * b + 40, (xx + yy) / (width + height) * 120 * c + 90]
    return np.clip(np.dstack(planes) + rng.normal(0, 20, 3), 0, 255).astype(np.uint8)


def _photo_on_a_page(photo, share: float = 0.6, angle: float = 30.0, seed: int = 123) -> np.ndarray:
    """The photo, turned by `angle` degrees, small in a corner of a gradient page: the global signatures
    see the page (and no right-angle variant undoes the turn), ORB sees the photo."""
    page = _gradient(np.random.default_rng(seed))
    image = cv2.imread(str(photo))
    width = int(min(page.shape[1] * share, (page.shape[0] - 40) * image.shape[1] / image.shape[0]))
    piece = cv2.resize(image, (width, int(width * image.shape[0] / image.shape[1])), interpolation=cv2.INTER_AREA)
    h, w = piece.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 0.9)
    mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), turn, (w, h)) > 0
    region = page[20 : 20 + h, page.shape[1] - 20 - w : page.shape[1] - 20]
    region[mask] = cv2.warpAffine(piece, turn, (w, h))[mask]
    return page


@pytest.fixture(scope="module")
def page_catalog(tmp_path_factory):
    """The sample photos, pages made like the query from the OTHER photos (different pictures on the
    same page: the global signatures rank them alongside the query's original) and 30 gradients; the
    query is TARGET turned on a gradient page."""
    root = tmp_path_factory.mktemp("page")
    folder = root / "catalog_images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for photo in PHOTOS:
        shutil.copy(photo, folder / photo.name)
        if photo != TARGET:
            for k, angle in enumerate((-35, 25, 40)):
                page = _photo_on_a_page(photo, angle=angle, seed=k)
                cv2.imwrite(str(folder / f"{photo.stem}_page{angle}.jpg"), page)
    for k in range(30):
        cv2.imwrite(str(folder / f"gradient_{k:02d}.jpg"), _gradient(rng))
    query = root / "page.jpg"
    cv2.imwrite(str(query), _photo_on_a_page(TARGET, share=0.75), [cv2.IMWRITE_JPEG_QUALITY, 60])
    location = CatalogLocation(root / "catalog")
    ingest_quiet([folder], location, workers=2)
    return location, query


def test_the_first_hit_is_the_same_at_top_1_10_and_100_for_a_copy_ranked_beyond_30(page_catalog):
    location, query = page_catalog
    with Catalog.open(location, create=False) as catalog:
        unverified = [h.path for h in catalog.query_result(query, top=300, verify=False).hits]
        assert TARGET.name in {p.rsplit("/", 1)[-1] for p in unverified}
        rank = [p.rsplit("/", 1)[-1] for p in unverified].index(TARGET.name) + 1
        assert rank > 30, f"the scenario needs a copy the signatures rank low (it ranks {rank})"
        firsts = {top: catalog.query_result(query, top=top).hits[0] for top in (1, 10, 100)}
    assert {hit.path.rsplit("/", 1)[-1] for hit in firsts.values()} == {TARGET.name}
    assert all(hit.scores["orb_inliers"] >= calibration.MIN_INLIERS and hit.score >= 0.5 for hit in firsts.values())


def test_the_cli_first_hit_is_the_same_at_every_top_and_carries_p_same(page_catalog):
    location, query = page_catalog
    firsts = []
    for top in ("1", "10", "100"):
        done = CliRunner().invoke(
            app, ["query", str(query), "--catalog", str(location.directory), "--top", top, "--format", "jsonl"]
        )
        assert done.exit_code == 0, done.output
        row = json.loads(done.stdout.splitlines()[0])
        assert set(row) == {"query", "results"} and len(row["results"]) == int(top)
        first = row["results"][0]
        assert {"rank", "path", "score", "scores"} <= set(first) and first["score"] == first["scores"]["p_same"]
        firsts.append(first["path"])
    assert len(set(firsts)) == 1 and firsts[0].endswith(TARGET.name)


def test_a_verify_budget_of_zero_leaves_every_candidate_unverified(page_catalog):
    location, query = page_catalog
    with Catalog.open(location, create=False) as catalog:
        hits = catalog.query_result(query, top=5, verify_budget=0).hits
        assert hits and all("orb_inliers" not in h.scores for h in hits)
        assert all(h.score == pytest.approx(h.scores["fused"]) for h in hits)
        with pytest.raises(UsageError, match="verify-budget"):
            catalog.query_result(query, top=5, verify_budget=-1)


def test_an_easy_query_stops_verifying_early(sample_catalog):
    with Catalog.open(sample_catalog, create=False) as catalog:
        calls = []
        original = scoring.best_verification
        try:
            scoring.best_verification = lambda *a, **k: calls.append(1) or original(*a, **k)
            hits = catalog.query_result(PHOTOS[3], top=1).hits
        finally:
            scoring.best_verification = original
    assert hits[0].path.endswith(PHOTOS[3].name) and len(calls) < 5


@pytest.mark.parametrize("edit", ["mirrored", "mirrored_crop", "turned_90"])
def test_a_mirrored_or_turned_copy_is_verified_in_its_orientation(tmp_path, sample_catalog, edit):
    """The fused query runs cnn on the query and its mirror image only; ORB must still verify mirrored
    copies (against the mirrored query) and turned ones (ORB is rotation-invariant)."""
    image = cv2.imread(str(PHOTOS[5]))
    h, w = image.shape[:2]
    copy = {
        "mirrored": lambda: image[:, ::-1],
        "mirrored_crop": lambda: image[h // 6 :, w // 5 :][:, ::-1],
        "turned_90": lambda: cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE),
    }[edit]()
    query = _write(tmp_path, f"{edit}.jpg", np.ascontiguousarray(copy))
    with Catalog.open(sample_catalog, create=False) as catalog:
        hit = catalog.query_result(query, top=3).hits[0]
    assert hit.path.endswith(PHOTOS[5].name)
    assert hit.scores["orb_inliers"] >= 40 and hit.score >= 0.5, hit.scores


def test_the_mirrored_orb_signature_is_computed_only_when_it_can_matter(tmp_path, monkeypatch):
    """PHOTOS[5]'s thumbnail is nearly symmetric, so its plain copy is a candidate to check both ways;
    the plain check already reaches the inlier cap, and the mirrored query is never extracted."""
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(PHOTOS[5], folder / PHOTOS[5].name)
    location = CatalogLocation(tmp_path / "catalog")
    ingest_quiet([folder], location, workers=1)
    image = cv2.imread(str(PHOTOS[5]))
    query = _write(tmp_path, "half.jpg", cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)))
    extracted = []
    original = OrbExtractor.extract
    monkeypatch.setattr(OrbExtractor, "extract", lambda self, image: extracted.append(1) or original(self, image))
    with Catalog.open(location, create=False) as catalog:
        hit = catalog.query_result(query, top=10).hits[0]
    assert hit.scores["orb_inliers"] >= calibration.INLIER_CAP
    assert len(extracted) == 1, "the mirrored query was extracted although the plain check had settled it"


def _write(tmp_path, name, image):
    path = tmp_path / name
    cv2.imwrite(str(path), image)
    return path


@pytest.mark.parametrize("kind", ["rotated_crop", "unrelated", "mirrored_small"])
def test_compare_is_symmetric(tmp_path, kind):
    image = cv2.imread(str(PHOTOS[2]))
    h, w = image.shape[:2]
    if kind == "rotated_crop":
        other = cv2.rotate(image[h // 8 :, : 7 * w // 8], cv2.ROTATE_90_CLOCKWISE)
    elif kind == "mirrored_small":
        other = cv2.resize(image[:, ::-1], (w // 3, h // 3), interpolation=cv2.INTER_AREA)
    else:
        other = cv2.imread(str(PHOTOS[9]))
    a, b = PHOTOS[2], _write(tmp_path, f"{kind}.png", other)
    ab, ba = compare_images(a, b), compare_images(b, a)
    assert ab.score == pytest.approx(ba.score, abs=1e-12) and ab.near_duplicate == ba.near_duplicate
    assert ab.orb_inliers == ba.orb_inliers and ab.similarities == pytest.approx(ba.similarities)
    assert ab.near_duplicate == (kind != "unrelated")


def test_compare_on_the_command_line_is_symmetric(tmp_path):
    copy = _write(tmp_path, "copy.jpg", cv2.rotate(cv2.imread(str(PHOTOS[5]))[40:, 30:], cv2.ROTATE_180))
    outputs = []
    for pair in ((PHOTOS[5], copy), (copy, PHOTOS[5])):
        done = CliRunner().invoke(app, ["compare", *map(str, pair), "--format", "json"])
        assert done.exit_code == 0, done.output
        data = json.loads(done.stdout)
        outputs.append((data["score"], data["near_duplicate"]))
    assert outputs[0] == outputs[1] and outputs[0][1]


def _near_black(image):
    return (image.astype(np.float32) * 0.06).astype(np.uint8)  # levels 0..15 of 255


def _washed_out(image):
    return (200 + image.astype(np.float32) * 0.2).astype(np.uint8)


def _greyscale(image):
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("edit", [_near_black, _washed_out, _greyscale], ids=["near_black", "washed_out", "greyscale"])
@pytest.mark.parametrize("photo", [PHOTOS[1], PHOTOS[7], PHOTOS[14]], ids=lambda p: p.stem[:12])
def test_a_near_black_washed_out_or_greyscale_copy_finds_its_photo(tmp_path, sample_catalog, edit, photo):
    query = _write(tmp_path, "copy.png", edit(cv2.imread(str(photo))))
    with Catalog.open(sample_catalog, create=False) as catalog:
        hits = catalog.query_result(query, top=3).hits
    assert hits[0].path.endswith(photo.name), [(h.path, h.score) for h in hits]
    assert hits[0].score >= 0.5


def test_the_thumbnail_and_autoencoder_inputs_are_contrast_normalised():
    image = cv2.imread(str(PHOTOS[4]))
    thumb = ThumbnailExtractor()
    assert np.abs(thumb.extract(image) - thumb.extract(_near_black(image))).mean() < 0.03
    assert np.abs(thumb.extract(np.full((50, 60, 3), 3, np.uint8)) - 0.5).max() == 0.0  # flat: no division by ~0
    ae = AutoencoderExtractor()
    assert float(np.dot(ae.extract(image), ae.extract(_near_black(image)))) > 0.9


def test_the_changed_extractors_have_new_versions():
    # The next ingest recomputes exactly the signatures whose recipe changed.
    assert ThumbnailExtractor.version == "3" and OrbExtractor.version == "4" and HistogramExtractor.version == "3"
    assert AutoencoderExtractor().version.startswith("3-")


def test_a_grey_pair_gives_the_colour_histogram_no_weight():
    sims = {"hist": np.array([0.1, 0.9, 0.1, 0.9]), "mse": np.full(4, 0.7), "ae": np.full(4, 0.6), "cnn": np.full(4, 0.8)}
    scored = scoring.calibrate(sims, np.array([True, True, False, False]), has_orb=True)
    assert scored.unverified()[0] == pytest.approx(scored.unverified()[1])
    assert scored.unverified()[3] > scored.unverified()[2]


def test_grey_images_are_told_from_their_histograms():
    extractor = HistogramExtractor()
    colour = cv2.imread(str(PHOTOS[0]))
    assert calibration.grey_histograms(extractor.extract(_greyscale(colour)))[0]
    assert not calibration.grey_histograms(extractor.extract(colour))[0]


def test_the_calibration_is_shipped_versioned_and_trained_on_tuning_originals_only():
    model_set = calibration.load()
    assert model_set.version and "tuning only" in model_set.trained["originals"]
    full = model_set.model(["hist", "mse", "ae", "cnn", "orb"])
    assert full.features == calibration.FEATURES
    assert full.weight("orb") > 0 and full.weight("cnn") > 0
    for r in range(1, 6):  # a model for every set of signatures a catalog can hold
        for signatures in itertools.combinations(("hist", "mse", "ae", "cnn", "orb"), r):
            model_set.model(signatures)


def test_probabilities_order_like_logits_and_reach_both_verdicts():
    sims = {name: np.linspace(0, 1, 11) for name in ("hist", "mse", "ae", "cnn")}
    scored = scoring.calibrate(sims, np.zeros(11, bool), has_orb=True)
    p = calibration.sigmoid(scored.logits(np.zeros(11, int)))
    assert np.all(np.diff(p) > 0) and p[0] < 0.05 and p[-1] > 0.95
    assert np.all(scored.logits(np.full(11, 40)) > scored.unverified())


def test_a_small_video_frame_still_verifies_against_its_recompressed_copy():
    frame = cv2.resize(cv2.imread(str(PHOTOS[6])), (176, 144), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 20])
    copy = cv2.imdecode(data, cv2.IMREAD_COLOR)
    orb = OrbExtractor()
    a, b = orb.extract(frame), orb.extract(copy)
    assert len(a) > 150  # upscaled before detection: keypoints beyond ORB's borders
    assert scoring.verify(a, b).inliers >= 2 * calibration.MIN_INLIERS
    points, _ = scoring.split_orb(a)
    assert points[:, 0].max() < 176 and points[:, 1].max() < 144  # positions in the frame's own pixels


def test_the_cli_defaults_repeat_the_library_ones():
    from searcher import dups, query
    from searcher.cli import review, search
    from searcher.features import DEFAULT_SIGNATURES

    assert search.DEFAULT_SIGNATURES == ",".join(DEFAULT_SIGNATURES)
    assert search.VERIFY_BUDGET == query.VERIFY_BUDGET and review.DEFAULT_VERIFY_BUDGET == dups.DEFAULT_VERIFY_BUDGET


def test_dups_never_groups_pictures_orb_cannot_confirm(tmp_path):
    """Smooth gradients look alike to every global signature (cnn ~0.7, thumbnails alike after
    normalisation) and give ORB nothing to match: linked on their calibrated score alone, such
    pictures chained a real library's tiles into one group of hundreds. A real copy still groups."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for k in range(8):
        _write(folder, f"gradient_{k}.jpg", cv2.GaussianBlur(_gradient(rng, 640, 400), (0, 0), 3))
    shutil.copy(PHOTOS[3], folder / PHOTOS[3].name)
    image = cv2.imread(str(PHOTOS[3]))
    _write(folder, "copy.jpg", cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)))
    location = CatalogLocation(tmp_path / "catalog")
    ingest_quiet([folder], location, workers=1)
    with Catalog.open(location, create=False) as catalog:
        groups = catalog.duplicates(workers=1).groups
    assert [sorted(m.path.rsplit("/", 1)[-1] for m in g.members) for g in groups] == [sorted([PHOTOS[3].name, "copy.jpg"])]


def test_dups_links_a_near_black_copy_and_respects_its_verify_budget(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in PHOTOS[:5]:
        shutil.copy(photo, folder / photo.name)
    _write(folder, "dark.png", _near_black(cv2.imread(str(PHOTOS[2]))))
    location = CatalogLocation(tmp_path / "catalog")
    ingest_quiet([folder], location, workers=1)
    with Catalog.open(location, create=False) as catalog:
        groups = catalog.duplicates(workers=1).groups
        assert [sorted(m.path.rsplit("/", 1)[-1] for m in g.members) for g in groups] == [sorted([PHOTOS[2].name, "dark.png"])]
        full = catalog.duplicates(workers=1)
        starved = catalog.duplicates(workers=1, verify_budget=0)
        assert starved.verified_pairs <= full.verified_pairs and len(starved.groups) <= 1
        with pytest.raises(UsageError, match="verify-budget"):
            catalog.duplicates(verify_budget=-1)
