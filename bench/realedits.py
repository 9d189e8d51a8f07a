"""Real-world edits bench: copies made by ImageMagick and ffmpeg (bench/realedits_data.py), searched
through the searcher CLI exactly as a user would, against image-hash peers in the same run.

    python -m bench.realedits            # generate (cached under bench/work/), ingest, query, score, report
    python -m bench.realedits --report-only   # re-render realedits.md and the README section from the JSON

Protocol.
  Image sets ("tuning" = even-index corpus photos, "heldout" = odd-index, "skimage" = scikit-image's
  photos): one fresh catalog per set holding its originals, its copies and its distractors, made with
  `searcher ingest --workers 2`. Every copy queries its own catalog through `searcher query --format
  jsonl --top 11` (its own entry is dropped, leaving 10); relevant = its original and every other copy
  of that original. Score: mAP@10 (AP@10 = sum of precision at each relevant hit in the top 10 /
  min(relevant, 10)), and acc@1 (the first hit is relevant).
  Video: a catalog of every 2nd frame of vtest.avi; each degraded frame queries it with --top 10; acc@1
  = the first hit is an original frame within +-2 frames of the query's.
  Systems: `searcher query` default ranking; the default without the cnn signature (a second catalog
  ingested with --signatures hist,mse,orb,ae) when the installed searcher has cnn; each `--metric`
  alone; peers (bench/peers.py: imagehash pHash/dHash/colorhash, imagededup PHash/DHash/AHash/WHash)
  ranked by brute-force Hamming distance, ties broken by a fixed key (sha256 of the file's path inside
  its set), so every ranking is deterministic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, RESULTS, log, machine_info, read_json, write_json
from bench.realedits_data import (
    FRAME_TOLERANCE,
    IMAGE_FAMILIES,
    ROOT,
    VIDEO_FAMILIES,
    make_image_sets,
    make_video_set,
)

K = 10
# Signature-alone rankings on a share of the queries (every STRIDE-th query of each family), to keep the
# run near 10 min on 2 shared cores; --full asks every ranking for every query.
STRIDE = {"hist": 2, "mse": 2, "ae": 2, "cnn": 2, "orb": 4}
NO_CNN = "hist,mse,orb,ae"
JSON_PATH = RESULTS / "realedits.json"
MD_PATH = RESULTS / "realedits.md"
AE_TRAINING = REPO / "sample_data" / "photos"  # corpus photos the shipped autoencoder saw in training


# ---------------------------------------------------------------- the CLI


def searcher_exe() -> str:
    local = Path(sys.executable).parent / "searcher"
    exe = str(local) if local.exists() else shutil.which("searcher")
    if not exe:
        raise SystemExit("the searcher CLI is not installed: pip install -e . in this checkout's venv")
    return exe


def has_cnn(exe: str) -> bool:
    """True when the installed searcher knows the cnn signature (its query --help lists it)."""
    help_text = subprocess.run([exe, "query", "--help"], capture_output=True, text=True, env=_env()).stdout
    return "cnn" in help_text


def _env() -> dict:
    return dict(os.environ, COLUMNS="200", NO_COLOR="1")


def ingest(exe: str, roots: list[Path], catalog: Path, signatures: str | None) -> dict:
    if catalog.exists():
        shutil.rmtree(catalog)
    cmd = [exe, "ingest", *map(str, roots), "--catalog", str(catalog), "--workers", "2", "--format", "json"]
    if signatures:
        cmd += ["--signatures", signatures]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"ingest failed: {' '.join(cmd)}\n{done.stderr[-1500:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"ingest {catalog.name}: {summary} in {wall:.1f} s (load {load:.2f})")
    return {"wall_s": round(wall, 2), "summary": summary, "load1_before": round(load, 2), "signatures": signatures or "default"}


def run_queries(exe: str, catalog: Path, queries: list[Path], metric: str | None, top: int, procs: int = 2) -> tuple[dict, dict]:
    """query path (real) -> list of result paths (real), plus timing; queries split over procs CLIs."""
    chunks = [queries[i::procs] for i in range(procs)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    running = []
    for chunk in chunks:
        if not chunk:
            continue
        cmd = [exe, "query", *map(str, chunk), "--catalog", str(catalog), "--format", "jsonl", "--top", str(top)]
        if metric:
            cmd += ["--metric", metric]
        running.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()))
    rankings: dict[str, list[str]] = {}
    errors: list[str] = []
    for proc in running:
        out, err = proc.communicate()
        for line in out.splitlines():
            if line.strip():
                row = json.loads(line)
                rankings[os.path.realpath(row["query"])] = [_hit_key(h) for h in row["results"]]
        errors += [e for e in err.splitlines() if e.startswith("error")]
    wall = time.perf_counter() - start
    timing = {
        "wall_s": round(wall, 2),
        "ms_per_query": round(1000 * wall / max(1, len(queries)), 1),
        "load1_before": round(load, 2),
        "errors": errors[:20],
        "n_errors": len(errors),
    }
    return rankings, timing


def _hit_key(hit: dict) -> str:
    return os.path.realpath(hit["path"])


# ---------------------------------------------------------------- scoring


def average_precision(ranked: list[str], relevant: set[str], k: int = K) -> float:
    hits, total = 0, 0.0
    for i, key in enumerate(ranked[:k], 1):
        if key in relevant:
            hits += 1
            total += hits / i
    return total / min(len(relevant), k) if relevant else 0.0


def score_image_set(image_set, rankings: dict[str, list[str]]) -> list[dict]:
    """Per query: family, edit, AP@10, first hit relevant; the query's own entry is dropped."""
    rows = []
    for q in image_set.copies:
        me = os.path.realpath(q.path)
        ranked = [r for r in rankings.get(me, []) if r != me][:K]
        relevant = {os.path.realpath(p) for p in q.relevant}
        rows.append(
            {
                "family": q.family,
                "edit": q.edit,
                "ap": average_precision(ranked, relevant),
                "top1": bool(ranked) and ranked[0] in relevant,
                "answered": me in rankings,
                "original": q.original.name,
            }
        )
    return rows


def score_video(video, rankings: dict[str, list[str]]) -> list[dict]:
    by_path = {os.path.realpath(p): i for i, p in video.frames.items()}
    rows = []
    for q in video.queries:
        ranked = rankings.get(os.path.realpath(q["path"]), [])
        first = by_path.get(ranked[0]) if ranked else None
        rows.append(
            {
                "family": q["family"],
                "variant": q["variant"],
                "frame": q["frame"],
                "top1_frame": first,
                "top1": first is not None and abs(first - q["frame"]) <= FRAME_TOLERANCE,
            }
        )
    return rows


def _summarise(rows: list[dict], key: str, families) -> dict:
    out = {}
    for fam in families:
        vals = [r[key] for r in rows if r["family"] == fam]
        out[fam] = {"value": float(np.mean(vals)) if vals else None, "n": len(vals)}
    present = [v["value"] for v in out.values() if v["value"] is not None]
    out["mean"] = {"value": float(np.mean(present)) if present else None, "n": len(rows)}
    return out


# ---------------------------------------------------------------- peers


def _stable_key(path: Path, root: Path) -> int:
    return int.from_bytes(hashlib.sha256(str(path.relative_to(root)).encode()).digest()[:8], "big")


def peer_rankings(catalog_files: list[Path], queries: list[Path], root: Path) -> tuple[dict, dict]:
    """peer name -> {query real path -> ranked catalog real paths}; hashes of every file once."""
    from bench.peers import hamming_rank, hash_files, hashers

    fns = hashers()
    everything = sorted({*catalog_files, *queries})
    start = time.perf_counter()
    bits = hash_files(everything, fns)
    hash_s = time.perf_counter() - start
    index = {p: i for i, p in enumerate(everything)}
    cat_idx = np.array([index[p] for p in catalog_files])
    tiebreak = np.array([_stable_key(p, root) for p in catalog_files], dtype=np.uint64)
    real = [os.path.realpath(p) for p in catalog_files]
    out = {}
    for name, matrix in bits.items():
        cat_bits = matrix[cat_idx]
        ranks = {}
        for q in queries:
            order = hamming_rank(matrix[index[q]], cat_bits, tiebreak)[: K + 1]
            ranks[os.path.realpath(q)] = [real[i] for i in order]
        out[name] = ranks
    return out, {"hash_s_all_peers": round(hash_s, 2), "files": len(everything)}


def _files_under(root: Path) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())


# ---------------------------------------------------------------- the run


def systems(cnn: bool) -> list[tuple[str, str | None, str]]:
    """(row name, --metric or None, which catalog: 'default' | 'nocnn')."""
    rows = [("searcher default", None, "default")]
    if cnn:
        rows.append(("searcher default without cnn", None, "nocnn"))
    for metric in ("hist", "mse", "ae", "orb") + (("cnn",) if cnn else ()):
        rows.append((f"searcher --metric {metric}", metric, "default"))
    return rows


def run(args) -> dict:
    exe = searcher_exe()
    cnn = has_cnn(exe)
    t0 = time.time()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    uptime_start = os.getloadavg()
    log(f"realedits: searcher at {exe}, cnn signature {'available' if cnn else 'not available'}")
    gen_start = time.perf_counter()
    sets = make_image_sets()
    video = make_video_set()
    gen_s = time.perf_counter() - gen_start
    results = {
        "started": started,
        "cnn_available": cnn,
        "generation_s": round(gen_s, 1),
        "machine": machine_info(),
        "sets": {},
        "video": None,
    }
    catalogs_dir = ROOT / "catalogs"
    for name, image_set in sets.items():
        if args.sets and name not in args.sets:
            continue
        root = ROOT / "sets" / name
        results["sets"][name] = _run_set(exe, cnn, image_set, root, catalogs_dir, args)
    if video is not None and not args.skip_video:
        results["video"] = _run_video(exe, cnn, video, catalogs_dir, args)
    from bench.realedits_report import searcher_code_commit

    results["searcher_code"] = searcher_code_commit()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results["total_s"] = round(time.time() - t0, 1)
    results["load1_start"] = [round(x, 2) for x in uptime_start]
    results["load1_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _catalogs(exe, cnn, roots, catalogs_dir, label) -> tuple[dict, dict]:
    locations = {"default": catalogs_dir / f"{label}-default"}
    timings = {"default": ingest(exe, roots, locations["default"], None)}
    if cnn:
        locations["nocnn"] = catalogs_dir / f"{label}-nocnn"
        timings["nocnn"] = ingest(exe, roots, locations["nocnn"], NO_CNN)
    return locations, timings


def _subset(items: list, family_of, stride: int) -> list:
    """Every stride-th item of each family (in the set's fixed order)."""
    seen: dict[str, int] = {}
    out = []
    for item in items:
        fam = family_of(item)
        if seen.get(fam, 0) % stride == 0:
            out.append(item)
        seen[fam] = seen.get(fam, 0) + 1
    return out


def _stride(metric: str | None, args, set_name: str = "") -> int:
    if metric is None or args.full:
        return 1
    if set_name == "skimage":
        return 0  # the second evaluation set: default and peers only, unless --full
    return STRIDE.get(metric, 1)


def _run_set(exe, cnn, image_set, root, catalogs_dir, args) -> dict:
    locations, ingest_t = _catalogs(exe, cnn, [root], catalogs_dir, image_set.name)
    queries = [q.path for q in image_set.copies]
    from dataclasses import replace

    out = {
        "originals": len(image_set.originals),
        "copies": len(image_set.copies),
        "distractors": len(image_set.distractors),
        "ingest": ingest_t,
        "systems": {},
    }
    ae_seen = {p.name for p in AE_TRAINING.glob("*")}
    out["originals_seen_by_ae_training"] = sorted(o.name for o in image_set.originals if o.name in ae_seen)
    for row, metric, cat in systems(cnn):
        stride = _stride(metric, args, image_set.name)
        if stride == 0:
            continue
        subset = replace(image_set, copies=_subset(image_set.copies, lambda q: q.family, stride))
        rankings, timing = run_queries(exe, locations[cat], [q.path for q in subset.copies], metric, K + 1)
        out["systems"][row] = _pack(score_image_set(subset, rankings), timing, ae_seen)
        out["systems"][row]["query_stride"] = stride
        log(
            f"{image_set.name} {row}: mAP@10 {out['systems'][row]['map']['mean']['value']:.3f} ({timing['wall_s']} s, {timing['n_errors']} errors)"
        )
    peers, peer_t = peer_rankings(_files_under(root), queries, root)
    for name, rankings in peers.items():
        out["systems"][name] = _pack(score_image_set(image_set, rankings), peer_t, ae_seen)
    return out


def _pack(rows, timing, ae_seen) -> dict:
    unseen = [r for r in rows if r["original"] not in ae_seen]
    return {
        "map": _summarise(rows, "ap", IMAGE_FAMILIES),
        "acc1": _summarise(rows, "top1", IMAGE_FAMILIES),
        "map_originals_unseen_by_ae": _summarise(unseen, "ap", IMAGE_FAMILIES),
        "unanswered": sum(not r["answered"] for r in rows),
        "timing": timing,
        "per_query_ap": [round(r["ap"], 4) for r in rows],
    }


def _run_video(exe, cnn, video, catalogs_dir, args) -> dict:
    from dataclasses import replace

    catalog_root = next(iter(video.frames.values())).parent
    locations, ingest_t = _catalogs(exe, cnn, [catalog_root], catalogs_dir, f"video-{video.clip}")
    queries = [q["path"] for q in video.queries]
    out = {"clip": video.clip, "catalog_frames": len(video.frames), "queries": len(queries), "ingest": ingest_t, "systems": {}}
    for row, metric, cat in systems(cnn):
        stride = _stride(metric, args)
        subset = replace(video, queries=_subset(video.queries, lambda q: q["variant"], stride))
        rankings, timing = run_queries(exe, locations[cat], [q["path"] for q in subset.queries], metric, K)
        rows = score_video(subset, rankings)
        out["systems"][row] = {
            "acc1": _summarise(rows, "top1", VIDEO_FAMILIES),
            "timing": timing,
            "per_variant": _per_variant(rows),
            "query_stride": stride,
        }
        log(f"video {row}: acc@1 {out['systems'][row]['acc1']['mean']['value']:.3f} ({timing['wall_s']} s)")
    frames = list(video.frames.values())
    peers, peer_t = peer_rankings(frames, queries, ROOT / "video")
    for name, rankings in peers.items():
        rows = score_video(video, rankings)
        out["systems"][name] = {
            "acc1": _summarise(rows, "top1", VIDEO_FAMILIES),
            "timing": peer_t,
            "per_variant": _per_variant(rows),
        }
    return out


def _per_variant(rows) -> dict:
    variants = sorted({r["variant"] for r in rows})
    return {v: round(float(np.mean([r["top1"] for r in rows if r["variant"] == v])), 4) for v in variants}


# ---------------------------------------------------------------- report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.realedits", description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="re-render the tables from results/realedits.json")
    parser.add_argument("--full", action="store_true", help="every ranking on every query (~3x longer)")
    parser.add_argument("--skip-video", action="store_true")
    parser.add_argument("--sets", nargs="*", help="only these image sets (tuning heldout skimage)")
    args = parser.parse_args(argv)
    from bench.realedits_report import render

    if not args.report_only:
        results = run(args)
        write_json(JSON_PATH, results)
        log(f"wrote {JSON_PATH}")
    render(read_json(JSON_PATH))


if __name__ == "__main__":
    main()
