"""Concurrency acceptance check (issue #14): several processes on one catalog at once.

One round: three ingests of overlapping folders (a/, b/ and their parent, which also holds c/)
start together with a loop of queries and a reindex, all as separate `searcher` processes. When
they are done, every vector index the library would use must hold exactly the catalog's ok rows
with that signature, and a query of every image must find that image first. No process may print
a traceback. Each round uses a fresh catalog.

    python -m bench.concurrency [--rounds 5] [--per-folder 8] [--workdir DIR]

Prints one line per round and exits 1 when any round found a problem.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "photos"
SIGNATURES = "hist,mse,orb"
VECTOR_SIGNATURES = ("hist", "mse")


def _searcher(*args) -> list[str]:
    return [sys.executable, "-m", "searcher", *map(str, args)]


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen(_searcher(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lay_out(root: Path, photos: list[Path], per_folder: int) -> Path:
    """root/all/{a,b,c}/: three folders of distinct photos, `per_folder` each."""
    top = root / "all"
    for i, name in enumerate("abc"):
        folder = top / name
        folder.mkdir(parents=True)
        for photo in photos[i * per_folder : (i + 1) * per_folder]:
            shutil.copy(photo, folder / photo.name)
    return top


def _finish(process: subprocess.Popen, what: str, problems: list[str], timeout: float = 600, may_fail: bool = False) -> str:
    """Wait for a process; a traceback is always a problem, and so is a failure unless `may_fail`
    (a query that starts before the first ingest made the catalog: "no catalog at ...")."""
    stdout, stderr = process.communicate(timeout=timeout)
    if "Traceback" in stderr or "Traceback" in stdout:
        problems.append(f"{what}: traceback: {stderr.strip().splitlines()[-1]}")
    elif process.returncode != 0 and not (may_fail and process.returncode == 1):
        problems.append(f"{what}: exit {process.returncode}: {stderr.strip()[-300:]}")
    return stdout


def ok_ids(catalog: Path, signature: str) -> set[int]:
    """Ids of the catalog's ok rows holding `signature` (read straight from SQLite)."""
    uri = "file:" + str(catalog / "catalog.db") + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        rows = db.execute(
            "SELECT i.id FROM images i JOIN signatures s ON s.image_id = i.id WHERE i.status = 'ok' AND s.extractor = ?",
            (signature,),
        )
        return {row[0] for row in rows}


def check_consistency(catalog: Path) -> list[str]:
    """Problems found comparing the indexes the library loads with the catalog's ok rows ([] = none)."""
    from searcher import Catalog

    problems = []
    with Catalog.open(catalog, create=False) as opened:
        for name, index in opened.indexes.items():
            expected, held = ok_ids(catalog, name), set(index.ids())
            if expected != held:
                problems.append(
                    f"{name} index holds {len(held)} vectors, catalog {len(expected)} ok rows ({len(expected - held)} missing)"
                )
    return problems


def check_queries(catalog: Path, top: Path) -> list[str]:
    """Every image, queried by one signature at a time, must come back first."""
    problems = []
    for metric in VECTOR_SIGNATURES:
        done = subprocess.run(
            _searcher("query", top, "--catalog", catalog, "--metric", metric, "--top", "1", "--format", "jsonl"),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or "Traceback" in done.stderr:
            problems.append(f"query --metric {metric}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
            continue
        for line in done.stdout.splitlines():
            record = json.loads(line)
            first = record["results"][0]["path"] if record["results"] else None
            if first != record["query"]:
                problems.append(f"query --metric {metric} {record['query']}: first hit {first}")
    return problems


def run_round(workdir: Path, photos: list[Path] | None = None, per_folder: int = 8, queries: int = 6) -> list[str]:
    """One round on a fresh catalog under `workdir`; returns the problems found ([] = none)."""
    photos = sorted(photos or SAMPLE.glob("*.jpg"))
    top = _lay_out(Path(workdir), photos, per_folder)
    catalog = Path(workdir) / "catalog"
    problems: list[str] = []
    common = ("--catalog", catalog, "--signatures", SIGNATURES, "--workers", "1")
    ingests = [_start("ingest", folder, *common) for folder in (top / "a", top / "b", top)]
    probes = list((top / "a").iterdir())[:queries]
    reindex = None
    for i, probe in enumerate(probes):
        _finish(_start("query", probe, "--catalog", catalog, "--top", "2"), f"query {probe.name}", problems, may_fail=True)
        if i == len(probes) // 2:
            reindex = _start("reindex", "--catalog", catalog)
    for name, process in zip(("ingest a", "ingest b", "ingest all"), ingests):
        _finish(process, name, problems)
    if reindex is not None:
        _finish(reindex, "reindex", problems)
    last = subprocess.run(_searcher("ingest", top, *common), capture_output=True, text=True, timeout=600)
    if not last.stdout.startswith("0 added") or last.returncode != 0:
        problems.append(f"a final ingest still found work: {last.stdout.strip()} {last.stderr.strip()[-300:]}")
    problems += check_consistency(catalog)
    problems += check_queries(catalog, top)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-folder", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    failed = 0
    for n in range(1, args.rounds + 1):
        workdir = Path(tempfile.mkdtemp(prefix=f"concurrency-{n}-", dir=args.workdir))
        clock = time.perf_counter()
        problems = run_round(workdir, per_folder=args.per_folder)
        status = "ok" if not problems else "FAILED: " + "; ".join(problems)
        print(f"round {n}/{args.rounds}: {time.perf_counter() - clock:.1f} s, {status}", flush=True)
        failed += bool(problems)
        if not problems:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.rounds - failed}/{args.rounds} rounds consistent (load: {os.getloadavg()[0]:.1f})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
