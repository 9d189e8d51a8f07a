"""The autoencoder signature ("ae"): lazy torch, weights round trip, shipped weights, training resume."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from searcher.features import autoencoder as ae

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PHOTOS = REPO / "sample_data" / "photos"
_THREADS_BEFORE = int(sys.modules["torch"].get_num_threads()) if "torch" in sys.modules else (os.cpu_count() or 1)


def _photos(n: int | None = None) -> list[np.ndarray]:
    from searcher.images import load_image

    paths = sorted(SAMPLE_PHOTOS.glob("*.jpg"))
    if len(paths) < 4:
        pytest.skip("sample_data/photos is missing")
    return [load_image(p).bgr for p in paths[:n]]


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch: pytest.MonkeyPatch):
    """One torch thread (what ingest workers use; far faster on a busy 2-core machine), restored after."""
    monkeypatch.setenv("SEARCHER_TORCH_THREADS", "1")
    yield
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(_THREADS_BEFORE)


@pytest.fixture
def random_weights(tmp_path: Path) -> Path:
    import torch

    torch.manual_seed(0)
    model = ae.build_model(latent_dim=16)
    model.eval()
    return ae.save_weights(model, tmp_path / "random.pt")


def _run(code: str) -> None:
    env = dict(os.environ, SEARCHER_TORCH_THREADS="1", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_import_construction_and_numpy_extract_do_not_import_torch(random_weights: Path) -> None:
    _run(
        "import sys, numpy as np\n"
        "import searcher.features.autoencoder as a\n"
        f"e = a.AutoencoderExtractor({str(random_weights)!r})\n"
        "assert 'torch' not in sys.modules, 'torch imported by the constructor'\n"
        "assert e.dim == 16 and e.name == 'ae' and e.space == 'cosine', (e.dim, e.name, e.space)\n"
        "v = e.extract(np.zeros((40, 70, 3), np.uint8))\n"
        "assert v.shape == (16,) and v.dtype == np.float32\n"
        "assert 'torch' not in sys.modules, 'torch imported by the numpy backend'\n"
    )


def test_torch_backend_imports_torch_on_first_extract_only(random_weights: Path) -> None:
    _run(
        "import sys, numpy as np\n"
        "import searcher.features.autoencoder as a\n"
        f"e = a.AutoencoderExtractor({str(random_weights)!r}, backend='torch')\n"
        "assert 'torch' not in sys.modules, 'torch imported by the constructor'\n"
        "e.extract(np.zeros((40, 70, 3), np.uint8))\n"
        "import torch\n"
        "assert torch.get_num_threads() == 1, torch.get_num_threads()  # SEARCHER_TORCH_THREADS\n"
    )


def test_numpy_and_torch_backends_agree(random_weights: Path) -> None:
    images = [np.random.default_rng(i).integers(0, 256, size=(60, 90 + i, 3), dtype=np.uint8) for i in range(6)]
    a = np.stack(ae.AutoencoderExtractor(random_weights).extract_batch(images))
    b = np.stack(ae.AutoencoderExtractor(random_weights, backend="torch").extract_batch(images))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_version_is_the_preprocessing_and_a_hash_of_the_weights(random_weights: Path, tmp_path: Path) -> None:
    import torch

    ex = ae.AutoencoderExtractor(random_weights)
    assert re.fullmatch(r"3-[0-9a-f]{12}", ex.version)
    torch.manual_seed(1)
    other = ae.save_weights(ae.build_model(latent_dim=16), tmp_path / "other.pt")
    assert ae.AutoencoderExtractor(other).version != ex.version


def test_save_load_round_trip_gives_identical_latents(random_weights: Path, tmp_path: Path) -> None:
    images = [np.random.default_rng(i).integers(0, 256, size=(50 + 10 * i, 80, 3), dtype=np.uint8) for i in range(5)]
    first = ae.AutoencoderExtractor(random_weights)
    a = np.stack(first.extract_batch(images))
    again = ae.save_weights(first.model, tmp_path / "again.pt")  # .model: the torch module
    second = ae.AutoencoderExtractor(again)
    b = np.stack(second.extract_batch(images))
    np.testing.assert_array_equal(a, b)
    assert second.version == first.version  # same weights, same bytes
    # one at a time or in a batch: the same latents
    np.testing.assert_allclose(first.extract(images[2]), a[2], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_blob_round_trip_and_similarity(random_weights: Path) -> None:
    ex = ae.AutoencoderExtractor(random_weights)
    sig = ex.extract(np.full((30, 30, 3), 128, np.uint8))
    blob = ex.to_blob(sig)
    assert len(blob) == 2 * ex.dim  # float16
    back = ex.from_blob(blob)
    assert back.dtype == np.float32
    assert ex.similarity(sig, back) > 0.999
    assert ex.similarity(sig, -sig) == 0.0
    assert ex.embedding(back).shape == (ex.dim,)
    assert abs(float(np.linalg.norm(ex.embedding(back))) - 1.0) < 1e-5


def test_missing_weights_is_a_user_error(tmp_path: Path) -> None:
    from searcher.errors import SearcherError

    with pytest.raises(SearcherError, match="weights not found"):
        ae.AutoencoderExtractor(tmp_path / "nope.pt")


def test_default_weights_path_points_at_shipped_file() -> None:
    path = ae.default_weights_path()
    assert path.name == "ae.pt"
    assert path.is_file(), path
    assert path.stat().st_size < 10 * 1024 * 1024


def test_shipped_weights_find_near_duplicates() -> None:
    photos = _photos()
    ex = ae.AutoencoderExtractor()
    originals = np.stack(ex.extract_batch(photos))
    copies, owners = [], []
    for i, img in enumerate(photos):
        h, w = img.shape[:2]
        copies.append(cv2.resize(img, (w // 3, h // 3), interpolation=cv2.INTER_AREA))  # resized
        copies.append(_jpeg(img, 25))  # recompressed
        copies.append(img[h // 20 : h - h // 20, w // 20 : w - w // 20])  # cropped 10 %
        copies.append(_jpeg(cv2.resize(img[: h * 9 // 10, w // 10 :], (w // 2, h // 2), interpolation=cv2.INTER_AREA), 50))
        owners += [i] * 4
    sims = np.stack(ex.extract_batch(copies)) @ originals.T
    for row, owner in zip(sims, owners):
        others = np.delete(row, owner)
        assert row[owner] > others.max(), (owner, row[owner], others.max())


def test_training_is_deterministic_and_resumes(tmp_path: Path) -> None:
    import torch

    from searcher.training import TrainConfig, collect_sources, train_with_config

    paths = sorted(SAMPLE_PHOTOS.glob("*.jpg"))[:4]
    if len(paths) < 4:
        pytest.skip("sample_data/photos is missing")
    sources = collect_sources(paths)
    cfg = dict(latent_dim=8, samples_per_epoch=32, batch_size=16, channels=(8, 16, 16, 16))
    straight = train_with_config([], tmp_path / "a.pt", TrainConfig(epochs=2, **cfg), progress=False, sources=sources)
    part = train_with_config([], tmp_path / "b.pt", TrainConfig(epochs=2, **cfg), progress=False, sources=sources, stop_after=1)
    assert part["epochs_done"] == 1 and (tmp_path / "b.ckpt").is_file()
    resumed = train_with_config([], tmp_path / "b.pt", TrainConfig(epochs=2, **cfg), progress=False, sources=sources)
    assert resumed["resumed_from_epoch"] == 1
    assert straight["version"] == resumed["version"]
    assert straight["final_loss"] == pytest.approx(resumed["final_loss"])
    assert np.isfinite(straight["final_loss"])
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    payload = torch.load(tmp_path / "a.pt", weights_only=True)
    assert payload["latent_dim"] == 8 and payload["input_size"] == ae.INPUT_SIZE and payload["arch"] == ae.ARCH
    assert ae.AutoencoderExtractor(tmp_path / "a.pt").dim == 8
    meta = ae.weights_meta(tmp_path / "a.pt")
    assert meta["config"]["latent_dim"] == 8 and len(meta["history"]) == 2


def test_train_autoencoder_signature() -> None:
    import inspect

    from searcher.training import train_autoencoder

    params = list(inspect.signature(train_autoencoder).parameters)
    assert params == ["paths", "out", "epochs", "latent_dim", "seed", "resume", "batch_size", "progress"]


def _gradient_image() -> np.ndarray:
    y, x = np.mgrid[0:120, 0:200]
    return np.stack([x * 255 // 199, y * 255 // 119, (x + y) * 255 // 318], axis=2).astype(np.uint8)


def test_golden_latent_of_the_shipped_weights() -> None:
    """Pins preprocessing + weights: retraining (a new version) must update these numbers on purpose."""
    ex = ae.AutoencoderExtractor()
    assert ex.version == "3-66b38c16eb18", "new shipped weights or preprocessing: update the golden values below"
    v = ex.extract(_gradient_image())  # preprocessing 3: the bilinear + box square, auto-levelled
    np.testing.assert_allclose(v[:6], [0.0081, -0.0667, 0.0374, -0.0395, -0.0446, -0.0628], atol=2e-3)


def test_grey_and_bgra_inputs_are_accepted() -> None:
    ex = ae.AutoencoderExtractor()
    bgr = _gradient_image()
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    v, g, a = ex.extract_batch([bgr, grey, bgra])
    np.testing.assert_allclose(v, a, atol=1e-6)
    assert g.shape == v.shape and np.isfinite(g).all()
    assert ex.extract_batch([]) == []


def test_checkpoint_of_other_data_is_not_resumed(tmp_path: Path) -> None:
    from searcher.training import TrainConfig, collect_sources, train_with_config

    paths = sorted(SAMPLE_PHOTOS.glob("*.jpg"))[:5]
    if len(paths) < 5:
        pytest.skip("sample_data/photos is missing")
    cfg = TrainConfig(epochs=2, latent_dim=8, samples_per_epoch=32, batch_size=16, channels=(8, 16, 16, 16))
    train_with_config([], tmp_path / "c.pt", cfg, progress=False, sources=collect_sources(paths[:4]), stop_after=1)
    again = train_with_config([], tmp_path / "c.pt", cfg, progress=False, sources=collect_sources(paths[1:]), stop_after=1)
    assert again["resumed_from_epoch"] == 0
    assert any("other training images" in w for w in again["warnings"])


def test_query_variants_find_a_copy_turned_by_90_degrees():
    from searcher import images
    from searcher.features.autoencoder import AutoencoderExtractor

    ae = AutoencoderExtractor()
    photos = sorted((Path(__file__).resolve().parents[1] / "sample_data" / "photos").glob("*.jpg"))
    original = images.load_image(photos[0]).bgr
    turned = ae.extract(cv2.rotate(original, cv2.ROTATE_90_CLOCKWISE))
    others = [ae.extract(images.load_image(p).bgr) for p in photos[1:8]]
    best = max(float(v @ turned) for v in ae.query_signatures(original))
    assert best > max(float(v @ turned) for v in others)
    assert best > 0.9
