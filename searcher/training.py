"""Training the autoencoder signature ("ae") on a folder of photos, on the CPU.

Recipe:
    sources   every image under the given paths (decoded as ingest does, long side <= 640) and every
              VIDEO_STRIDE-th frame of each video file; each is kept with its long side <= POOL_SIZE
    sample    a "clean" base image = a random crop of a random source (25-100 % of the area, aspect
              ratio 1:2 to 2:1); two augmented copies of it (near-duplicate transforms: crop, small
              rotation, flip, frame, colour jitter, grey, blur, noise, down/up-scaling, JPEG, text or
              logo overlay), all squashed to 64 x 64 (the extractor's preprocessing)
    objective denoising reconstruction (MSE between the decoder output of each copy and the clean base)
              + contrastive_weight * NT-Xent(temperature) between the L2-normalised latents of the two
              copies, the other bases of the batch being the negatives (bases cut from overlapping
              regions of the same source are not used as negatives)
    optimiser AdamW, one warm-up epoch then cosine learning-rate decay, fixed number of samples per epoch
Everything is seeded: the same data, seed and options give the same weights, and a run interrupted
after an epoch resumes from `<out>.ckpt` to the same result.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from searcher.errors import SearcherError, UsageError
from searcher.features import autoencoder as ae
from searcher.features.ae_numpy import MEAN, STD
from searcher.images import is_image_path, load_image

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
VIDEO_STRIDE = 20  # keep every 20th frame of a video (vtest.avi: 795 frames -> 40)
POOL_SIZE = 256  # long side of the in-memory copy of each source
CHECKPOINT_FORMAT = 1

_WORDS = (
    "SAMPLE",
    "copyright",
    "2024",
    "holiday",
    "news",
    "HELLO",
    "photo by",
    "@user",
    "draft",
    "wow",
    "best day",
    "FOR SALE",
    "lorem ipsum",
    "#nofilter",
    "CONFIDENTIAL",
    "sunset",
)


@dataclass
class TrainConfig:
    """Everything that determines the weights (besides the data)."""

    epochs: int = 20
    latent_dim: int = ae.DEFAULT_LATENT_DIM
    seed: int = 0
    batch_size: int = 128
    samples_per_epoch: int = 2048
    lr: float = 2e-3
    weight_decay: float = 1e-4
    contrastive_weight: float = 1.0
    temperature: float = 0.1
    input_size: int = ae.INPUT_SIZE
    channels: tuple[int, ...] = ae.CHANNELS
    video_stride: int = VIDEO_STRIDE
    overlap_iou: float = 0.3  # bases of one source overlapping more than this are not negatives

    def key(self) -> dict[str, Any]:
        """The fields a checkpoint must agree on to be resumed (epochs may grow)."""
        d = asdict(self)
        d.pop("epochs")
        d["channels"] = list(self.channels)
        return d


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class Source:
    image: np.ndarray  # BGR uint8, long side <= POOL_SIZE
    group: int  # frames of one video share a group (they are near duplicates of each other)
    name: str


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _video_frames(path: Path, stride: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        if not capture.isOpened():
            return frames
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % stride == 0:
                if frame.ndim == 2:
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                frames.append(_fit(frame, POOL_SIZE))
            index += 1
    finally:
        capture.release()
    return frames


def collect_sources(
    paths: Sequence[str | os.PathLike], video_stride: int = VIDEO_STRIDE, warn: Callable[[str], None] | None = None
) -> list[Source]:
    """Every image under `paths` and every `video_stride`-th frame of every video, in a stable order."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for n in sorted(names):
                    if is_image_path(n) or Path(n).suffix.lower() in VIDEO_EXTENSIONS:
                        files.append(Path(root) / n)
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(f"training path does not exist: {p}")
    files = sorted(dict.fromkeys(f.resolve() for f in files))
    sources: list[Source] = []
    group = 0
    for f in files:
        if f.suffix.lower() in VIDEO_EXTENSIONS:
            frames = _video_frames(f, video_stride)
            if not frames and warn:
                warn(f"{f}: no frames could be read")
            for i, frame in enumerate(frames):
                sources.append(Source(frame, group, f"{f.name}#{i * video_stride}"))
            group += 1 if frames else 0
            continue
        try:
            image = load_image(f).bgr
        except SearcherError as e:
            if warn:
                warn(f"{f}: skipped: {e}")
            continue
        if min(image.shape[:2]) < 16:
            if warn:
                warn(f"{f}: skipped: too small")
            continue
        sources.append(Source(_fit(image, POOL_SIZE), group, f.name))
        group += 1
    return sources


def _data_fingerprint(sources: Sequence[Source]) -> str:
    """Names, sizes and a pixel digest of the training sources: a checkpoint resumes only on the same data."""
    import hashlib

    h = hashlib.sha256()
    for s in sources:
        h.update(f"{s.name}|{s.group}|{s.image.shape}|".encode())
        h.update(hashlib.sha256(np.ascontiguousarray(s.image[::8, ::8]).tobytes()).digest())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# augmentations (numpy / OpenCV, driven by one numpy Generator)


def random_base(source: Source, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A random crop (25-100 % of the area, aspect 1:2..2:1) and its box in relative coordinates."""
    img = source.image
    h, w = img.shape[:2]
    for _ in range(10):
        area = rng.uniform(0.25, 1.0)
        log_ratio = rng.uniform(math.log(0.5), math.log(2.0))
        ratio = math.exp(log_ratio) * (h / w)  # relative box aspect so the pixel aspect is in range
        bw = math.sqrt(area / ratio)
        bh = math.sqrt(area * ratio)
        if bw <= 1.0 and bh <= 1.0:
            break
    else:
        bw = bh = 1.0
    x0 = rng.uniform(0.0, 1.0 - bw)
    y0 = rng.uniform(0.0, 1.0 - bh)
    px0, py0 = int(round(x0 * w)), int(round(y0 * h))
    px1, py1 = max(px0 + 8, int(round((x0 + bw) * w))), max(py0 + 8, int(round((y0 + bh) * h)))
    crop = img[py0:py1, px0:px1]
    return _fit(crop, 160), (x0, y0, x0 + bw, y0 + bh)


def _colour_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = img.astype(np.float32)
    if rng.random() < 0.8:  # brightness / contrast
        alpha = rng.uniform(0.6, 1.4)
        beta = rng.uniform(-40, 40)
        f = (f - f.mean()) * alpha + f.mean() + beta
    if rng.random() < 0.5:  # saturation
        grey = f.mean(axis=2, keepdims=True)
        f = grey + (f - grey) * rng.uniform(0.3, 1.6)
    if rng.random() < 0.3:  # per-channel gain (white balance)
        f = f * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    if rng.random() < 0.3:  # gamma
        f = 255.0 * (np.clip(f, 0, 255) / 255.0) ** rng.uniform(0.6, 1.6)
    out = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:  # hue rotation
        hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
        hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + int(rng.integers(-12, 13))) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return out


def _overlay(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.copy()
    h, w = out.shape[:2]
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    if rng.random() < 0.7:
        text = _WORDS[int(rng.integers(len(_WORDS)))]
        scale = rng.uniform(0.3, 1.2) * w / 160
        thickness = max(1, int(round(scale * rng.uniform(1, 3))))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        x = int(rng.uniform(0, max(1, w - tw)))
        y = int(rng.uniform(th, max(th + 1, h)))
        cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    else:  # a logo: a filled box or disc in a corner, maybe translucent
        s = int(rng.uniform(0.08, 0.25) * min(h, w)) + 2
        x = int(rng.choice([rng.uniform(0, 0.1), rng.uniform(0.6, 0.9)]) * w)
        y = int(rng.choice([rng.uniform(0, 0.1), rng.uniform(0.6, 0.9)]) * h)
        layer = out.copy()
        if rng.random() < 0.5:
            cv2.rectangle(layer, (x, y), (x + s, y + s // 2), colour, -1)
        else:
            cv2.circle(layer, (x + s // 2, y + s // 2), s // 2, colour, -1)
        a = rng.uniform(0.5, 1.0)
        out = cv2.addWeighted(layer, a, out, 1 - a, 0)
    return out


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One near-duplicate copy of a BGR uint8 image (the transforms of the module recipe, each at random)."""
    out = img
    h, w = out.shape[:2]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.6:  # crop: keep 65-100 % of each side
        kw, kh = rng.uniform(0.65, 1.0), rng.uniform(0.65, 1.0)
        x0, y0 = rng.uniform(0, 1 - kw), rng.uniform(0, 1 - kh)
        out = out[int(y0 * h) : int((y0 + kh) * h) + 1, int(x0 * w) : int((x0 + kw) * w) + 1]
        h, w = out.shape[:2]
    if rng.random() < 0.4:  # small rotation, black or replicated corners, maybe zoomed to hide them
        angle = rng.uniform(-12, 12)
        zoom = 1.0 + abs(math.sin(math.radians(angle))) * rng.uniform(0, 1.2)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom)
        border = cv2.BORDER_CONSTANT if rng.random() < 0.6 else cv2.BORDER_REFLECT101
        out = cv2.warpAffine(np.ascontiguousarray(out), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    if rng.random() < 0.2:  # frame / border
        c = tuple(int(v) for v in (rng.integers(0, 256, size=3) if rng.random() < 0.5 else [rng.integers(0, 256)] * 3))
        top, bottom, left, right = (int(rng.uniform(0.02, 0.15) * s) for s in (h, h, w, w))
        out = cv2.copyMakeBorder(np.ascontiguousarray(out), top, bottom, left, right, cv2.BORDER_CONSTANT, value=c)
    out = np.ascontiguousarray(out)
    if rng.random() < 0.8:
        out = _colour_jitter(out, rng)
    if rng.random() < 0.1:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.3:
        out = _overlay(out, rng)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 2.0))
    if rng.random() < 0.4:  # down / up scaling
        s = rng.uniform(0.25, 0.9)
        h, w = out.shape[:2]
        small = cv2.resize(out, (max(8, int(w * s)), max(8, int(h * s))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) if rng.random() < 0.5 else small
    if rng.random() < 0.3:
        noise = rng.normal(0, rng.uniform(2, 15), size=out.shape).astype(np.float32)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 95))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def make_batch(sources: Sequence[Source], n: int, rng: np.random.Generator, size: int):
    """n bases -> (clean targets in [0,1] RGB, view 1, view 2 normalised inputs, groups, boxes)."""
    picks = rng.integers(0, len(sources), size=n)
    clean = np.empty((n, 3, size, size), np.float32)
    v1 = np.empty_like(clean)
    v2 = np.empty_like(clean)
    groups = np.empty(n, np.int64)
    boxes = np.empty((n, 4), np.float32)
    for i, k in enumerate(picks):
        base, box = random_base(sources[k], rng)
        clean[i] = ae.preprocess(base, size) * STD + MEAN
        v1[i] = ae.preprocess(augment(base, rng), size)
        v2[i] = ae.preprocess(augment(base, rng), size)
        groups[i] = sources[k].group
        boxes[i] = box
    return clean, v1, v2, groups, boxes


def _negative_mask(groups: np.ndarray, boxes: np.ndarray, iou: float) -> np.ndarray:
    """n x n True where two bases are cut from overlapping regions of one source (not negatives)."""
    same = groups[:, None] == groups[None, :]
    x0 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y0 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x1 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y1 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area[:, None] + area[None, :] - inter
    mask = same & (inter / np.maximum(union, 1e-9) > iou)
    np.fill_diagonal(mask, False)
    return mask


def nt_xent(z1, z2, temperature: float, exclude=None):
    """SimCLR's NT-Xent over 2n views; exclude (n x n bool) removes pairs of bases from the negatives."""
    import torch
    import torch.nn.functional as F

    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.t() / temperature
    block = torch.eye(n, dtype=torch.bool)
    if exclude is not None:
        block = block | torch.from_numpy(exclude)
    off = block.repeat(2, 2)  # same base or excluded base, in any view pairing
    pos = torch.arange(2 * n)
    pos = torch.cat([pos[n:], pos[:n]])
    keep_positive = torch.zeros_like(off)
    keep_positive[torch.arange(2 * n), pos] = True
    logits = logits.masked_fill(off & ~keep_positive, float("-inf"))
    return F.cross_entropy(logits, pos)


# ----------------------------------------------------------------------------------------------
# training loop


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


@dataclass
class _Run:
    """The state of one training run: model, optimiser, the epochs done and their losses."""

    config: TrainConfig
    model: Any
    optimiser: Any
    steps_per_epoch: int
    ckpt_path: Path
    data_id: str
    history: list[dict[str, float]] = field(default_factory=list)
    start_epoch: int = 0
    spent: float = 0.0  # training seconds of the epochs already done (kept in the checkpoint, not in the weights)
    started: float = 0.0

    def lr_at(self, epoch: int, step: int) -> float:
        """Cosine schedule over the whole run after a one-epoch linear warm-up."""
        config, steps = self.config, self.steps_per_epoch
        t = (epoch * steps + step) / (config.epochs * steps)
        warm = min(1.0, (epoch * steps + step + 1) / max(1, steps))
        return config.lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _check(config: TrainConfig) -> None:
    if config.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if config.latent_dim < 2:
        raise UsageError("--latent-dim must be at least 2")


def _fresh_model(config: TrainConfig):
    """(model, optimiser), seeded: the same config gives the same initial weights."""
    import torch

    torch.manual_seed(config.seed)
    model = ae.build_model(config.latent_dim, config.input_size, config.channels)
    return model, torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _resume(run: _Run, warn: Callable[[str], None]) -> None:
    """Continue from the checkpoint when it was made by this very run (options, images, architecture)."""
    import torch

    path, config = run.ckpt_path, run.config
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        warn(f"ignoring unreadable checkpoint {path}: {e}")
        return
    if ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("config") != config.key() or ckpt.get("arch") != ae.ARCH:
        warn(f"checkpoint {path} was made with other options: starting afresh")
    elif ckpt.get("data", run.data_id) != run.data_id:
        warn(f"checkpoint {path} was made from other training images: starting afresh")
    elif int(ckpt.get("epoch", 0)) > config.epochs:
        warn(f"checkpoint {path} is already past {config.epochs} epochs: starting afresh")
    else:
        try:
            run.model.load_state_dict(ckpt["model"])
            run.optimiser.load_state_dict(ckpt["optimiser"])
            run.start_epoch = int(ckpt["epoch"])
            run.history = list(ckpt["history"])
            run.spent = float(ckpt.get("seconds", 0.0))
        except (KeyError, RuntimeError, ValueError) as e:
            warn(f"checkpoint {path} does not fit this model ({str(e).splitlines()[0]}): starting afresh")
            run.model, run.optimiser = _fresh_model(config)
            run.start_epoch, run.history = 0, []


def _train_step(run: _Run, sources: Sequence[Source], rng: np.random.Generator, lr: float) -> dict[str, float]:
    """One batch: denoising reconstruction loss plus, when weighted, the contrastive loss of the two views."""
    import torch

    config = run.config
    for group in run.optimiser.param_groups:
        group["lr"] = lr
    clean, v1, v2, groups, boxes = make_batch(sources, config.batch_size, rng, config.input_size)
    x = torch.from_numpy(np.concatenate([v1, v2]))
    target = torch.from_numpy(np.concatenate([clean, clean]))
    z, recon = run.model(x)
    recon_loss = torch.nn.functional.mse_loss(recon, target)
    loss = recon_loss
    c_loss = torch.zeros(())
    if config.contrastive_weight > 0:
        n = config.batch_size
        exclude = _negative_mask(groups, boxes, config.overlap_iou)
        c_loss = nt_xent(z[:n], z[n:], config.temperature, exclude)
        loss = recon_loss + config.contrastive_weight * c_loss
    run.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    run.optimiser.step()
    return {"loss": float(loss.detach()), "recon": float(recon_loss.detach()), "contrastive": float(c_loss.detach())}


def _save_checkpoint(run: _Run, epoch: int) -> None:
    import torch

    tmp = run.ckpt_path.with_name(run.ckpt_path.name + ".tmp")
    state = {
        "format": CHECKPOINT_FORMAT,
        "arch": ae.ARCH,
        "config": run.config.key(),
        "epoch": epoch + 1,
        "data": run.data_id,
        "model": run.model.state_dict(),
        "optimiser": run.optimiser.state_dict(),
        "history": run.history,
        "seconds": run.spent + time.perf_counter() - run.started,
    }
    torch.save(state, tmp)
    os.replace(tmp, run.ckpt_path)


def _train_epochs(run: _Run, sources: Sequence[Source], last: int, progress: bool) -> None:
    """Epochs start_epoch..last-1, each seeded by (seed, epoch) and checkpointed at its end."""
    import torch

    config, steps = run.config, run.steps_per_epoch
    with _progress(progress) as bar:
        task = bar.add_task("training", total=config.epochs * steps, loss=float("nan"))
        bar.update(task, completed=run.start_epoch * steps)
        for epoch in range(run.start_epoch, last):
            rng = np.random.default_rng([config.seed, epoch])
            torch.manual_seed(config.seed * 100_003 + epoch)
            run.model.train()
            sums = {"loss": 0.0, "recon": 0.0, "contrastive": 0.0}
            for step in range(steps):
                losses = _train_step(run, sources, rng, run.lr_at(epoch, step))
                for key, value in losses.items():
                    sums[key] += value
                bar.update(task, advance=1, loss=losses["loss"], description=f"epoch {epoch + 1}/{config.epochs}")
            run.history.append({k: round(v / steps, 6) for k, v in sums.items()})
            _save_checkpoint(run, epoch)


def _finish(run: _Run, out: Path, sources: Sequence[Source], warnings: list[str]) -> dict[str, Any]:
    """Write the weights with their training record; the record plus where things are."""
    config = run.config
    run.model.eval()
    done = len(run.history)
    final = run.history[-1] if run.history else {}
    meta = {
        "config": config.key() | {"epochs": config.epochs},
        "final_loss": final.get("loss"),
        "final_recon_mse": final.get("recon"),
        "final_contrastive": final.get("contrastive"),
        "history": run.history,
        "sources": len(sources),
        "source_groups": len({s.group for s in sources}),
    }
    if done < config.epochs:  # an interrupted run (stop_after): weights of the epochs done so far
        meta["epochs_done"] = done
    ae.save_weights(run.model, out, meta=meta)
    return meta | {
        "out": str(out),
        "checkpoint": str(run.ckpt_path),
        "epochs": config.epochs,
        "epochs_done": done,
        "resumed_from_epoch": run.start_epoch,
        "latent_dim": config.latent_dim,
        "input_size": config.input_size,
        "seconds": round(run.spent + time.perf_counter() - run.started, 1),
        "version": ae.weights_version(out),
        "warnings": warnings,
    }


def train_with_config(
    paths: Sequence[str | os.PathLike],
    out: Path,
    config: TrainConfig,
    resume: bool = True,
    progress: bool = True,
    sources: Sequence[Source] | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train with every option explicit (train_autoencoder is the CLI's entry point).

    sources: already collected training images (then `paths` is ignored). stop_after: train at most
    this many epochs in this call and leave the rest to a later, resumed call (the result is the same
    as one uninterrupted run). Resuming with a larger config.epochs also works, but then the learning
    rate schedule is stretched from there on, so the weights differ from a straight run.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        print(f"warning: {msg}", file=sys.stderr)

    _check(config)
    if sources is None:
        sources = collect_sources(paths, config.video_stride, warn)
    if len(sources) < 2:
        raise UsageError("training needs at least two images (found %d)" % len(sources))
    ae.apply_thread_setting()
    model, optimiser = _fresh_model(config)
    steps = max(1, config.samples_per_epoch // config.batch_size)
    run = _Run(config, model, optimiser, steps, out.with_suffix(".ckpt"), _data_fingerprint(sources))
    if resume and run.ckpt_path.is_file():
        _resume(run, warn)
    run.started = time.perf_counter()
    last = config.epochs if stop_after is None else min(config.epochs, run.start_epoch + max(0, int(stop_after)))
    _train_epochs(run, sources, last, progress)
    return _finish(run, out, sources, warnings)


def train_autoencoder(
    paths: list[Path],
    out: Path,
    epochs: int,
    latent_dim: int,
    seed: int = 0,
    resume: bool = True,
    batch_size: int = 128,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the "ae" autoencoder on the images (and video frames) under `paths`; write weights to `out`.

    Checkpoints after every epoch to out.with_suffix('.ckpt') and, when `resume`, continues from it
    (a checkpoint made with other options is ignored). Returns final_loss, history, version, ...
    """
    check_output(Path(out))
    config = TrainConfig(epochs=int(epochs), latent_dim=int(latent_dim), seed=int(seed), batch_size=int(batch_size))
    return train_with_config(paths, Path(out), config, resume=resume, progress=progress)


def check_output(out: Path) -> None:
    """The weights file must be writable, and this is checked before any epoch runs (an epoch is
    minutes of work): a folder, a path under a file or an unwritable folder is a UsageError."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; name the weights file to write (e.g. {out / 'ae.pt'})")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create its folder {parent}: {e.strerror or e}") from None
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: its folder {parent} is not writable")


__all__ = ["TrainConfig", "augment", "collect_sources", "train_autoencoder", "train_with_config"]
