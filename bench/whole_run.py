"""Whole run on one photo library: `searcher ingest` + `searcher dups` against imagededup PHash
(encode + find_duplicates), each from scratch, with pair precision and recall.

The library (LIBRARY_VERSION, under bench/work/dups-library-v1/, every random choice from SEED):
  unrelated  each corpus photo (../shared/corpus/photos, 56) cut into a 3 x 3 grid of tiles, each
             tile its own picture (504 files, JPEG q90, long side <= 640).
  groups     GROUP_SIZES duplicate groups, one per scikit-image photo (not among the tiles): the
             photo itself plus size - 1 copies made by ImageMagick `convert`, each with one or two
             edits drawn from EDITS (resize, JPEG quality, crop, small rotation, brightness, grey,
             mirror, border, blur, noise, text).
A true pair is two files of one group. A tool's pairs are every two files it puts in one group;
precision and recall are over pairs. Timings: median of REPEATS runs of each tool, taken in turn,
the 1-min load recorded before each; the ratio is searcher's median over imagededup's.

Run: .venv/bin/python -m bench.whole_run [--repeats N] [--workers N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import CORPUS, SEED, WORK, load1, log, median
from bench.dataset import SKIMAGE_PHOTOS, skimage_data

LIBRARY_VERSION = "1"
GROUP_SIZES = (33, 9, 36, 12, 6, 4, 3, 2)
EDITS = (
    ["-resize", "50%"],
    ["-resize", "70%", "-quality", "60"],
    ["-quality", "30"],
    ["-gravity", "center", "-crop", "85%x85%+0+0", "+repage"],
    ["-gravity", "northwest", "-crop", "75%x75%+0+0", "+repage"],
    ["-rotate", "4"],
    ["-modulate", "120"],
    ["-modulate", "85,70"],
    ["-colorspace", "Gray"],
    ["-flop"],
    ["-bordercolor", "white", "-border", "6%"],
    ["-gaussian-blur", "0x1.5"],
    ["-attenuate", "0.6", "+noise", "Gaussian"],
    ["-gravity", "south", "-pointsize", "28", "-fill", "yellow", "-annotate", "+0+12", "holiday 2024"],
)
REPEATS = 3


def library_root() -> Path:
    return WORK / f"dups-library-v{LIBRARY_VERSION}"


def make_library() -> tuple[Path, list[set[str]]]:
    """The library folder and its true groups (sets of absolute paths); made once."""
    import cv2

    root = library_root()
    manifest = root / "groups.json"
    if manifest.exists():
        return root / "files", [set(g) for g in json.loads(manifest.read_text())]
    if root.exists():
        shutil.rmtree(root)
    files = root / "files"
    (files / "tiles").mkdir(parents=True)
    for photo in sorted((CORPUS / "photos").glob("*.jpg")):
        img = cv2.imread(str(photo))
        h, w = img.shape[:2]
        for r, c in itertools.product(range(3), range(3)):
            tile = img[r * h // 3 : (r + 1) * h // 3, c * w // 3 : (c + 1) * w // 3]
            s = min(1.0, 640 / max(tile.shape[:2]))
            tile = cv2.resize(tile, (round(tile.shape[1] * s), round(tile.shape[0] * s)), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(files / "tiles" / f"{photo.stem}_{r}{c}.jpg"), tile, [cv2.IMWRITE_JPEG_QUALITY, 90])
    rng = np.random.default_rng([SEED, 7000])
    groups = []
    photos = [p for p in SKIMAGE_PHOTOS if p not in ("text.png", "page.png", "cell.png")]  # colour photos first
    for size, name in zip(GROUP_SIZES, photos):
        folder = files / f"group_{Path(name).stem}"
        folder.mkdir()
        original = folder / f"original{Path(name).suffix}"
        shutil.copyfile(skimage_data() / name, original)
        members = {str(original)}
        for k in range(size - 1):
            edits = [EDITS[i] for i in rng.choice(len(EDITS), int(rng.integers(1, 3)), replace=False)]
            target = folder / f"copy_{k:02d}.jpg"
            subprocess.run(["convert", str(original), *itertools.chain(*edits), str(target)], check=True, capture_output=True)
            members.add(str(target))
        groups.append(members)
    manifest.write_text(json.dumps([sorted(g) for g in groups]))
    return files, groups


def pairs_of(groups) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for g in groups for p in itertools.combinations(sorted(g), 2)}


def precision_recall(found: set, truth: set) -> tuple[float, float]:
    hit = len(found & truth)
    return (hit / len(found) if found else 1.0), hit / len(truth)


def run_searcher(files: Path, catalog: Path, workers: int, threshold: float) -> tuple[float, set, dict]:
    """(wall seconds of ingest + dups from scratch, pairs, details)."""
    from searcher.catalog import CatalogLocation
    from searcher.ingest import IngestOptions

    try:  # the public API; the module functions of searcher before the catalog seam (for baselines)
        from searcher.api import duplicates as find_duplicates
        from searcher.api import ingest

        location = str(catalog)
    except ImportError:
        from searcher.dups import find_duplicates
        from searcher.ingest import ingest

        location = CatalogLocation(catalog)
    if catalog.exists():
        shutil.rmtree(catalog)
    clock = time.perf_counter()
    ingest([files], location, IngestOptions(workers=workers))
    mid = time.perf_counter()
    result = find_duplicates(location, threshold=threshold, workers=workers)
    end = time.perf_counter()
    groups = [{m.path for m in g.members} for g in result.groups]
    details = {
        "ingest_s": mid - clock,
        "dups_s": end - mid,
        "verified_pairs": result.verified_pairs,
        "candidate_pairs": result.candidate_pairs,
    }
    return end - clock, pairs_of(groups), details


def run_imagededup(files: Path, max_distance: int) -> tuple[float, set]:
    from bench.peers import _import_imagededup_hashing

    hashing = _import_imagededup_hashing()
    clock = time.perf_counter()
    phasher = hashing.PHash(verbose=False)
    encodings = phasher.encode_images(image_dir=str(files), recursive=True)
    found = phasher.find_duplicates(encoding_map=encodings, max_distance_threshold=max_distance)
    wall = time.perf_counter() - clock
    pairs = {tuple(sorted((str(files / a), str(files / b)))) for a, dups in found.items() for b in dups}
    return wall, pairs


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.whole_run", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--workers", type=int, default=0, help="searcher --workers (0: one per core)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--phash-distance", type=int, default=10)
    args = parser.parse_args()
    files, groups = make_library()
    truth = pairs_of(groups)
    n = sum(1 for p in files.rglob("*") if p.is_file())
    log(f"library: {n} files, {len(groups)} groups, {len(truth)} true pairs")
    for p in files.rglob("*"):  # page cache
        if p.is_file():
            p.read_bytes()
    rows = {"searcher": [], "imagededup PHash": []}
    for _ in range(args.repeats):
        load = load1()
        wall, pairs, details = run_searcher(files, WORK / "catalogs" / "whole-run", args.workers, args.threshold)
        rows["searcher"].append({"wall_s": wall, "load": load, **details, "pr": precision_recall(pairs, truth)})
        load = load1()
        wall, pairs = run_imagededup(files, args.phash_distance)
        rows["imagededup PHash"].append({"wall_s": wall, "load": load, "pr": precision_recall(pairs, truth)})
    summary = {}
    for name, runs in rows.items():
        summary[name] = {
            "median_s": median(r["wall_s"] for r in runs),
            "precision": runs[-1]["pr"][0],
            "recall": runs[-1]["pr"][1],
            "runs": runs,
        }
        print(f"{name:18s} median {summary[name]['median_s']:.2f} s  precision {runs[-1]['pr'][0]:.3f} recall {runs[-1]['pr'][1]:.3f}  "
              f"runs {[round(r['wall_s'], 2) for r in runs]} loads {[round(r['load'], 1) for r in runs]}")  # fmt: skip
    ratio = summary["searcher"]["median_s"] / summary["imagededup PHash"]["median_s"]
    print(f"searcher / imagededup PHash = {ratio:.2f}x (goal <= 2); searcher runs: {rows['searcher']}")
    out = WORK / "whole_run.json"
    out.write_text(
        json.dumps({"files": n, "true_pairs": len(truth), "summary": summary, "ratio": ratio}, indent=1, default=float)
    )


if __name__ == "__main__":
    sys.exit(main())
