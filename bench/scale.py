"""Scale: grow one catalog to 100k+ images through the real ingest, and measure query latency,
memory, HNSW recall and bytes on disk at each size.

The images (SCALE_VERSION), generated under bench/work/scale-v1/ in folders of 1000:
  80% frames of vtest.avi, 20% the accuracy set's originals; each a random crop (40-100% of each
  side), resized to a long side drawn from 256-640 px, mirrored half of the time, saved as JPEG with a
  quality drawn from 50-95. (A static street camera: many very similar images, a hard case for the
  shortlist, and a realistic one for a surveillance or photo-burst library.)
The catalog at step N holds the accuracy catalog (482 images: 74 originals + 408 distractors)
plus N - 482 of these (N = 482 + a whole number of folders); the latency queries are 4 transformed copies per family of the accuracy set
(108 images, none of them in the catalog; 2 per family at the largest N, 1 per family below it).
Their relevant items are the original and the scale images cropped from it (R@1, R@10); "R@1 of
originals" asks for the original itself, which its own crops in the catalog may legitimately beat.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, SEED, WORK, load1, log, median, wait_for_quiet
from bench.dataset import FAMILIES, accuracy_set, read_bgr, video_frames

SCALE_VERSION = "1"
PER_FOLDER = 1000
STEPS = (1_000, 3_000, 10_000, 30_000, 100_000)
QUERIES_PER_FAMILY = 4


def scale_root(work: Path = WORK) -> Path:
    return work / f"scale-v{SCALE_VERSION}"


def _sources():
    frames = [f for _, f in video_frames()]
    photos = []
    for p in accuracy_set().originals:
        img = read_bgr(p)
        s = 800 / max(img.shape[:2])
        if s < 1:
            import cv2

            img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        photos.append(img)
    return frames, photos


def _make_folder(folder_index: int) -> int:
    import cv2

    cv2.setNumThreads(1)
    global _SRC
    if "_SRC" not in globals():
        _SRC = _sources()
    frames, photos = _SRC
    out = scale_root() / "files" / f"d{folder_index:03d}"
    if (out / ".done").exists():
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for n, (kind, k, y0, x0, kh, kw, long_side, flip, quality) in enumerate(
        _recipes(folder_index, frames[0].shape[:2], [p.shape[:2] for p in photos])
    ):
        src = frames[k] if kind == "frame" else photos[k]
        img = src[y0 : y0 + kh, x0 : x0 + kw]
        s = long_side / max(kh, kw)
        img = cv2.resize(
            img, (max(8, round(kw * s)), max(8, round(kh * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        )
        if flip:
            img = img[:, ::-1]
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, quality])
        (out / f"s{folder_index:03d}_{n:04d}.jpg").write_bytes(buf.tobytes())
    (out / ".done").write_text("ok")
    return PER_FOLDER


def _recipes(folder_index: int, frame_shape, photo_shapes):
    """The random choices behind each file of a folder: (kind, source index, crop, size, flip, quality)."""
    rng = np.random.default_rng([SEED, 2000, folder_index])
    out = []
    for _ in range(PER_FOLDER):
        if rng.random() < 0.8:
            kind, k = "frame", int(rng.integers(795))
            h, w = frame_shape
        else:
            kind, k = "photo", int(rng.integers(len(photo_shapes)))
            h, w = photo_shapes[k]
        fh, fw = rng.uniform(0.4, 1.0, 2)
        kh, kw = max(16, int(h * fh)), max(16, int(w * fw))
        y0, x0 = int(rng.integers(0, h - kh + 1)), int(rng.integers(0, w - kw + 1))
        long_side = int(rng.integers(256, 641))
        flip = bool(rng.random() < 0.5)
        out.append((kind, k, y0, x0, kh, kw, long_side, flip, int(rng.integers(50, 96))))
    return out


def photo_copies(n_folders: int) -> dict[str, set[str]]:
    """original path -> scale files cropped from it: near duplicates of it, so relevant to its copies."""
    originals = accuracy_set().originals
    shapes = []
    for p in originals:
        h, w = read_bgr(p).shape[:2]
        s = 800 / max(h, w)
        shapes.append((round(h * s), round(w * s)) if s < 1 else (h, w))
    out: dict[str, set[str]] = {str(p): set() for p in originals}
    for i in range(n_folders):
        for n, recipe in enumerate(_recipes(i, (576, 768), shapes)):
            if recipe[0] == "photo":
                out[str(originals[recipe[1]])].add(str(scale_root() / "files" / f"d{i:03d}" / f"s{i:03d}_{n:04d}.jpg"))
    return out


def make_scale_files(n_folders: int, workers: int = 2) -> None:
    todo = [i for i in range(n_folders) if not (scale_root() / "files" / f"d{i:03d}" / ".done").exists()]
    if not todo:
        return
    log(f"generating {len(todo)} folders of {PER_FOLDER} scale images")
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for k, _ in enumerate(pool.imap_unordered(_make_folder, todo), 1):
            if k % 10 == 0:
                log(f"  {k}/{len(todo)} folders")


def latency_queries() -> list[str]:
    data = accuracy_set()
    rng = np.random.default_rng([SEED, 3000])
    out = []
    for family in FAMILIES:
        members = [c for c in data.copies if c["family"] == family]
        for k in rng.choice(len(members), QUERIES_PER_FAMILY, replace=False):
            out.append(members[int(k)])
    return [str(c["path"]) for c in out], {str(c["path"]): str(c["original"]) for c in out}


def recall_worker(catalog: str, queries: list[str], k: int = 100) -> dict:
    """HNSW recall@k of each index against an exact scan of the same stored vectors."""
    from searcher import Catalog, images
    from searcher.query import SHORTLIST

    searcher = Catalog.open(Path(catalog), create=False)
    out = {}
    for name, index in searcher.indexes.items():
        extractor = searcher.extractors[name]
        ids = np.array(index.ids())
        vectors = index.vectors(list(ids))
        recalls = []
        for q in queries:
            v = extractor.embedding(extractor.extract(images.load_image(q).bgr)).astype(np.float32)
            if extractor.space == "cosine":
                v /= max(np.linalg.norm(v), 1e-12)
                exact = ids[np.argsort(-(vectors @ v))[:k]]
            else:
                exact = ids[np.argsort(((vectors - v) ** 2).sum(axis=1))[:k]]
            found, _ = index.search(v, k)
            recalls.append(len(set(found.tolist()) & set(exact.tolist())) / k)
        out[name] = float(np.mean(recalls))
    return {"k": k, "shortlist": SHORTLIST, "recall": out}


def dups_worker(catalog: str, workers: int = 2, recall: bool = True) -> dict:
    """One `find_duplicates` on a catalog, in its own process (its own peak RSS): seconds per stage,
    pairs, pairs/s, peak RSS of this process and of the largest verification worker; with `recall`,
    the share of the candidate pairs an exact kNN scan of the same vectors finds that the HNSW
    searches found too (computed after the timed run)."""
    import resource

    from bench.speed import peak_rss_mb
    from searcher import Catalog, dups
    from searcher.catalog import vectors

    clock = time.perf_counter()
    with Catalog.open(Path(catalog), create=False) as cat:
        result = cat.duplicates(workers=workers)
        wall = time.perf_counter() - clock
        out = {
            "n": result.images, "seconds": wall, "timings": result.timings, "candidate_pairs": result.candidate_pairs,
            "verified_pairs": result.verified_pairs, "linked_pairs": result.linked_pairs, "groups": len(result.groups),
            "largest_group": max((len(g.members) for g in result.groups), default=0),
            "candidate_pairs_per_s": result.candidate_pairs / wall,
            "verified_pairs_per_s": result.verified_pairs / max(result.timings.get("verify", 0.0), 1e-9),
            "peak_rss_mb": peak_rss_mb(), "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "exact_limit": vectors.EXACT_LIMIT,
        }  # fmt: skip
        if recall and result.images > vectors.EXACT_LIMIT:
            members = dups._file_rows(cat)
            ids = np.array([m.image_id for m in members], dtype=np.int64)
            indexes = {k: v for k, v in cat.indexes.items() if k in dups.FUSED_SIGNATURES}
            stored = {k: dups._stored_vectors(v, ids) for k, v in indexes.items()}
            found = dups._candidate_pairs(indexes, stored, ids, dups.DEFAULT_NEIGHBOURS, dups.Reporter())
            vectors.EXACT_LIMIT = 10**9
            exact = dups._candidate_pairs(indexes, stored, ids, dups.DEFAULT_NEIGHBOURS, dups.Reporter())
            common = len({tuple(p) for p in found.tolist()} & {tuple(p) for p in exact.tolist()})
            out["candidate_recall_vs_exact"] = common / max(len(exact), 1)
    return out


def snapshot_dir(signatures, n: int) -> Path:
    return WORK / "catalogs" / f"scale-{'-'.join(signatures)}-n{n}"


def grow(quick: bool = False, signatures: tuple[str, ...] | None = None, steps: tuple[int, ...] | None = None) -> list[dict]:
    """Phase 1 (no timing): grow one catalog through the real ingest (2 workers), copying it after each
    step, so that phase 2 can measure every size. Idempotent: steps already copied are skipped.
    `signatures`: default bench.common.available_signatures() (no cnn); `steps`: default STEPS."""
    import shutil

    from bench.common import available_signatures
    from searcher.api import ingest
    from searcher.catalog import CatalogLocation
    from searcher.ingest import IngestOptions

    signatures = signatures or available_signatures()
    steps = steps or ((1_000, 3_000) if quick else STEPS)
    data = accuracy_set()
    base_roots = [str(p) for p in data.catalog_roots]
    base_n = len(data.originals) + len(data.distractors)
    location = CatalogLocation(WORK / "catalogs" / f"scale-{'-'.join(signatures)}")
    log_path = WORK / "catalogs" / f"scale-{'-'.join(signatures)}-grow.json"
    done = json.loads(log_path.read_text()) if log_path.exists() else {}
    for target in steps:
        n_folders = max(0, (target - base_n + PER_FOLDER - 1) // PER_FOLDER)
        n = base_n + n_folders * PER_FOLDER
        if str(n) in done and snapshot_dir(signatures, n).exists():
            continue
        make_scale_files(n_folders)
        folders = sorted((scale_root() / "files").glob("d*"))[:n_folders]
        clock = time.perf_counter()
        summary = ingest(base_roots + [str(f) for f in folders], location, IngestOptions(workers=2, signatures=signatures))
        wall = time.perf_counter() - clock
        log(f"scale N={n}: ingest {summary.counts()} in {wall:.0f} s")
        if summary.failed:
            raise RuntimeError(summary.failures[:3])
        snap = snapshot_dir(signatures, n)
        if snap.exists():
            shutil.rmtree(snap)
        shutil.copytree(location.directory, snap)
        done[str(n)] = {
            "n": n,
            "added": summary.added,
            "ingest_s": wall,
            "load": load1(),
            "roots": base_roots + [str(f) for f in folders],
        }
        log_path.write_text(json.dumps(done))
    return [done[k] for k in sorted(done, key=int)]


def run(quick: bool = False) -> dict:
    """Phase 2: latency, memory, recall, disk at every size; the no-op rerun at the largest."""
    from bench import speed
    from bench.common import available_signatures
    from searcher.api import ingest
    from searcher.catalog import CatalogLocation
    from searcher.ingest import IngestOptions

    signatures = available_signatures()
    grown = grow(quick)
    queries, original_of = latency_queries()
    rows = []
    for k, step in enumerate(grown):
        n = step["n"]
        last = k == len(grown) - 1
        qs = queries[::2] if (last and not quick) else queries[::4]  # 54 (2 per family) at the largest N, else 27
        catalog = snapshot_dir(signatures, n)
        row = {"n": n, "ingest_added": step["added"], "ingest_s": step["ingest_s"], "ingest_load": step["load"]}
        lat = speed.measure_queries(catalog, qs, quick=quick or not last)
        hits = lat.pop("hits")
        row["latency"] = lat
        n_folders = (n - 482) // PER_FOLDER
        copies_of = photo_copies(n_folders)
        row["fused+orb R@1 of originals"] = float(np.mean([h[:1] == [original_of[q]] for q, h in zip(qs, hits)]))
        # the catalog also holds crops of the same photo (20% of the scale images): they are relevant too
        row["fused+orb R@1"] = float(
            np.mean([bool(h) and h[0] in copies_of[original_of[q]] | {original_of[q]} for q, h in zip(qs, hits)])
        )
        row["fused+orb R@10"] = float(
            np.mean([bool(set(h[:10]) & (copies_of[original_of[q]] | {original_of[q]})) for q, h in zip(qs, hits)])
        )
        row["disk"] = speed.disk_usage(catalog, n)
        row["recall"] = _recall(catalog, qs)
        rows.append(row)
        st = lat["in_process"]["stages"]["total"]
        log(f"  N={n}: p50 {st['p50_ms']:.1f} ms, p95 {st['p95_ms']:.1f} ms, RSS {lat['in_process']['peak_rss_mb']:.0f} MB, "
            f"{row['disk']['bytes_per_image']['total']:.0f} B/image, recall {row['recall']['recall']}")  # fmt: skip
    # no-op rerun at the largest size, on the live catalog (same files, nothing changed)
    location = CatalogLocation(WORK / "catalogs" / f"scale-{'-'.join(signatures)}")
    roots = grown[-1]["roots"]
    n = grown[-1]["n"]
    load = wait_for_quiet()
    noop = []
    for _ in range(1 if quick else 3):
        clock = time.perf_counter()
        summary = ingest(roots, location, IngestOptions(workers=2, signatures=signatures))
        wall = time.perf_counter() - clock
        assert summary.unchanged == n and summary.added == 0, summary.counts()
        noop.append(n / wall)
    return {
        "signatures": list(signatures),
        "description": __doc__.strip().split("\n\n")[1],
        "rows": rows,
        "noop_rerun": {"n": n, "files_per_s": median(noop), "runs": noop, "load": load},
        "signature_bytes": speed.signature_sizes(snapshot_dir(signatures, n)),
    }


def _recall(catalog: Path, queries: list[str]) -> dict:
    spec = WORK / "recall-spec.json"
    spec.write_text(json.dumps({"catalog": str(catalog), "queries": queries}))
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", "recall-worker", str(spec)], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "grow":  # python -m bench.scale grow [--quick] [--signatures a,b] [--steps 10000,100000]

        def _option(name):
            return sys.argv[sys.argv.index(name) + 1].split(",") if name in sys.argv else None

        signatures, steps = _option("--signatures"), _option("--steps")
        grow(quick="--quick" in sys.argv, signatures=tuple(signatures or ()), steps=tuple(int(s) for s in steps or ()))
    elif sys.argv[1] == "dups":  # python -m bench.scale dups CATALOG [WORKERS] [--no-recall]
        # --no-recall: skip the exact kNN scan behind candidate_recall_vs_exact (hours at 100k images)
        positional = [a for a in sys.argv[2:] if not a.startswith("--")]
        workers = int(positional[1]) if len(positional) > 1 else 2
        print(json.dumps(dups_worker(positional[0], workers, recall="--no-recall" not in sys.argv), indent=1))
    elif sys.argv[1] == "recall-worker":
        spec = json.loads(Path(sys.argv[2]).read_text())
        print(json.dumps(recall_worker(spec["catalog"], spec["queries"])))
