"""Video files as sources of frames, and of person crops, for the catalog.

OpenCV decodes the video sequentially; frames are kept every N frames, or on a scene change
(the grey 16x16 thumbnail moved by more than a threshold RMSE since the last kept frame).

People: OpenCV 5 no longer ships the HOG people detector or Haar cascades, and nothing may be
downloaded at run time, so `--people` finds *moving* people in static-camera footage (the
tracking use case of the seed): a MOG2 background model is updated on every frame, and each
upright foreground blob of person-like shape and size is kept as a crop. It finds nothing
in footage from a moving camera, and nobody who stands still long enough to become background.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from searcher.errors import ImageError
from searcher.images import fit_to_work_size

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"})

# A detection is person-like when upright (height 1.2 to 4.5 times its width) and its
# height is between 7% and 95% of the frame height.
MIN_ASPECT, MAX_ASPECT = 1.2, 4.5
MIN_HEIGHT, MAX_HEIGHT = 0.07, 0.95
# Frames the background model learns from before any detection is trusted.
WARMUP_FRAMES = 20
DETECT_WIDTH = 384  # background subtraction runs on a frame scaled to this width


def is_video_path(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Sampling:
    every: int = 10  # keep one frame in `every` (ignored with scene_change)
    scene_change: float | None = None  # RMSE of grey 16x16 thumbnails that starts a new kept frame
    people: bool = False
    save_frames: str | None = None  # folder for JPEGs of kept frames; not part of the key

    def key(self) -> str:
        """What the catalog remembers: a video sampled differently before is sampled again."""
        base = f"scene={self.scene_change:g}" if self.scene_change else f"every={self.every}"
        return base + (";people" if self.people else "")


@dataclass
class Sample:
    frame_index: int
    time_s: float
    box: tuple[int, int, int, int] | None  # x, y, w, h in full-frame pixels; None = whole frame
    bgr: np.ndarray  # working-size image of the frame or crop
    width: int
    height: int


def _thumb(frame: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


class MovingPeopleDetector:
    """MOG2 foreground -> open/close -> upright person-sized blobs (see the module docstring)."""

    def __init__(self):
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=300, varThreshold=25, detectShadows=True)
        self.open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 7))  # joins a body vertically
        self.seen = 0

    def update(self, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Feed one frame (every frame, in order); boxes of moving people in full-frame pixels."""
        h, w = frame.shape[:2]
        scale = DETECT_WIDTH / w
        small = cv2.resize(frame, (DETECT_WIDTH, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        mask = self.subtractor.apply(small)
        self.seen += 1
        if self.seen <= WARMUP_FRAMES:
            return []
        mask = np.where(mask == 255, 255, 0).astype(np.uint8)  # 127 = shadow
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.open_kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self.close_kernel, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = []
        for contour in contours:
            x, y, bw, bh = cv2.boundingRect(contour)
            if not MIN_HEIGHT * small.shape[0] <= bh <= MAX_HEIGHT * small.shape[0]:
                continue
            if not MIN_ASPECT <= bh / max(bw, 1) <= MAX_ASPECT:
                continue
            boxes.append(tuple(int(round(v / scale)) for v in (x, y, bw, bh)))
        return boxes


def _is_regular(path: str) -> bool:
    import stat

    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def sample_video(path: str, sampling: Sampling) -> Iterator[Sample]:
    """Kept frames (and, with people, the person crops of those frames), in frame order."""
    if not _is_regular(path):
        raise ImageError("not a regular file (a FIFO, device or folder)")
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise ImageError("cannot open video (corrupt, truncated or unsupported codec)")
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        detector = MovingPeopleDetector() if sampling.people else None
        last_kept: np.ndarray | None = None
        index = -1
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            index += 1
            boxes = detector.update(frame) if detector else []
            if sampling.scene_change:
                thumb = _thumb(frame)
                if last_kept is not None and float(np.sqrt(np.mean((thumb - last_kept) ** 2))) < sampling.scene_change:
                    continue
                last_kept = thumb
            elif index % sampling.every:
                continue
            time_s = index / fps if fps > 0 else float(index)
            h, w = frame.shape[:2]
            if sampling.save_frames:
                _save_frame(path, index, frame, sampling.save_frames)
            yield Sample(index, time_s, None, fit_to_work_size(frame), w, h)
            for x, y, bw, bh in boxes:
                crop = frame[y : y + bh, x : x + bw]
                if crop.size:
                    yield Sample(index, time_s, (x, y, bw, bh), fit_to_work_size(crop), bw, bh)
        if index < 0:
            raise ImageError("video holds no decodable frame (corrupt or truncated)")
    finally:
        capture.release()


def frame_file_name(video_path: str, index: int) -> str:
    """<stem>-<8 hex digits of the video's resolved path>_f<frame>.jpg: two videos named alike in
    different folders never share a name."""
    import hashlib

    stem = os.path.splitext(os.path.basename(video_path))[0]
    tag = hashlib.sha256(os.path.realpath(video_path).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{stem}-{tag}_f{index:06d}.jpg"


def _save_frame(video_path: str, index: int, frame: np.ndarray, folder: str) -> None:
    """Write one kept frame without ever replacing a file: exclusive create, ~2, ~3... when taken."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        return
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(frame_file_name(video_path, index))
    name, n = stem + ext, 1
    while True:
        try:
            with open(os.path.join(folder, name), "xb") as f:
                f.write(data.tobytes())
            return
        except FileExistsError:
            n += 1
            name = f"{stem}~{n}{ext}"


def read_frame(path: str, frame_index: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
    """One frame of a video (or the crop `box` of it), for showing a hit; None when unreadable."""
    if not _is_regular(path):
        return None  # a FIFO would block VideoCapture forever
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            return None
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        return None
    if box:
        x, y, w, h = box
        frame = frame[y : y + h, x : x + w]
    return frame if frame.size else None
