"""The cnn signature: copies of a photo are closer to it than other photos, no torch, versioned model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from searcher.errors import SearcherError
from searcher.features import build_extractor, parse_signature_list
from searcher.features.cnn import DIM, CnnExtractor, default_model_path, dihedral

from conftest import PHOTOS, transform

pytestmark = pytest.mark.skipif(not default_model_path().is_file(), reason="models/cnn.onnx is not built")


@pytest.fixture(scope="module")
def cnn() -> CnnExtractor:
    return CnnExtractor()


@pytest.fixture(scope="module")
def originals(cnn):
    images = [cv2.imread(str(p)) for p in PHOTOS]
    return images, np.stack(cnn.extract_batch(images))


def _grey(image):
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def _copy(image, kind):
    if kind == "grey":
        return _grey(image)
    if kind == "mirrored":
        return np.ascontiguousarray(image[:, ::-1])
    return transform(image, kind)


# Not right-angle rotations: the query leaves those to mse and ORB (test_query covers them).
@pytest.mark.parametrize("kind", ["resized", "recompressed", "cropped", "mirrored", "brightened", "grey"])
def test_a_copy_is_clearly_closer_to_its_original_than_any_other_photo(cnn, originals, kind):
    images, stored = originals
    for k in range(0, len(images), 4):
        copy = _copy(images[k], kind)
        cosine = (stored @ np.stack(cnn.query_signatures(copy)).T).max(axis=1)
        others = np.delete(cosine, k)
        assert cosine[k] > 0.75, (kind, PHOTOS[k].name, cosine[k])
        assert cosine[k] > others.max() + 0.15, (kind, PHOTOS[k].name, cosine[k], others.max())


def test_signature_is_a_unit_vector_stored_in_half_precision(cnn, originals):
    images, stored = originals
    assert stored.shape == (len(images), DIM)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)
    blob = cnn.to_blob(stored[0])
    assert len(blob) == 2 * DIM
    np.testing.assert_allclose(cnn.from_blob(blob), stored[0], atol=1e-3)
    assert cnn.similarity(stored[0], stored[0]) == pytest.approx(1.0, abs=1e-5)
    assert cnn.space == "cosine" and cnn.dim == DIM and cnn.name == "cnn"


def test_batch_and_single_extraction_agree_and_accept_grey_and_bgra(cnn, originals):
    images, stored = originals
    np.testing.assert_allclose(cnn.extract(images[1]), stored[1], atol=1e-4)
    grey = cv2.cvtColor(images[2], cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(cnn.extract(grey), cnn.extract(_grey(images[2])), atol=1e-4)
    bgra = cv2.cvtColor(images[3], cv2.COLOR_BGR2BGRA)
    np.testing.assert_allclose(cnn.extract(bgra), stored[3], atol=1e-4)
    assert cnn.extract_batch([]) == []
    with pytest.raises(ValueError, match="expected a BGR image"):
        cnn.extract(np.zeros((0, 5, 3), np.uint8))


def test_query_variants_are_the_query_and_its_mirror_image(cnn, originals):
    images, stored = originals
    variants = cnn.query_signatures(images[0])
    assert len(variants) == 2
    np.testing.assert_allclose(variants[0], stored[0], atol=1e-4)
    # A mirrored copy is matched (almost) exactly by the mirror variant.
    mirrored = cnn.extract(np.ascontiguousarray(images[0][:, ::-1]))
    assert float(variants[1] @ mirrored) > 0.99 > float(variants[0] @ mirrored)
    assert len({a.shape for a in dihedral(np.zeros((3, 5)))}) == 2


def test_version_follows_the_model_file(tmp_path):
    copy = tmp_path / "cnn.onnx"
    shutil.copy(default_model_path(), copy)
    assert CnnExtractor(copy).version == CnnExtractor().version
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    changed = tmp_path / "changed.onnx"
    changed.write_bytes(bytes(data))
    assert CnnExtractor(changed).version != CnnExtractor().version


def test_a_missing_or_broken_model_is_a_clear_error(tmp_path):
    with pytest.raises(SearcherError, match="cnn model not found"):
        CnnExtractor(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(default_model_path().read_bytes()[:1000])
    with pytest.raises(SearcherError, match="cannot load cnn model"):
        CnnExtractor(broken).extract(np.zeros((32, 32, 3), np.uint8))


def test_cnn_is_selectable_and_a_default():
    from searcher.features import DEFAULT_SIGNATURES

    assert parse_signature_list("hist,cnn") == ("hist", "cnn")
    assert isinstance(build_extractor("cnn"), CnnExtractor)
    assert "cnn" in DEFAULT_SIGNATURES


def test_extraction_imports_neither_torch_nor_the_training_code(tmp_path):
    code = (
        "import sys, cv2\n"
        "from searcher.features import build_extractor\n"
        f"e = build_extractor('cnn'); v = e.extract(cv2.imread({str(PHOTOS[0])!r})); e.query_signatures(cv2.imread({str(PHOTOS[1])!r}))\n"
        "print(len(v), sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(DIM), "[]"]


@pytest.mark.parametrize("setting, side_by_side", [("1", 1), ("3", 3), ("", None)])
def test_images_run_one_per_thread_as_many_at_once_as_the_setting_allows(monkeypatch, setting, side_by_side):
    """Ingest workers set 1 (the processes are the parallelism); unset, a query's variants run on every
    CPU the process may use. ONNX Runtime's own intra-op threads stay at 1 (they did not pay)."""
    monkeypatch.setenv("SEARCHER_TORCH_THREADS", setting)
    extractor = CnnExtractor()
    image = cv2.imread(str(PHOTOS[0]))
    variants = extractor.query_signatures(image, alone=True)
    assert extractor.model.session.get_session_options().intra_op_num_threads == 1
    assert extractor.model.threads == (side_by_side or len(os.sched_getaffinity(0)))
    model = extractor.model
    one_at_a_time = [model(v[None])[0] for v in dihedral(model.preprocess(image))]
    assert np.allclose(np.stack(variants), np.stack(one_at_a_time), atol=1e-6)  # same rows, same order


@pytest.mark.slow
def test_ingest_and_query_by_cnn_through_the_cli(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in PHOTOS[:8]:
        shutil.copy(photo, folder / photo.name)
    catalog = tmp_path / "catalog"
    cli = [sys.executable, "-m", "searcher"]
    ingest = subprocess.run(
        [*cli, "ingest", folder, "--catalog", catalog, "--signatures", "hist,cnn", "--workers", "2"],
        capture_output=True,
        text=True,
    )
    assert ingest.returncode == 0, ingest.stderr
    copy = tmp_path / "copy.jpg"
    image = cv2.imread(str(PHOTOS[5]))
    cv2.imwrite(
        str(copy), cv2.rotate(_grey(transform(image, "cropped")), cv2.ROTATE_90_CLOCKWISE), [cv2.IMWRITE_JPEG_QUALITY, 40]
    )
    query = subprocess.run(
        [*cli, "query", copy, "--catalog", catalog, "--metric", "cnn", "--format", "jsonl", "--top", "3"],
        capture_output=True,
        text=True,
    )
    assert query.returncode == 0, query.stderr
    hits = json.loads(query.stdout.splitlines()[0])["results"]
    assert Path(hits[0]["path"]).name == PHOTOS[5].name
    assert hits[0]["scores"]["cnn"] > hits[1]["scores"]["cnn"] + 0.1
    info = subprocess.run([*cli, "info", "--catalog", catalog, "--format", "json"], capture_output=True, text=True, check=True)
    assert "cnn" in info.stdout
