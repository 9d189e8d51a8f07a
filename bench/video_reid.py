"""Video benchmark on vtest.avi: (a) frame retrieval, (b) person re-identification.

    python -m bench.video_reid            # writes bench/results/video_reid.{md,json} and a track sample PNG
    BENCH_SIGNATURES=hist,mse,orb python -m bench.video_reid   # without the autoencoder

(a) Frames. The video is ingested with --every 1. Every 10th frame, cropped by 10 % (random
    offsets) and re-encoded at JPEG quality 30, is a query; a hit counts when the first result
    is a frame of vtest.avi within +-2 frames of the query's own. recall@1 per metric.

(b) People. Ground truth comes from tracking, not from the engine's signatures: the same moving
    person detector that `ingest --people` uses runs on every frame, and boxes of consecutive
    frames are linked into tracks when they overlap (IoU >= 0.3, greedy, best first; a track
    survives up to 2 frames without a detection). The catalog holds the crops of every 5th frame
    (`ingest --every 5 --people`); each stored crop takes the track of the identical box. Each crop
    of a track with >= 3 stored crops is a query; relevant = the other crops of its track. Crops
    are ranked among crops only (frames filtered out), the query's own entry excluded.
    Known flaws of this ground truth, seen in the sample sheet: two people walking together
    form one box and one track, and a track can break where people cross. A sample of tracks is
    written to bench/results/video_reid_tracks.png to be checked by eye.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import cv2
import numpy as np

from searcher import Catalog
from searcher.api import ingest
from searcher.catalog import CatalogLocation
from searcher.features import DEFAULT_SIGNATURES, parse_signature_list
from searcher.ingest import IngestOptions
from searcher.video import MovingPeopleDetector, Sampling

BENCH = Path(__file__).resolve().parent
WORK = Path(os.environ.get("BENCH_WORK", BENCH / "work")) / "video"
RESULTS = BENCH / "results"
VIDEO = Path(os.environ.get("SEARCHER_CORPUS", BENCH.parents[1] / "shared" / "corpus")) / "video" / "vtest.avi"
SEED = 6
METRICS = ("fused", "hist", "mse", "ae", "orb")


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


def track(frames: list[np.ndarray]) -> dict[tuple[int, tuple], int]:
    """(frame index, box) -> track id, by greedy IoU linking of consecutive detections."""
    detector = MovingPeopleDetector()
    active: dict[int, tuple[int, tuple]] = {}  # track id -> (last frame, last box)
    labels: dict[tuple[int, tuple], int] = {}
    next_id = 0
    for index, frame in enumerate(frames):
        boxes = detector.update(frame)
        candidates = sorted(
            (
                (iou(box, last_box), tid, k)
                for k, box in enumerate(boxes)
                for tid, (last_frame, last_box) in active.items()
                if index - last_frame <= 3
            ),
            reverse=True,
        )
        taken_tracks, taken_boxes = set(), set()
        for overlap, tid, k in candidates:
            if overlap < 0.3 or tid in taken_tracks or k in taken_boxes:
                continue
            taken_tracks.add(tid)
            taken_boxes.add(k)
            active[tid] = (index, boxes[k])
            labels[(index, boxes[k])] = tid
        for k, box in enumerate(boxes):
            if k not in taken_boxes:
                active[next_id] = (index, box)
                labels[(index, box)] = next_id
                next_id += 1
        active = {tid: v for tid, v in active.items() if index - v[0] <= 3}
    return labels


def average_precision(ranked_relevance: list[bool], n_relevant: int) -> float:
    hits, total = 0, 0.0
    for rank, relevant in enumerate(ranked_relevance, 1):
        if relevant:
            hits += 1
            total += hits / rank
    return total / n_relevant if n_relevant else 0.0


def frame_retrieval(frames, searcher: Catalog, metrics) -> dict:
    rng = random.Random(SEED)
    queries = WORK / "frame_queries"
    queries.mkdir(parents=True, exist_ok=True)
    found = dict.fromkeys(metrics, 0)
    indices = list(range(5, len(frames), 10))
    for index in indices:
        frame = frames[index]
        h, w = frame.shape[:2]
        dx, dy = rng.randint(0, w // 10), rng.randint(0, h // 10)
        altered = frame[dy : dy + h - h // 10, dx : dx + w - w // 10]
        path = queries / f"q{index:04d}.jpg"
        cv2.imwrite(str(path), altered, [cv2.IMWRITE_JPEG_QUALITY, 30])
        for metric in metrics:
            hit = searcher.query_result(str(path), top=1, metric=metric).hits[0]
            found[metric] += hit.frame is not None and hit.box is None and abs(hit.frame - index) <= 2
    return {m: {"recall@1": found[m] / len(indices), "queries": len(indices)} for m in metrics}


def reid(frames, searcher: Catalog, labels, metrics) -> dict:
    crops = searcher.store.crop_rows()
    crop_track = {}
    for image_id, frame_index, box in crops:
        key = (frame_index, tuple(int(v) for v in box.split(",")))
        if key in labels:
            crop_track[image_id] = (labels[key], key)
    by_track: dict[int, list[int]] = {}
    for image_id, (tid, _) in crop_track.items():
        by_track.setdefault(tid, []).append(image_id)
    queries = [i for i, (tid, _) in crop_track.items() if len(by_track[tid]) >= 3]
    folder = WORK / "crop_queries"
    folder.mkdir(parents=True, exist_ok=True)
    results = {m: {"ap": [], "r1": []} for m in metrics}
    for image_id in queries:
        tid, (frame_index, (x, y, w, h)) = crop_track[image_id]
        path = folder / f"c{image_id}.png"
        cv2.imwrite(str(path), frames[frame_index][y : y + h, x : x + w])
        relevant = set(by_track[tid]) - {image_id}
        for metric in metrics:
            hits = searcher.query_result(str(path), top=200, metric=metric).hits
            ranked = [h.image_id for h in hits if h.box is not None and h.image_id != image_id]
            flags = [i in relevant for i in ranked]
            results[metric]["ap"].append(average_precision(flags, len(relevant)))
            results[metric]["r1"].append(bool(flags and flags[0]))
    summary = {
        m: {"mAP": float(np.mean(v["ap"])), "recall@1": float(np.mean(v["r1"])), "queries": len(queries)}
        for m, v in results.items()
    }
    summary["_ground_truth"] = {
        "crops": len(crops),
        "labelled": len(crop_track),
        "tracks": len(by_track),
        "tracks_with_3+": sum(len(v) >= 3 for v in by_track.values()),
    }
    return summary, by_track, crop_track


def sample_sheet(frames, by_track, crop_track, path: Path) -> None:
    rng = random.Random(SEED)
    tracks = [t for t, ids in by_track.items() if len(ids) >= 6]
    rows = []
    for tid in rng.sample(tracks, min(6, len(tracks))):
        ids = sorted(by_track[tid], key=lambda i: crop_track[i][1][0])
        cells = []
        for image_id in ids[:: max(1, len(ids) // 6)][:6]:
            frame_index, (x, y, w, h) = crop_track[image_id][1]
            crop = cv2.resize(frames[frame_index][y : y + h, x : x + w], (60, 120))
            cv2.putText(crop, str(frame_index), (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
            cells.append(crop)
        cells += [np.zeros((120, 60, 3), np.uint8)] * (6 - len(cells))
        rows.append(cv2.hconcat(cells))
    cv2.imwrite(str(path), cv2.vconcat(rows))


def main() -> None:
    frames = read_frames(VIDEO)
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    video_dir = WORK / "src"
    video_dir.mkdir(exist_ok=True)
    link = video_dir / VIDEO.name
    if not link.exists():
        link.symlink_to(VIDEO)

    signatures = parse_signature_list(os.environ.get("BENCH_SIGNATURES", ",".join(DEFAULT_SIGNATURES)))
    every1 = CatalogLocation(WORK / "catalog-every1")
    summary1 = ingest([video_dir], every1, IngestOptions(signatures=signatures, sampling=Sampling(every=1)))
    people = CatalogLocation(WORK / "catalog-people")
    summary5 = ingest([video_dir], people, IngestOptions(signatures=signatures, sampling=Sampling(every=5, people=True)))
    print(
        f"ingest --every 1: {summary1.frames} frames; --every 5 --people: {summary5.frames} frames, {summary5.crops} crops",
        file=sys.stderr,
    )

    with Catalog.open(every1, create=False) as searcher:
        metrics = [m for m in METRICS if m in searcher.metrics]
        frames_result = frame_retrieval(frames, searcher, metrics)
    labels = track(frames)
    with Catalog.open(people, create=False) as searcher:
        reid_result, by_track, crop_track = reid(frames, searcher, labels, metrics)
    sample_sheet(frames, by_track, crop_track, RESULTS / "video_reid_tracks.png")

    result = {"frame_retrieval": frames_result, "reid": reid_result}
    (RESULTS / "video_reid.json").write_text(json.dumps(result, indent=2))
    gt = reid_result["_ground_truth"]
    lines = [
        "| metric | frame recall@1 (+-2 frames) | person re-id mAP | person re-id recall@1 |",
        "|---|---|---|---|",
        *(
            f"| {m} | {frames_result[m]['recall@1']:.3f} | {reid_result[m]['mAP']:.3f} | {reid_result[m]['recall@1']:.3f} |"
            for m in metrics
        ),
        "",
        f"Frame queries: {frames_result[metrics[0]]['queries']}; re-id queries: {reid_result[metrics[0]]['queries']} crops "
        f"({gt['labelled']} of {gt['crops']} stored crops labelled, {gt['tracks']} tracks, {gt['tracks_with_3+']} with 3 or more crops).",
    ]
    (RESULTS / "video_reid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
