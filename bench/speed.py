"""Speed and size: ingest throughput (with a per-stage breakdown), its physical floor (decoding), the
peer (imagehash pHash), the no-op rerun, query latency per stage, peak memory and bytes on disk.

Every timing is the median of REPEATS runs, files in the page cache (each set is read once first).
Process pools are started inside the timed region for ingest and for the peers alike.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from bench.common import REPO, WORK, dir_size, load1, log, median, percentile, wait_for_quiet

REPEATS = 3


# ---------------------------------------------------------------- per-file work for the floors and the peer


def _decode_full(path: str) -> int:
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    return img.shape[0]


def _decode_reduced(path: str) -> int:
    from searcher import images

    return images.load_image(path).bgr.shape[0]


def _phash(path: str) -> int:
    from bench.peers import phash_file

    return len(phash_file(path))


FILE_WORK = {"decode full (cv2.imread)": _decode_full, "decode reduced (searcher)": _decode_reduced, "imagehash pHash": _phash}


def _pool_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def throughput(fn, paths: list[str], processes: int) -> float:
    """Files per second of fn over the paths, with 1 process (in-process) or a pool started inside the timing."""
    clock = time.perf_counter()
    if processes == 1:
        for p in paths:
            fn(p)
    else:
        context = multiprocessing.get_context("forkserver")
        with context.Pool(processes, initializer=_pool_init) as pool:
            list(pool.imap_unordered(fn, paths, chunksize=8))
    return len(paths) / (time.perf_counter() - clock)


# ---------------------------------------------------------------- ingest, with a per-stage breakdown


class StageClock:
    """Wraps library functions (at run time, nothing edited) to add up the seconds spent in each."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._undo: list = []

    def wrap(self, owner, attr: str, stage: str) -> None:
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            clock = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - clock

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def undo(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


@contextmanager
def stage_clock(signatures):
    import searcher.ingest_apply as ingest_module
    from searcher import images
    from searcher.catalog.vectors import HnswIndex
    from searcher.features import build_extractor

    clock = StageClock()
    clock.wrap(images, "read_bytes", "read file")
    clock.wrap(images, "sha256_hex", "sha256")
    clock.wrap(images, "decode", "decode (reduced)")
    for name in signatures:
        clock.wrap(type(build_extractor(name)), "extract_batch", f"signature {name}")
    clock.wrap(ingest_module.Writer, "flush", "catalog write + index add")
    clock.wrap(HnswIndex, "add", "index add")
    clock.wrap(ingest_module.Writer, "save_indexes", "index save")
    try:
        yield clock
    finally:
        clock.undo()
    # the catalog write is what flush spends outside index.add
    if "catalog write + index add" in clock.seconds:
        clock.seconds["catalog write"] = clock.seconds.pop("catalog write + index add") - clock.seconds.get("index add", 0.0)


def ingest_once(paths_root: list[str], catalog_dir: Path, workers: int, signatures, fresh: bool = True) -> tuple[float, dict]:
    from searcher.api import ingest
    from searcher.catalog import CatalogLocation
    from searcher.ingest import IngestOptions

    if fresh and catalog_dir.exists():
        shutil.rmtree(catalog_dir)
    clock = time.perf_counter()
    summary = ingest(paths_root, CatalogLocation(catalog_dir), IngestOptions(workers=workers, signatures=signatures))
    return time.perf_counter() - clock, summary.counts()


def ingest_breakdown(root: str, n: int, catalog_dir: Path, signatures) -> dict:
    """One in-process (--workers 1) ingest with every stage timed; shares in % of the wall time."""
    with stage_clock(signatures) as clock:
        wall, counts = ingest_once([root], catalog_dir, 1, signatures)
    stages = dict(clock.seconds)
    stages["other (scan, plan, open catalog, Python)"] = wall - sum(stages.values())
    return {
        "wall_s": wall,
        "ms_per_image": {k: 1000 * v / n for k, v in stages.items()},
        "share": {k: v / wall for k, v in stages.items()},
    }


def measure_ingest(sets: dict[str, list[Path]], signatures, quick: bool = False) -> dict:
    out: dict = {"signatures": list(signatures), "sets": {}}
    repeats = 1 if quick else REPEATS
    for name, files in sets.items():
        paths = [str(p) for p in files]
        root = str(files[0].parent)
        for p in paths:  # page cache
            Path(p).read_bytes()
        shape = _shape(paths[0])
        entry = {
            "files": len(paths),
            "size": f"{shape[1]}x{shape[0]}",
            "mb_per_file": dir_size(files[0].parent) / len(paths) / 1e6,
        }
        entry["load_before"] = wait_for_quiet()
        for processes in (1, 2):
            for label, fn in FILE_WORK.items():
                runs = [throughput(fn, paths, processes) for _ in range(repeats)]
                entry[f"{label}, {processes}p"] = median(runs)
                log(f"  {name} {label} {processes}p: {median(runs):.1f} files/s")
            catalog_dir = WORK / "catalogs" / f"speed-{name}"
            runs = []
            for _ in range(repeats):
                wall, counts = ingest_once([root], catalog_dir, processes, signatures)
                assert counts["added"] == len(paths), counts
                runs.append(len(paths) / wall)
            entry[f"ingest, {processes}p"] = median(runs)
            log(f"  {name} ingest {processes}p: {median(runs):.1f} files/s")
            if processes == 2:
                noop = []
                for _ in range(repeats):
                    wall, counts = ingest_once([root], catalog_dir, processes, signatures, fresh=False)
                    assert counts["unchanged"] == len(paths), counts
                    noop.append(len(paths) / wall)
                entry["no-op rerun files/s"] = median(noop)
        if not quick or name == "s640":
            entry["breakdown (1 process)"] = ingest_breakdown(
                root, len(paths), WORK / "catalogs" / f"speed-{name}-bd", signatures
            )
        entry["load_after"] = load1()
        out["sets"][name] = entry
    return out


def _shape(path: str):
    import cv2

    return cv2.imread(path, cv2.IMREAD_REDUCED_GRAYSCALE_8).shape[0] * 8, cv2.imread(path, cv2.IMREAD_REDUCED_GRAYSCALE_8).shape[
        1
    ] * 8


# ---------------------------------------------------------------- query latency (in a subprocess: its own peak RSS)


def query_worker(catalog: str, queries: list[str], repeats: int, top: int = 10) -> dict:
    """Runs in its own process: opens the catalog once, then queries one image at a time."""
    import cv2  # noqa: F401

    import searcher.images as images
    from searcher import Catalog

    decode_seconds = [0.0]
    original = images.load_image

    def timed_load(*args, **kwargs):
        clock = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            decode_seconds[0] += time.perf_counter() - clock

    images.load_image = timed_load
    clock = time.perf_counter()
    searcher = Catalog.open(Path(catalog), create=False)
    open_s = time.perf_counter() - clock
    passes = []
    hits = []
    for r in range(repeats):
        rows = []
        for q in queries:
            decode_seconds[0] = 0.0
            clock = time.perf_counter()
            result = searcher.query_result(q, top=top)
            total = time.perf_counter() - clock
            t = result.timings
            rows.append(
                {
                    "total": total,
                    "decode": decode_seconds[0],
                    "signatures": t.get("extract", 0.0) - decode_seconds[0],
                    "index search + exact scores": t.get("search", 0.0),
                    "catalog reads": t.get("catalog", 0.0),
                    "ORB re-rank": t.get("rerank", 0.0),
                }
            )
            if r == 0:
                hits.append([h.path for h in result.hits])
        passes.append(rows)
    return {
        "open_s": open_s,
        "passes": passes,
        "hits": hits,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """VmHWM of this process. Not getrusage's ru_maxrss: Linux carries that across exec, so a child
    started from a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_query_worker(catalog: Path, queries: list[str], repeats: int) -> dict:
    spec = WORK / "query-spec.json"
    spec.write_text(json.dumps({"catalog": str(catalog), "queries": queries, "repeats": repeats}))
    out = subprocess.run(
        [sys.executable, "-m", "bench.speed", "query-worker", str(spec)], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


def summarise_latency(worker: dict) -> dict:
    """p50 / p95 of each stage per pass, then the median over passes."""
    stages = list(worker["passes"][0][0])
    summary = {}
    for stage in stages:
        p50 = [percentile([row[stage] for row in rows], 50) * 1000 for rows in worker["passes"]]
        p95 = [percentile([row[stage] for row in rows], 95) * 1000 for rows in worker["passes"]]
        summary[stage] = {"p50_ms": median(p50), "p95_ms": median(p95)}
    return {
        "stages": summary,
        "open_s": worker["open_s"],
        "peak_rss_mb": worker["peak_rss_mb"],
        "n_queries": len(worker["passes"][0]),
    }


_CLI = (
    "import atexit, sys\n"
    "from bench.speed import peak_rss_mb\n"
    "atexit.register(lambda: sys.stderr.write(f'\\nBENCH_PEAK_RSS_MB {peak_rss_mb()}\\n'))\n"
    "from searcher.cli import main\n"
    "sys.argv = ['searcher', *sys.argv[1:]]\n"
    "main()\n"
)


def cli_query(catalog: Path, queries: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one `searcher query` process over the given files (the CLI's own
    main(), run by a 6-line wrapper that prints the process's VmHWM at exit)."""
    clock = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CLI, "query", *queries, "--catalog", str(catalog), "--format", "jsonl"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    wall = time.perf_counter() - clock
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    rss = float(out.stderr.rsplit("BENCH_PEAK_RSS_MB", 1)[1].split()[0])
    return wall, rss


def measure_queries(catalog: Path, queries: list[str], quick: bool = False) -> dict:
    repeats = 1 if quick else REPEATS
    load = wait_for_quiet()
    worker = run_query_worker(catalog, queries, repeats)
    out = {"in_process": summarise_latency(worker), "load_before": load}
    batch_queries = queries[:27]  # one CLI process answering 27 queries
    batch = [cli_query(catalog, batch_queries) for _ in range(repeats)]
    out["cli_batch"] = {
        "n": len(batch_queries),
        "ms_per_query": median(w for w, _ in batch) * 1000 / len(batch_queries),
        "peak_rss_mb": max(r for _, r in batch),
    }
    single = [cli_query(catalog, [q]) for q in queries[: (3 if quick else 5)]]
    out["cli_single"] = {"ms": median(w for w, _ in single) * 1000, "peak_rss_mb": max(r for _, r in single)}
    out["hits"] = worker["hits"]
    return out


def disk_usage(catalog: Path, n_images: int) -> dict:
    files = {f.name: f.stat().st_size for f in catalog.iterdir() if f.is_file()}
    db = sum(v for k, v in files.items() if k.startswith("catalog.db"))
    indexes = {k: v for k, v in files.items() if k.startswith("index-") and k.endswith(".bin")}
    sidecars = sum(v for k, v in files.items() if k.startswith("index-") and k.endswith(".json"))
    copies = sum(v for k, v in files.items() if k.startswith("index-") and k.endswith(".npy"))
    total = db + sum(indexes.values()) + sidecars + copies
    return {
        "n_images": n_images,
        "bytes_per_image": {
            "catalog.db": db / n_images,
            **{k: v / n_images for k, v in indexes.items()},
            "index sidecars": sidecars / n_images,
            "index vector copies": copies / n_images,
            "total": total / n_images,
        },
    }


def signature_sizes(catalog: Path) -> dict:
    """Average stored BLOB bytes per signature (what the catalog pays per image, before SQLite overhead)."""
    import sqlite3

    with sqlite3.connect(catalog / "catalog.db") as conn:
        rows = conn.execute("SELECT extractor, AVG(LENGTH(data)), COUNT(*) FROM signatures GROUP BY extractor").fetchall()
    return {name: {"avg_bytes": avg, "count": n} for name, avg, n in rows}


# ---------------------------------------------------------------- ingest / pHash, interleaved (python -m bench.speed ratio)

_INGEST_ONCE = (
    "import json, sys, time\n"
    "from pathlib import Path\n"
    "from bench.speed import ingest_once\n"
    "wall, counts = ingest_once([sys.argv[1]], Path(sys.argv[2]), int(sys.argv[3]), tuple(sys.argv[4].split(',')))\n"
    "print(json.dumps({'wall': wall, 'counts': counts}))\n"
)


def _ingest_subprocess(checkout: Path, root: str, catalog: Path, workers: int, signatures) -> float:
    """Seconds of one from-scratch ingest (timed inside a fresh process running `checkout`'s code)."""
    out = subprocess.run(
        [sys.executable, "-c", _INGEST_ONCE, root, str(catalog), str(workers), ",".join(signatures)],
        cwd=checkout, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(checkout)},
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])["wall"]


def ingest_ratio(files: list[Path], signatures, rounds: int = 3, baseline: Path | None = None) -> dict:
    """Ingest throughput over pHash throughput at 1 and 2 processes, measured in turn in every round
    (pHash, then this checkout's ingest, then `baseline`'s when given), so that the shared machine's
    load weighs on each alike; medians over the rounds, and the 1-min load before each round."""
    folder = WORK / f"speed-ratio-{len(files)}"  # exactly these files: ingest takes a folder
    if not folder.exists() or len(list(folder.iterdir())) != len(files):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for f in files:
            shutil.copyfile(f, folder / f.name)
    paths = sorted(str(p) for p in folder.iterdir())
    root = str(folder)
    for p in paths:  # page cache
        Path(p).read_bytes()
    checkouts = {"ingest": REPO, **({"baseline ingest": Path(baseline)} if baseline else {})}
    runs: dict[str, list[float]] = {}
    loads = []
    for _ in range(rounds):
        loads.append(load1())
        for processes in (1, 2):
            runs.setdefault(f"imagehash pHash, {processes}p", []).append(throughput(_phash, paths, processes))
            for label, checkout in checkouts.items():
                wall = _ingest_subprocess(checkout, root, WORK / "catalogs" / "ratio", processes, signatures)
                runs.setdefault(f"{label}, {processes}p", []).append(len(paths) / wall)
    out = {
        "files": len(paths),
        "signatures": list(signatures),
        "loads": loads,
        "files_per_s": {k: median(v) for k, v in runs.items()},
    }
    out["runs"] = runs
    for label in checkouts:
        for processes in (1, 2):
            out[f"{label} / pHash, {processes}p"] = median(
                i / p for i, p in zip(runs[f"{label}, {processes}p"], runs[f"imagehash pHash, {processes}p"])
            )
    return out


def _ratio_main(argv: list[str]) -> None:
    import argparse

    from bench.common import available_signatures
    from bench.dataset import speed_sets

    parser = argparse.ArgumentParser(prog="python -m bench.speed ratio", description=ingest_ratio.__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=600, help="the first N files of the 640 px speed set")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to time in the same rounds (e.g. main)")
    parser.add_argument(
        "--signatures", default=",".join(available_signatures()), help="default: every default signature that loads"
    )
    args = parser.parse_args(argv)
    result = ingest_ratio(speed_sets()["s640"][: args.files], tuple(args.signatures.split(",")), args.rounds, args.baseline)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "ratio":
        _ratio_main(sys.argv[2:])
    elif sys.argv[1] == "query-worker":
        spec = json.loads(Path(sys.argv[2]).read_text())
        print(json.dumps(query_worker(spec["catalog"], spec["queries"], spec["repeats"])))
