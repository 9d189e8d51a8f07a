"""Probe of the `cnn` signature: speed (ONNX Runtime vs torch eager), retrieval on independent edits, ingest.

    .venv/bin/python bench/cnn_probe.py speed                    # ms/image, batch 1 and 16, one thread
    .venv/bin/python bench/cnn_probe.py retrieval --split tuning  # design choices, tuning originals only
    .venv/bin/python bench/cnn_probe.py retrieval --split evaluation --final   # cnn vs ae, held-out
    .venv/bin/python bench/cnn_probe.py ingest                   # images/s with and without cnn
    .venv/bin/python bench/cnn_probe.py cost                     # CPU ms/image of each ingest stage
    .venv/bin/python bench/cnn_probe.py query                    # in-process query time by metric

Splits: ../shared/corpus/photos sorted by name; even index = tuning, odd = evaluation. Every design
choice (model, preprocessing, PCA) is made on the tuning split; the evaluation split is only scored.

Edits (made by ImageMagick, `convert`, not by our code), each from the full-size original:
grey (-colorspace Gray), posterize (-posterize 4), paint (-paint 3), charcoal (-charcoal 2),
rotate45 (-background black -rotate 45), perspective (-distort Perspective, corners moved by 8-15 %),
crop30 (an off-centre crop keeping 30 % of the area), screenshot (-resize 200% then JPEG quality 40).
Each copy is decoded as ingest does (searcher.images.load_image: long side <= 640).

Protocol: each copy queries a database of the split's originals plus distractors that belong to no
split (../shared/corpus/pairs and the scikit-image photos of sample_data); the one relevant image is
its original. Reported per edit: recall@1 and mAP@10 (= 1/rank when the original is in the top 10,
else 0, with one relevant image). A signature's score of a pair is its best over the query's variants
(query_signatures), as `searcher query --metric NAME` does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from searcher.images import load_image  # noqa: E402

SHARED = Path(os.environ.get("SEARCHER_SHARED", REPO.parent.parent / "shared"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared")
CORPUS = SHARED / "corpus"
WORK = REPO / "bench" / "work" / "cnn"
RESULTS = REPO / "bench" / "results"

EDITS = ["grey", "posterize", "paint", "charcoal", "rotate45", "perspective", "crop30", "screenshot"]


def split_originals(split: str) -> list[Path]:
    files = sorted(p for p in (CORPUS / "photos").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [p for i, p in enumerate(files) if i % 2 == (0 if split == "tuning" else 1)]


def distractors() -> list[Path]:
    pairs = sorted((CORPUS / "pairs").glob("*.*"))
    skimage = sorted((REPO / "sample_data" / "photos").glob("skimage_*"))
    return [p for p in pairs + skimage if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp")]


def edit_args(edit: str, w: int, h: int, seed: int) -> tuple[list[str], str]:
    """convert arguments for one edit of a w x h image, and the output suffix."""
    rng = np.random.default_rng([seed, EDITS.index(edit)])
    if edit == "grey":
        return ["-colorspace", "Gray"], ".jpg"
    if edit == "posterize":
        return ["-posterize", "4"], ".png"
    if edit == "paint":
        return ["-paint", "3"], ".jpg"
    if edit == "charcoal":
        return ["-charcoal", "2"], ".jpg"
    if edit == "rotate45":
        return ["-background", "black", "-rotate", "45"], ".jpg"
    if edit == "perspective":
        m = rng.uniform(0.08, 0.15, size=8) * np.array([w, h] * 4)
        src = [(0, 0), (w, 0), (0, h), (w, h)]
        dst = [(m[0], m[1]), (w - m[2], m[3]), (m[4], h - m[5]), (w - m[6], h - m[7])]
        pts = " ".join(f"{a},{b} {c:.0f},{d:.0f}" for (a, b), (c, d) in zip(src, dst))
        return ["-virtual-pixel", "black", "-distort", "Perspective", pts], ".jpg"
    if edit == "crop30":
        side = np.sqrt(0.30)
        cw, ch = int(w * side), int(h * side)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return ["-crop", f"{cw}x{ch}+{x0}+{y0}", "+repage"], ".jpg"
    if edit == "screenshot":
        return ["-resize", "200%", "-quality", "40"], ".jpg"
    raise ValueError(edit)


def make_edits(split: str) -> list[tuple[Path, str, Path]]:
    """(copy, edit, original) for every edit of every original of the split (made once, cached)."""
    out_dir = WORK / "edits" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    if shutil.which("convert") is None:
        raise SystemExit("ImageMagick's convert is missing: apt-get install -y imagemagick")
    jobs = []
    for seed, original in enumerate(split_originals(split)):
        h, w = cv2.imread(str(original), cv2.IMREAD_UNCHANGED).shape[:2]
        for edit in EDITS:
            args, suffix = edit_args(edit, w, h, seed)
            target = out_dir / f"{original.stem}__{edit}{suffix}"
            jobs.append((target, edit, original, ["convert", str(original), *args, str(target)]))

    def run(job):
        if not job[0].exists():
            subprocess.run(job[3], check=True, capture_output=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, jobs))
    return [(t, e, o) for t, e, o, _ in jobs]


# ------------------------------------------------------------------------------------------------
# descriptors


class CnnVariant:
    """The cnn pipeline with one design choice changed: model file, preprocessing, PCA."""

    def __init__(self, model_path: Path, preprocess: str = "squash", pca: dict | None = None):
        from searcher.features.cnn import CnnModel

        self.model = CnnModel(model_path)
        self.preprocess_mode = preprocess
        self.pca = pca

    def _pre(self, bgr):
        if self.preprocess_mode == "squash":
            return self.model.preprocess(bgr)
        s = self.model.input_size  # short side to s, centre crop s x s
        h, w = bgr.shape[:2]
        scale = s / min(h, w)
        img = cv2.resize(bgr, (max(s, round(w * scale)), max(s, round(h * scale))), interpolation=cv2.INTER_AREA)
        y0, x0 = (img.shape[0] - s) // 2, (img.shape[1] - s) // 2
        return self.model.preprocess(img[y0 : y0 + s, x0 : x0 + s])

    def _project(self, v):
        if self.pca is None:
            return v
        y = (v - self.pca["mean"]) @ self.pca["components"].T
        if self.pca.get("whiten"):
            y = y / self.pca["scale"]
        return y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)

    def stored(self, bgr):
        return self._project(self.model(self._pre(bgr)[None]))[0]

    def query(self, bgr):
        from searcher.features.cnn import dihedral

        return self._project(self.model(np.stack(dihedral(self._pre(bgr)))))


class AeVariant:
    def __init__(self):
        from searcher.features.autoencoder import AutoencoderExtractor

        self.ae = AutoencoderExtractor()

    def stored(self, bgr):
        return self.ae.embedding(self.ae.extract(bgr))

    def query(self, bgr):
        return np.stack([self.ae.embedding(v) for v in self.ae.query_signatures(bgr)])


def fit_pca(model_path: Path, dim: int, whiten: bool) -> dict:
    """PCA of cnn descriptors of TUNING originals and random crops/flips of them (40 per image)."""
    base = CnnVariant(model_path)
    rng = np.random.default_rng(0)
    rows = []
    for path in split_originals("tuning"):
        bgr = load_image(str(path)).bgr
        h, w = bgr.shape[:2]
        crops = [bgr]
        for _ in range(40):
            f = rng.uniform(0.4, 1.0)
            ch, cw = int(h * f), int(w * rng.uniform(0.4, 1.0))
            y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = bgr[y0 : y0 + ch, x0 : x0 + cw]
            crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
        rows.append(base.model(np.stack([base._pre(c) for c in crops])))
    x = np.concatenate(rows).astype(np.float64)
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    scale = s[:dim] / np.sqrt(len(x))
    return {
        "mean": mean.astype(np.float32),
        "components": vt[:dim].astype(np.float32),
        "scale": (scale + scale.mean() * 0.1).astype(np.float32),
        "whiten": whiten,
    }


def score(variant, split: str) -> dict:
    copies = make_edits(split)
    database = split_originals(split) + distractors()
    stored = np.stack([variant.stored(load_image(str(p)).bgr) for p in database])
    index = {p: i for i, p in enumerate(database)}
    per_edit: dict[str, list[tuple[float, float]]] = {e: [] for e in EDITS}
    for copy, edit, original in copies:
        queries = variant.query(load_image(str(copy)).bgr)
        sims = (stored @ queries.T).max(axis=1)
        rank = int((sims > sims[index[original]]).sum()) + 1
        per_edit[edit].append((float(rank == 1), 1.0 / rank if rank <= 10 else 0.0))
    table = {
        e: {"recall@1": float(np.mean([r for r, _ in v])), "mAP@10": float(np.mean([a for _, a in v]))}
        for e, v in per_edit.items()
    }
    table["mean"] = {k: float(np.mean([table[e][k] for e in EDITS])) for k in ("recall@1", "mAP@10")}
    return table


def print_table(rows: dict[str, dict]) -> str:
    head = "| variant | " + " | ".join(EDITS) + " | mean |"
    lines = [head, "|---|" + "---:|" * (len(EDITS) + 1)]
    for name, table in rows.items():
        cells = [f"{table[e]['mAP@10']:.3f} / {table[e]['recall@1']:.2f}" for e in EDITS + ["mean"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n(cells: mAP@10 / recall@1)"
    print(text)
    return text


def cmd_retrieval(args) -> None:
    models = {p.stem: p for p in sorted(WORK.glob("*.onnx"))} if not args.final else {}
    rows: dict[str, dict] = {}
    t0 = time.time()
    if args.final:
        from searcher.features.cnn import default_model_path

        rows["cnn (shipped)"] = score(CnnVariant(default_model_path()), args.split)
        rows["ae (shipped)"] = score(AeVariant(), args.split)
    else:
        for stem, path in models.items():
            if "_pca" in stem:
                continue
            for pre in ("squash", "crop") if stem.endswith("fp16") else ("squash",):
                rows[f"{stem} {pre}"] = score(CnnVariant(path, pre), args.split)
                print(f"{stem} {pre}: {rows[f'{stem} {pre}']['mean']}", flush=True)
        best = WORK / "efficientnet_lite0_fp16.onnx"
        for dim, whiten in ((256, False), (256, True), (128, True)):
            pca = fit_pca(best, dim, whiten)
            name = f"efficientnet_lite0_fp16 squash pca{dim}{' whitened' if whiten else ''}"
            rows[name] = score(CnnVariant(best, "squash", pca), args.split)
            print(f"{name}: {rows[name]['mean']}", flush=True)
    text = print_table(rows)
    uptime = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cnn_retrieval_{args.split}{'_final' if args.final else ''}.md"
    out.write_text(
        f"# cnn retrieval probe, {args.split} split\n\n`{' '.join(sys.argv)}` ({time.time() - t0:.0f} s, load {uptime[0]:.1f})\n\n{text}\n"
    )
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=1))


# ------------------------------------------------------------------------------------------------
# speed


def _time(fn, batch, repeat: int) -> float:
    """Best CPU ms per image (process time: on a machine shared with other work, wall time mostly
    measures the others; with one thread the CPU time is what a free core would take)."""
    fn(batch)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn(batch)
        best = min(best, time.process_time() - t)
    return 1000 * best / len(batch)


def cmd_speed(args) -> None:
    """ms/image of the network alone (preprocessed input), ORT vs torch eager, one thread, best of N."""
    os.environ["SEARCHER_TORCH_THREADS"] = "1"

    sys.path.insert(0, str(REPO / "models"))
    photos = split_originals("tuning")[:16]
    from searcher.features.cnn import CnnModel

    lines = [
        f"load {os.getloadavg()[0]:.1f} at start; one thread; best of {args.repeat}; CPU ms per image (network only, 224x224 input ready)"
    ]
    lines.append("| network | file MB | ORT load ms | ORT b1 | ORT b16 | torch eager b1 | torch eager b16 |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for arch in ("efficientnet_lite0", "mobilenet_v2"):
        for suffix in ("_fp16", ""):
            path = WORK / f"{arch}{suffix}.onnx"
            t = time.perf_counter()
            model = CnnModel(path)
            load_ms = 1000 * (time.perf_counter() - t)
            batch = np.stack([model.preprocess(load_image(str(p)).bgr) for p in photos]).transpose(0, 3, 1, 2).copy()
            run = lambda b, m=model: m.session.run(None, {m.input_name: b})  # noqa: E731
            ort1 = _time(run, batch[:1], args.repeat * 4)
            ort16 = _time(run, batch, args.repeat)
            torch1 = torch16 = float("nan")
            if not suffix:
                import build_cnn
                import torch

                torch.set_num_threads(1)
                net = build_cnn.Descriptor(build_cnn.load_network(arch)).eval()
                with torch.inference_mode():
                    tb = torch.from_numpy(batch)
                    torch1 = _time(net, tb[:1], args.repeat * 4)
                    torch16 = _time(net, tb, args.repeat)
            size = path.stat().st_size / 1e6
            lines.append(
                f"| {arch}{suffix} | {size:.1f} | {load_ms:.0f} | {ort1:.1f} | {ort16:.1f} | {torch1:.1f} | {torch16:.1f} |"
            )
            print(lines[-1], flush=True)
    # preprocessing of a decoded 640 px photo (resize to 224, normalise)
    model = CnnModel(WORK / "efficientnet_lite0_fp16.onnx")
    imgs = [load_image(str(p)).bgr for p in photos]
    t = time.process_time()
    for _ in range(5):
        for img in imgs:
            model.preprocess(img)
    lines.append(
        f"preprocessing (640 px BGR -> 224x224 normalised): {1000 * (time.process_time() - t) / (5 * len(imgs)):.2f} CPU ms/image; load {os.getloadavg()[0]:.1f} at end"
    )
    print(lines[-1])
    from searcher.features.cnn import CnnExtractor

    extractor = CnnExtractor()
    for img in imgs[:2]:
        extractor.query_signatures(img)
    t = time.process_time()
    for img in imgs:
        extractor.query_signatures(img)
    lines.append(
        f"shipped cnn, query_signatures (8 variants) of a 640 px photo, one thread: {1000 * (time.process_time() - t) / len(imgs):.1f} CPU ms"
    )
    print(lines[-1])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cnn_speed.md").write_text("# cnn network speed\n\n`" + " ".join(sys.argv) + "`\n\n" + "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------
# ingest throughput


def make_ingest_folder() -> Path:
    """~200 images at 640 px: every corpus photo and pair image, plus 3 transformed copies of each photo."""
    folder = WORK / "ingest640"
    if folder.is_dir() and len(list(folder.iterdir())) >= 150:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((CORPUS / "photos").glob("*.jpg")) + distractors()
    for k, path in enumerate(sources):
        bgr = load_image(str(path)).bgr
        cv2.imwrite(str(folder / f"{k:03d}_{path.stem}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if path.parent.name == "photos":
            h, w = bgr.shape[:2]
            cv2.imwrite(str(folder / f"{k:03d}_{path.stem}_flip.jpg"), bgr[:, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
            crop = bgr[h // 10 : h - h // 10, w // 10 : w - w // 10]
            cv2.imwrite(str(folder / f"{k:03d}_{path.stem}_crop.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
            bright = cv2.convertScaleAbs(bgr, alpha=1.2, beta=15)
            cv2.imwrite(str(folder / f"{k:03d}_{path.stem}_bright.png"), bright)
    return folder


def cmd_ingest(args) -> None:
    folder = make_ingest_folder()
    n = len(list(folder.iterdir()))
    exe = str(Path(sys.executable).parent / "searcher")
    lines = [
        f"{n} images at <= 640 px in {folder.relative_to(REPO)}; best of {args.repeat} runs, fresh catalog each run",
        "CPU s = user + system time of searcher and its workers; 'on 2 free cores' = 2 / (CPU s per image), the rate"
        " this CPU work allows when nothing else runs (wall times here depend on the other users of the machine)",
        "| signatures | workers | wall s | images/s | CPU s | CPU ms/image | images/s on 2 free cores | load before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sigs in ("hist,mse,orb,ae", "hist,mse,orb,ae,cnn", "cnn"):
        for workers in (1, 2):
            best, cpu, load = float("inf"), float("inf"), os.getloadavg()[0]
            for _ in range(args.repeat):
                catalog = WORK / "ingest_catalog"
                shutil.rmtree(catalog, ignore_errors=True)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                subprocess.run(
                    [exe, "ingest", str(folder), "--catalog", str(catalog), "--signatures", sigs, "--workers", str(workers)],
                    check=True,
                    capture_output=True,
                )
                best = min(best, time.perf_counter() - t)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = min(cpu, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            lines.append(
                f"| {sigs} | {workers} | {best:.2f} | {n / best:.1f} | {cpu:.1f} | {1000 * cpu / n:.1f} | {2 * n / cpu:.1f} | {load:.1f} |"
            )
            print(lines[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cnn_ingest.md").write_text(
        "# ingest throughput with and without cnn\n\n`" + " ".join(sys.argv) + "`\n\n" + "\n".join(lines) + "\n"
    )


def cmd_cost(args) -> None:
    """CPU ms per image of each ingest stage, in process, one thread: what ingest pays for cnn on a free core.

    Reading + decoding (searcher.images.load_image) and each extractor's extract_batch over chunks of
    16 images (as an ingest worker does), timed with time.process_time (CPU of this process only,
    so the other users of the machine inflate it far less than wall time)."""
    os.environ["SEARCHER_TORCH_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    cv2.setNumThreads(1)
    from searcher.features import build_extractors

    folder = make_ingest_folder()
    files = sorted(folder.iterdir())
    extractors = build_extractors(("hist", "mse", "orb", "ae", "cnn"))
    for e in extractors:  # load models outside the timing (an ingest worker loads them once)
        e.extract_batch([np.zeros((64, 64, 3), np.uint8)])
    cost = {"decode": 0.0, **{e.name: 0.0 for e in extractors}}
    load = os.getloadavg()[0]
    for start in range(0, len(files), 16):
        t = time.process_time()
        images = [load_image(str(f)).bgr for f in files[start : start + 16]]
        cost["decode"] += time.process_time() - t
        for e in extractors:
            t = time.process_time()
            e.extract_batch(images)
            cost[e.name] += time.process_time() - t
    n = len(files)
    ms = {k: 1000 * v / n for k, v in cost.items()}
    without = sum(v for k, v in ms.items() if k != "cnn")
    lines = [
        f"{n} images at <= 640 px, one thread, CPU ms per image (load {load:.1f} -> {os.getloadavg()[0]:.1f})",
        "",
        "| stage | " + " | ".join(ms) + " | total without cnn | total with cnn |",
        "|---|" + "---:|" * (len(ms) + 2),
        "| CPU ms/image | " + " | ".join(f"{v:.1f}" for v in ms.values()) + f" | {without:.1f} | {without + ms['cnn']:.1f} |",
        "",
        f"implied ingest rate on 2 free cores (2 workers, CPU-bound): {2000 / without:.0f} images/s without cnn, "
        f"{2000 / (without + ms['cnn']):.0f} images/s with cnn (catalog writes and index inserts not counted)",
    ]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cnn_cost.md").write_text(
        "# CPU cost of each ingest stage\n\n`" + " ".join(sys.argv) + "`\n\n" + "\n".join(lines) + "\n"
    )


def cmd_query(args) -> None:
    """In-process query time on the 268-image catalog with every signature, by metric: p50 of the
    wall time and of the process CPU time (all threads), and the p50 of the extraction stage."""
    import searcher
    from searcher.ingest import IngestOptions

    folder = make_ingest_folder()
    catalog = WORK / "query_catalog"
    if not catalog.is_dir():
        with searcher.Catalog.open(catalog) as cat:
            cat.ingest([folder], IngestOptions(workers=2, signatures=("hist", "mse", "orb", "ae", "cnn")))
    queries = [str(c) for c, _, _ in make_edits("tuning")][::7]
    lines = [
        f"{len(queries)} tuning copies queried in process against {len(list(folder.iterdir()))} images; "
        f"threads: ONNX Runtime default (2 cores); load {os.getloadavg()[0]:.1f}",
        "| metric | p50 wall ms | p50 CPU ms | p50 extract wall ms |",
        "|---|---:|---:|---:|",
    ]
    with searcher.Catalog.open(catalog, create=False) as cat:
        cat.query_result(queries[0])
        for metric in ("cnn", "ae", "fused"):
            wall, cpu, extract = [], [], []
            for q in queries:
                t, c = time.perf_counter(), time.process_time()
                result = cat.query_result(q, top=10, metric=metric)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
                extract.append(result.timings["extract"])
            lines.append(
                f"| {metric} | {1000 * np.median(wall):.0f} | {1000 * np.median(cpu):.0f} | {1000 * np.median(extract):.0f} |"
            )
            print(lines[-1], flush=True)
    lines.append(f"load at end {os.getloadavg()[0]:.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cnn_query.md").write_text(
        "# in-process query time with the cnn signature\n\n`" + " ".join(sys.argv) + "`\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("retrieval")
    r.add_argument("--split", choices=("tuning", "evaluation"), default="tuning")
    r.add_argument("--final", action="store_true", help="score only the shipped cnn model against ae")
    s = sub.add_parser("speed")
    s.add_argument("--repeat", type=int, default=5)
    i = sub.add_parser("ingest")
    i.add_argument("--repeat", type=int, default=2)
    sub.add_parser("cost")
    sub.add_parser("query")
    args = ap.parse_args()
    {"retrieval": cmd_retrieval, "speed": cmd_speed, "ingest": cmd_ingest, "cost": cmd_cost, "query": cmd_query}[args.cmd](args)


if __name__ == "__main__":
    main()
