"""--save-frames never overwrites a file, and a bad destination is refused before any work."""

from __future__ import annotations

import cv2
import numpy as np
from typer.testing import CliRunner

from searcher.catalog import CatalogLocation
from searcher.cli import app
from searcher.errors import UsageError
from searcher.video import Sampling

from helpers import PHOTOS, run_ingest

runner = CliRunner()


def write_video(path, photo, n=20):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = cv2.resize(cv2.imread(str(photo)), (160, 120))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(n):
        writer.write(cv2.add(frame, rng.integers(0, 4, frame.shape, dtype=np.uint8)))
    writer.release()
    return path


def test_existing_files_in_the_frames_folder_are_never_overwritten(tmp_path):
    """D4: a file named like a saved frame (`clip_f000000.jpg`) used to be overwritten."""
    videos = tmp_path / "videos"
    write_video(videos / "clip.avi", PHOTOS[0])
    frames = tmp_path / "frames"
    frames.mkdir()
    mine = frames / "clip_f000000.jpg"
    mine.write_bytes(b"my own file")
    summary = run_ingest([videos], CatalogLocation(tmp_path / "catalog"), sampling=Sampling(every=10, save_frames=str(frames)))
    assert summary.failed == 0
    assert mine.read_bytes() == b"my own file"
    assert len(list(frames.iterdir())) == 1 + summary.frames


def test_two_videos_with_the_same_stem_keep_all_their_frames(tmp_path):
    """D4: a/clip.avi and b/clip.avi used to write the same frame names over each other."""
    write_video(tmp_path / "a" / "clip.avi", PHOTOS[0])
    write_video(tmp_path / "b" / "clip.avi", PHOTOS[1])
    frames = tmp_path / "frames"
    summary = run_ingest(
        [tmp_path / "a", tmp_path / "b"],
        CatalogLocation(tmp_path / "catalog"),
        sampling=Sampling(every=10, save_frames=str(frames)),
    )
    assert summary.frames == 4
    assert len(list(frames.iterdir())) == 4


def test_save_frames_under_a_file_is_a_one_line_usage_error_before_any_work(tmp_path):
    """D4: `--save-frames file/x` used to mark every video failed (and never retry them)."""
    write_video(tmp_path / "videos" / "clip.avi", PHOTOS[0])
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    catalog = tmp_path / "catalog"
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "videos"), "--catalog", str(catalog), "--save-frames", str(blocker / "frames")]
    )
    # searcher.cli.main prints a UsageError as one "error: ..." line and exits 1
    assert isinstance(result.exception, UsageError), result.output
    assert "--save-frames" in str(result.exception) and "\n" not in str(result.exception)
    assert not (catalog / "catalog.db").exists()  # nothing was catalogued, nothing to retry later
