"""Videos: sampled frames and moving-person crops are catalog entries that queries can find."""

import cv2
import numpy as np
import pytest

from searcher.api import ingest
from searcher.catalog import Catalog
from searcher.ingest import IngestOptions
from searcher.video import MovingPeopleDetector, Sampling, sample_video

from conftest import PHOTOS

SIGNATURES = ("hist", "mse", "orb")


def write_video(path, frames, fps=10):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def two_scene_frames():
    """20 frames of one photo, then 20 of another, each with a little sensor noise."""
    rng = np.random.default_rng(0)
    scenes = [cv2.resize(cv2.imread(str(p)), (320, 240)) for p in (PHOTOS[0], PHOTOS[7])]
    return [cv2.add(scenes[i // 20], rng.integers(0, 6, (240, 320, 3), dtype=np.uint8)) for i in range(40)]


def walker_frames(n=60):
    """A dark upright figure walking across a static photo background."""
    background = cv2.resize(cv2.imread(str(PHOTOS[3])), (320, 240))
    frames = []
    for i in range(n):
        frame = background.copy()
        x = 10 + 4 * i
        cv2.rectangle(frame, (x, 100), (x + 22, 170), (20, 20, 20), -1)
        cv2.circle(frame, (x + 11, 90), 10, (20, 20, 20), -1)
        frames.append(frame)
    return frames


@pytest.fixture
def video_dir(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "two scenes.avi", two_scene_frames())
    return folder


def run(folder, location, **sampling):
    return ingest([folder], location, IngestOptions(signatures=SIGNATURES, sampling=Sampling(**sampling)))


def test_video_frames_are_ingested_and_rerun_is_incremental(video_dir, location):
    summary = run(video_dir, location, every=5)
    assert summary.counts()["added"] == 1 and summary.frames == 8
    assert run(video_dir, location, every=5).counts()["unchanged"] == 1
    resampled = run(video_dir, location, every=10)  # another sampling re-samples the video
    assert resampled.counts()["updated"] == 1 and resampled.frames == 4
    with Catalog.open(location, create=False) as searcher:
        assert all(len(index) == 4 for index in searcher.indexes.values())


def test_a_frame_query_names_the_video_frame_and_time(video_dir, location, tmp_path):
    run(video_dir, location, every=5)
    query = tmp_path / "frame.jpg"
    cv2.imwrite(str(query), two_scene_frames()[27][10:230, 10:310], [cv2.IMWRITE_JPEG_QUALITY, 40])
    with Catalog.open(location, create=False) as searcher:
        hit = searcher.query_result(str(query), top=3).hits[0]
    assert hit.path == str(video_dir / "two scenes.avi")
    assert 20 <= hit.frame < 40 and hit.time == pytest.approx(hit.frame / 10)
    assert hit.box is None


def test_scene_change_keeps_one_frame_per_scene(video_dir):
    kept = list(sample_video(str(video_dir / "two scenes.avi"), Sampling(scene_change=0.05)))
    assert [s.frame_index for s in kept] == [0, 20]


def test_moving_person_is_found_as_a_crop(tmp_path, location):
    folder = tmp_path / "walk"
    folder.mkdir()
    write_video(folder / "walk.avi", walker_frames())
    summary = run(folder, location, every=10, people=True)
    assert summary.crops >= 3
    samples = [s for s in sample_video(str(folder / "walk.avi"), Sampling(every=10, people=True)) if s.box]
    for sample in samples:
        x, y, w, h = sample.box
        figure_x = 10 + 4 * sample.frame_index
        assert abs(x - figure_x) < 15 and 70 <= y <= 90 and h > w


def test_detector_ignores_a_static_scene():
    detector = MovingPeopleDetector()
    still = cv2.resize(cv2.imread(str(PHOTOS[3])), (320, 240))
    assert all(detector.update(still) == [] for _ in range(40))


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00AVI garbage" * 10], ids=["empty", "garbage"])
def test_broken_video_is_reported_and_skipped(tmp_path, location, content):
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "broken.avi").write_bytes(content)
    summary = run(folder, location)
    assert summary.counts()["failed"] == 1
    assert "video" in summary.failures[0][1]


def test_truncated_video_keeps_its_readable_frames_or_fails_cleanly(video_dir, location):
    path = video_dir / "two scenes.avi"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    summary = run(video_dir, location, every=5)
    assert summary.counts()["added"] + summary.counts()["failed"] == 1
    assert summary.frames <= 8


def test_moved_video_keeps_its_frames(video_dir, location):
    run(video_dir, location, every=5)
    (video_dir / "sub").mkdir()
    (video_dir / "two scenes.avi").rename(video_dir / "sub" / "renamed.avi")
    summary = run(video_dir, location, every=5)
    assert summary.counts()["moved"] == 1 and summary.frames == 0
    with Catalog.open(location, create=False) as searcher:
        hit = searcher.query_result(str(PHOTOS[0]), top=1).hits[0]
    assert hit.path == str(video_dir / "sub" / "renamed.avi")


def test_deleted_video_takes_its_frames_out_of_the_indexes(video_dir, location):
    run(video_dir, location, every=5)
    (video_dir / "two scenes.avi").unlink()
    assert run(video_dir, location, every=5).counts()["removed"] == 1
    with Catalog.open(location, create=False) as searcher:
        assert all(len(index) == 0 for index in searcher.indexes.values())
