"""searcher serve under load: N concurrent clients for S seconds querying by upload, and one client's
latency through HTTP against a CLI call, on real `searcher serve` processes.

python -m bench.serve_load [--images 10000] [--clients 8] [--seconds 30] [--sample-only]

Catalogs (built once under bench/work/, reused):
  serve-load-n<N>: the sample_data photos and copies, the corpus photos, and N minus those of
    synthetic variants of the corpus and sample photos: a random crop (50-100% of each side),
    long side 240-480 px, mirrored half of the time, JPEG quality 40-95 (seeded). Ingested by the
    real ingest with 2 workers and every signature available here.
  serve-load-sample: sample_data alone (the quick start's catalog).
Queries: 40 edited copies (resized, recompressed, cropped, brightened) of corpus photos, none of
them in a catalog, uploaded as multipart to POST /api/query?top=10 over keep-alive connections.
Figures: latency p50/p95/p99 (ms), requests/s, errors (any status other than 200, or a transport
error); for the sample catalog also one client alone (p50 of 60 sequential queries) and the median
of 5 `searcher query` CLI calls on the same catalog. The 1-minute load average is recorded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from bench.common import CORPUS, REPO, SEED, WORK, load1, log, percentile

SAMPLE = REPO / "sample_data"


def _sources() -> list[Path]:
    return sorted((CORPUS / "photos").glob("*.jpg")) + sorted((SAMPLE / "photos").glob("*.jpg"))


def build_catalog(n: int) -> Path:
    """The catalog folder of serve-load-n<n> (built and ingested when missing)."""
    import cv2

    import searcher
    from bench.common import available_signatures

    root = WORK / f"serve-load-n{n}"
    if (root / ".done").exists():
        return root / "catalog"
    files = root / "files"
    sources = _sources()
    base = len(sources) + len(list((SAMPLE / "copies").iterdir()))
    rng = np.random.default_rng([SEED, 12])
    files.mkdir(parents=True, exist_ok=True)
    pictures = [cv2.imread(str(p)) for p in sources]
    for k in range(max(0, n - base)):
        path = files / f"d{k // 1000:02d}" / f"v{k:05d}.jpg"
        if path.exists():
            continue
        path.parent.mkdir(exist_ok=True)
        image = pictures[int(rng.integers(len(pictures)))]
        h, w = image.shape[:2]
        ch, cw = int(h * rng.uniform(0.5, 1)), int(w * rng.uniform(0.5, 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = image[y : y + ch, x : x + cw]
        scale = rng.uniform(240, 480) / max(ch, cw)
        crop = cv2.resize(crop, (max(8, round(cw * scale)), max(8, round(ch * scale))), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        cv2.imwrite(str(path), crop, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    log(f"ingesting serve-load-n{n} ({n} images, 2 workers)")
    clock = time.perf_counter()
    with searcher.Catalog.open(root / "catalog") as catalog:
        roots = [SAMPLE / "photos", SAMPLE / "copies", CORPUS / "photos", files]
        summary = catalog.ingest(roots, searcher.IngestOptions(workers=2, signatures=available_signatures()))
    log(f"ingest: {summary.counts()} in {time.perf_counter() - clock:.0f} s (load {load1():.1f})")
    (root / ".done").write_text(json.dumps(summary.counts()))
    return root / "catalog"


def build_sample_catalog() -> Path:
    import searcher

    root = WORK / "serve-load-sample"
    # Ingested every time (a no-op when nothing changed): signatures of an older searcher are redone.
    with searcher.Catalog.open(root / "catalog") as catalog:
        catalog.ingest([SAMPLE], searcher.IngestOptions(workers=2))
    return root / "catalog"


def query_files() -> list[tuple[str, bytes]]:
    """40 edited copies of corpus photos (not in any catalog), as (name, JPEG bytes)."""
    import cv2

    rng = np.random.default_rng([SEED, 13])
    photos = sorted((CORPUS / "photos").glob("*.jpg"))
    out = []
    for k in range(40):
        image = cv2.imread(str(photos[k % len(photos)]))
        h, w = image.shape[:2]
        edit = ("resized", "recompressed", "cropped", "brightened")[k % 4]
        if edit == "resized":
            image = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        elif edit == "cropped":
            image = image[h // 10 : h - h // 10, w // 10 : w - w // 10]
        elif edit == "brightened":
            image = cv2.convertScaleAbs(image, alpha=1.1, beta=25)
        quality = 30 if edit == "recompressed" else int(rng.integers(70, 95))
        out.append((f"q{k:02d}-{edit}.jpg", cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`searcher serve` on a free port, as a user starts it."""

    def __init__(self, catalog: Path):
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "searcher", "serve", "--catalog", str(catalog), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/api/settings")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"searcher serve exited: {self.process.stderr.read()}") from None
                time.sleep(0.2)
        raise RuntimeError("searcher serve did not start in 300 s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _client(port: int, queries, until: float, latencies: list, errors: list, offset: int, count: int | None = None) -> None:
    bodies = [_multipart(name, data) for name, data in queries]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    k = offset
    while time.time() < until if count is None else k - offset < count:
        body, content_type = bodies[k % len(bodies)]
        k += 1
        clock = time.perf_counter()
        try:
            connection.request("POST", "/api/query?top=10", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200 or not json.loads(payload)["results"]:
                errors.append(f"{response.status}: {payload[:200]!r}")
                continue
        except (OSError, http.client.HTTPException, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}")
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        latencies.append((time.perf_counter() - clock) * 1000)


def load(port: int, queries, clients: int, seconds: float) -> dict:
    """`clients` threads querying as fast as they are answered for `seconds`."""
    latencies: list[float] = []
    errors: list[str] = []
    _client(port, queries, 0, [], errors, 0, count=4)  # warm up: first queries load lazily built parts
    until = time.time() + seconds
    threads = [threading.Thread(target=_client, args=(port, queries, until, latencies, errors, 7 * i)) for i in range(clients)]
    load_before = load1()
    clock = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - clock
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:3],
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "load_before": round(load_before, 2),
        "load_after": round(load1(), 2),
    }


def cli_seconds(catalog: Path, name: str, data: bytes, runs: int = 5) -> float:
    """Median wall time of `searcher query FILE --top 10 --format jsonl` (start-up, catalog opening, query)."""
    folder = WORK / "serve-load-queries"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    times = []
    for _ in range(runs):
        clock = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "searcher", "query", str(path), "--top", "10", "--format", "jsonl", "--catalog", str(catalog)],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - clock)
    return float(np.median(times))


def in_process(catalog: Path, queries, count: int = 60) -> dict:
    """The same queries through the library in this process (no HTTP): what the server adds is the difference."""
    import tempfile

    import searcher

    latencies = []
    with tempfile.TemporaryDirectory() as folder, searcher.Catalog.open(catalog, create=False) as opened:
        paths = []
        for name, data in queries:
            (Path(folder) / name).write_bytes(data)
            paths.append(str(Path(folder) / name))
        for k in range(count + 4):
            clock = time.perf_counter()
            opened.query_result(paths[k % len(paths)], top=10)
            if k >= 4:
                latencies.append((time.perf_counter() - clock) * 1000)
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "load": round(load1(), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_load", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="size of the load catalog")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sample-only", action="store_true", help="only the sample catalog (single client vs CLI)")
    args = parser.parse_args()
    queries = query_files()
    results: dict = {"machine_cores": os.cpu_count()}

    sample = build_sample_catalog()
    server = Server(sample)
    try:
        results["sample_single_client"] = _sequential(server.port, queries)
    finally:
        server.stop()
    results["sample_in_process"] = in_process(sample, queries)
    results["sample_cli_query_s"] = round(cli_seconds(sample, *queries[0]), 3)
    results["sample_load"] = round(load1(), 2)
    if not args.sample_only:
        catalog = build_catalog(args.images)
        server = Server(catalog)
        try:
            results[f"n{args.images}_single_client"] = _sequential(server.port, queries)
            results[f"n{args.images}_{args.clients}_clients"] = load(server.port, queries, args.clients, args.seconds)
        finally:
            server.stop()
    print(json.dumps(results, indent=2))


def _sequential(port: int, queries, count: int = 60) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    _client(port, queries, 0, [], errors, 0, count=4)
    _client(port, queries, 0, latencies, errors, 0, count=count)
    return {
        "sequential_queries": len(latencies),
        "sequential_errors": len(errors),
        "sequential_p50_ms": round(percentile(latencies, 50), 1),
        "sequential_p95_ms": round(percentile(latencies, 95), 1),
        "load": round(load1(), 2),
    }


if __name__ == "__main__":
    main()
