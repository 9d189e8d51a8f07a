"""Shared bits of the benchmark: paths, the machine, timing, the CPU-load gate, signatures available."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = Path(os.environ.get("BENCH_WORK", BENCH / "work"))  # git-ignored: generated files, catalogs
RESULTS = BENCH / "results"  # committed: tables, JSON, plots
# $SEARCHER_CORPUS, else shared/corpus beside the repository (or beside the folder of worktrees)
CORPUS = Path(
    os.environ.get("SEARCHER_CORPUS")
    or next(
        (p for p in (REPO.parent / "shared" / "corpus", REPO.parent.parent / "shared" / "corpus") if p.exists()),
        REPO.parent / "shared" / "corpus",
    )
)
SEED = 20240611  # every random choice of the benchmark derives from this


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load1() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(max_load: float = 0.7, max_wait_s: float | None = None) -> float:
    """Wait (up to max_wait_s) until the 1-minute load average is below max_load; returns the load then.

    The machine is shared; timings taken under someone else's load are recorded with that load.
    """
    if max_wait_s is None:
        max_wait_s = float(os.environ.get("BENCH_MAX_WAIT", "600"))
    start = time.monotonic()
    announced = False
    while load1() >= max_load and time.monotonic() - start < max_wait_s:
        if not announced:
            log(f"waiting for the 1-min load ({load1():.2f}) to fall below {max_load} (at most {max_wait_s:.0f} s)")
            announced = True
        time.sleep(5)
    if load1() >= max_load:
        log(f"load still {load1():.2f} after {max_wait_s:.0f} s: timing anyway (recorded)")
    return load1()


def median(values) -> float:
    values = list(values)
    return float(statistics.median(values)) if values else float("nan")


def percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def available_signatures() -> tuple[str, ...]:
    """hist, mse, orb always; ae only when its shipped weights load and extract."""
    names = ["hist", "mse", "orb"]
    if ae_status() == "ok":
        names.append("ae")
    return tuple(names)


_AE_STATUS: str | None = None


def ae_status() -> str:
    """'ok' or why the autoencoder signature cannot be used."""
    global _AE_STATUS
    if _AE_STATUS is None:
        try:
            import numpy as np

            from searcher.features import build_extractor

            extractor = build_extractor("ae")
            extractor.extract(np.zeros((64, 64, 3), np.uint8))
            _AE_STATUS = "ok"
        except Exception as e:  # missing weights, missing module, ...
            _AE_STATUS = f"missing ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
    return _AE_STATUS


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpu": "none used",
        "packages": {
            p: _pkg(p)
            for p in (
                "searcher",
                "opencv-python",
                "numpy",
                "torch",
                "hnswlib",
                "sqlalchemy",
                "pillow",
                "imagehash",
                "imagededup",
                "scikit-image",
            )
        },
        "searcher_commit": _git_commit(),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "searcher"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+uncommitted changes in searcher/" if dirty else "")
    except OSError:
        return "unknown"


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=float) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())
