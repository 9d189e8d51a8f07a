"""compare: every measure of the seed between two images, the near-duplicate verdict, and the drawing."""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from searcher import images
from searcher.calibration import sigmoid
from searcher.cli import app
from searcher.comparison import BAND, GAP, compare_images, draw
from searcher.errors import ImageError, UsageError
from searcher.features.orb import OrbExtractor
from searcher.scoring import (
    ORIENTATIONS,
    calibrate,
    match_orb,
    orientations,
    threshold_logit,
)

from conftest import PHOTOS, SAMPLE, transform

NO_AE = ("hist", "mse", "orb")  # the verdict must not depend on whether autoencoder weights are installed here


def write_copy(tmp_path, photo, kind):
    path = tmp_path / f"{photo.stem}__{kind}.png"
    cv2.imwrite(str(path), transform(cv2.imread(str(photo)), kind))
    return path


@pytest.mark.parametrize("kind", ["rotated", "cropped", "recompressed", "brightened"])
def test_a_photo_and_its_transformed_copy_are_near_duplicates(tmp_path, kind):
    copy = write_copy(tmp_path, PHOTOS[0], kind)
    result = compare_images(PHOTOS[0], copy, signatures=NO_AE)
    assert result.near_duplicate, result.explanation
    assert result.orb_inliers >= 32 and result.score >= 0.9


@pytest.mark.parametrize("a, b", [(0, 1), (2, 3), (5, 11), (17, 20)])
def test_two_unrelated_photos_are_not_near_duplicates(a, b):
    result = compare_images(PHOTOS[a], PHOTOS[b], signatures=NO_AE)
    assert not result.near_duplicate, result.explanation
    assert result.score < 0.2


def test_a_mirrored_copy_is_verified_against_the_mirror_image(tmp_path):
    flipped = tmp_path / "flipped.png"
    cv2.imwrite(str(flipped), cv2.imread(str(PHOTOS[3]))[:, ::-1])
    result = compare_images(PHOTOS[3], flipped, signatures=NO_AE)
    assert result.orb_mirrored and result.orientation == "mirrored"
    assert result.near_duplicate


def test_an_image_against_itself_reads_identical_on_every_measure():
    r = compare_images(PHOTOS[4], PHOTOS[4], signatures=NO_AE)
    assert r.hist["correl"] == pytest.approx(1.0) and r.hist["intersect"] == pytest.approx(1.0, abs=1e-3)
    assert r.hist["chisqr"] == pytest.approx(0.0) and r.hist["bhattacharyya"] == pytest.approx(0.0, abs=1e-3)
    assert r.mse == pytest.approx(0.0) and r.orientation == "as is"
    assert r.orb_matches == r.orb_inliers > 200
    assert r.sift_bf_matches > 100 and r.sift_flann_matches > 100 and r.sift_inliers > 100
    assert r.fused > 0.9 and r.score == pytest.approx(1.0, abs=1e-3)


def test_the_score_combines_only_the_signatures_the_catalog_holds():
    r = compare_images(PHOTOS[0], PHOTOS[1], signatures=("hist", "orb"))
    assert list(r.similarities) == ["hist"] and r.ae_cosine is None and r.cnn_cosine is None
    only_hist = calibrate({"hist": np.array([r.similarities["hist"]])}, np.array([r.grey]), has_orb=True)
    assert r.fused == pytest.approx(float(sigmoid(only_hist.unverified()[0])))


def test_the_explanation_states_the_rule_with_its_numbers(tmp_path):
    r = compare_images(PHOTOS[0], write_copy(tmp_path, PHOTOS[0], "resized"), signatures=NO_AE)
    assert r.explanation.startswith("near duplicate: p(same picture)")
    assert f"{r.orb_inliers} ORB inliers" in r.explanation and "threshold 0.5" in r.explanation
    assert "calibration.json" in r.rule


def test_asking_for_a_number_of_inliers_gives_the_full_verdict():
    orb = OrbExtractor()
    paths = sorted((SAMPLE / "copies").glob("*"))[:6] + PHOTOS[:6]
    signatures = [orb.extract(images.load_image(p).bgr) for p in paths]
    for needed in (9, 20, 32):
        for a in signatures:
            for b in signatures[:6]:
                full = match_orb(a, b).verification.inliers
                assert (match_orb(a, b, needed=needed).verification.inliers >= needed) == (full >= needed)


def test_needed_inliers_are_the_least_that_reach_the_threshold():
    grid = np.linspace(0.0, 1.0, 21)
    sims = {name: np.repeat(grid, 2) for name in ("hist", "mse", "ae", "cnn")}
    scored = calibrate(sims, np.tile([False, True], len(grid)), has_orb=True)
    for threshold in (0.4, 0.5, 0.7):
        target = threshold_logit(threshold)
        for k, n in enumerate(scored.needed(target)):
            row = scored.base[k] + scored.orb_terms(k)
            if n < 0:
                assert row.max() < target
            elif n == 0:
                assert row[0] >= target
            else:
                assert row[n] >= target > row[n - 1]


def test_pairs_share_their_models_verification_terms_and_blocks_change_no_number(monkeypatch):
    # Pairs lacking signatures (NaN) use other models: several rows of terms in one Calibrated.
    rng = np.random.default_rng(7)
    sims = {name: rng.uniform(0, 1, 200) for name in ("hist", "mse", "ae", "cnn")}
    sims["cnn"][::3] = np.nan
    sims["ae"][::5] = np.nan
    scored = calibrate(sims, rng.uniform(size=200) < 0.2, has_orb=True)
    assert len(scored.terms) >= 4 and scored.orb_terms().shape == (200, len(scored.terms[0]))
    dense = scored.base[:, None] + scored.orb_terms()  # every pair's logit for 0..INLIER_CAP inliers
    inliers = rng.integers(0, 100, 200)
    assert np.array_equal(scored.logits(inliers), dense[np.arange(200), np.minimum(inliers, dense.shape[1] - 1)])
    assert np.array_equal(scored.unverified(), dense[:, 0]) and np.array_equal(scored.upper(), dense.max(axis=1))
    target = threshold_logit(0.5)
    whole = scored.needed(target)
    monkeypatch.setattr(type(scored), "NEEDED_BLOCK", 7)
    assert np.array_equal(scored.needed(target), whole)
    rows = np.array([5, 3, 150])
    assert np.array_equal(scored.needed(target, rows=rows), whole[rows])
    assert np.array_equal(scored.logits(inliers[rows], rows=rows), scored.logits(inliers)[rows])
    per_pair = rng.normal(size=200)
    assert np.array_equal(scored.needed(per_pair), [scored.needed(t, rows=[k])[0] for k, t in enumerate(per_pair)])


def test_the_eight_orientations_are_the_flips_and_right_angle_turns():
    square = np.arange(256, dtype=np.float32)
    turned = orientations(square)
    assert turned.shape == (8, 256) and len(ORIENTATIONS) == 8
    assert len({row.tobytes() for row in turned}) == 8
    grid = square.reshape(16, 16)
    assert np.array_equal(turned[ORIENTATIONS.index("mirrored")], grid[:, ::-1].ravel())
    assert np.array_equal(turned[ORIENTATIONS.index("rotated 90 cw")], np.rot90(grid, -1).ravel())


def test_draw_writes_a_readable_png_of_both_images_side_by_side(tmp_path):
    copy = write_copy(tmp_path, PHOTOS[2], "rotated")
    result = compare_images(PHOTOS[2], copy, signatures=NO_AE)
    out = tmp_path / "matches.png"
    width, height = draw(result, out)
    drawn = cv2.imread(str(out))
    assert drawn.shape == (height, width, 3)
    a, b = images.load_image(PHOTOS[2]).bgr, images.load_image(copy).bgr
    assert drawn.shape == (max(a.shape[0], b.shape[0]) + BAND, a.shape[1] + GAP + b.shape[1], 3)
    green = np.all(drawn == (60, 200, 60), axis=2).sum()
    assert green > 100  # inlier lines are drawn


def test_an_unreadable_image_is_a_user_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="bad.jpg: not a recognised image format"):
        compare_images(bad, PHOTOS[0])


runner = CliRunner()


def test_cli_compare_json_and_draw(tmp_path):
    copy = write_copy(tmp_path, PHOTOS[1], "cropped")
    drawing = tmp_path / "d.png"
    result = runner.invoke(
        app,
        ["compare", str(PHOTOS[1]), str(copy), "--format", "json", "--draw", str(drawing), "--catalog", str(tmp_path / "none")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["near_duplicate"] is True and data["a"] == str(PHOTOS[1])
    for key in (
        "hist",
        "mse_distance",
        "mse_oriented_distance",
        "orb_matches",
        "orb_inliers",
        "sift_bf_matches",
        "sift_flann_matches",
        "sift_inliers",
        "ae_cosine",
        "fused",
        "score",
        "rule",
    ):
        assert key in data
    assert set(data["hist"]) == {"correl", "chisqr_distance", "intersect", "bhattacharyya_distance"}
    assert cv2.imread(str(drawing)) is not None


def test_cli_compare_table_ends_with_the_verdict(tmp_path):
    result = runner.invoke(
        app, ["compare", str(PHOTOS[0]), str(PHOTOS[1]), "--catalog", str(tmp_path / "none")], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert "hist BHATTACHARYYA" in result.stdout and "SIFT matches, FLANN" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("not a near duplicate: p(same picture)")


def test_cli_compare_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        runner.invoke(app, ["compare", str(tmp_path / "nope.jpg"), str(PHOTOS[0])], catch_exceptions=False)
