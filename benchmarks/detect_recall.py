"""Recall by face size and ms per frame of the product's face detection, beside MTCNN's defaults, same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/detect_recall.py [--frames 8] [--runs 3] [--seed 0]

Frames are composed here from the shared photos (../shared/data/photos: astronaut.png, public domain, and
camera.png, scikit-image sample data): a head-and-shoulders square around each photo's face, scaled so the face
is 20-200 px wide (log-uniform), mirrored at random, pasted 1 to 12 times without overlap at random places on a
grey canvas or on the cat or coffee photo (no human face in them) at 640×480, 1280×720 and 1920×1080, --frames
of each. The true box of every pasted face is its photo's face box (MTCNN's defaults on the photo), moved and
scaled with it. A face counts as found when a detected box overlaps its true box with IoU >= 0.4.

Product: fer.inference.faces.FacePipeline.analyze (detection of faces of 40 px and up, crop, one classifier batch: what
`fer predict` does per photo). Baseline: facenet-pytorch's `MTCNN(keep_all=True).detect` on the full frame,
detection only. Both run alternately on the same frames; ms/frame is the median of --runs.
Prints recall per face-width band, false detections per frame, and ms/frame per frame size with the ratio.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer.inference.faces import FacePipeline  # noqa: E402
from fer.inference.images import read_image  # noqa: E402
from fer.inference.weights import load_model  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "data" / "photos"
SIZES = [(640, 480), (1280, 720), (1920, 1080)]
BANDS = [(20, 30), (30, 40), (40, 60), (60, 100), (100, 201)]
TILE_PER_FACE = 2.2  # the pasted square is this many face widths on a side


def sources(photos: Path, mtcnn) -> list[tuple[Image.Image, np.ndarray]]:
    """(head-and-shoulders square, face box inside it) per photo, the box from MTCNN's defaults."""
    out = []
    for name in ("astronaut.png", "camera.png"):
        photo = read_image(photos / name)
        boxes, probs = mtcnn.detect(photo)
        box = boxes[int(np.argmax(probs))]
        w = box[2] - box[0]
        side = TILE_PER_FACE * w
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        left, top = cx - side / 2, cy - side / 2
        tile = photo.crop((round(left), round(top), round(left + side), round(top + side)))
        out.append(
            (tile, np.array([box[0] - round(left), box[1] - round(top), box[2] - round(left), box[3] - round(top)]))
        )
    return out


def compose(rng, size, srcs, backgrounds) -> tuple[Image.Image, np.ndarray]:
    W, H = size
    bg = backgrounds[rng.integers(len(backgrounds))]
    frame = Image.new("RGB", size, (90, 90, 90)) if bg is None else ImageOps.fit(bg, size)
    want = int(rng.integers(1, 13))
    placed, truth = [], []
    for _ in range(want * 30):
        if len(truth) == want:
            break
        tile, box = srcs[rng.integers(len(srcs))]
        face_w = math.exp(rng.uniform(math.log(20), math.log(200)))
        k = face_w / (box[2] - box[0])
        side = round(tile.width * k)
        if side >= min(W, H):
            continue
        x, y = int(rng.integers(0, W - side)), int(rng.integers(0, H - side))
        if any(x < px + ps and px < x + side and y < py + ps and py < y + side for px, py, ps in placed):
            continue
        t = tile.resize((side, side), Image.Resampling.BICUBIC, reducing_gap=3.0)
        b = box * (side / tile.width)
        if rng.random() < 0.5:
            t = ImageOps.mirror(t)
            b = np.array([side - b[2], b[1], side - b[0], b[3]])
        frame.paste(t, (x, y))
        placed.append((x, y, side))
        truth.append(b + [x, y, x, y])
    return frame, np.array(truth, dtype=np.float32).reshape(-1, 4)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def match(truth: np.ndarray, found: np.ndarray, threshold: float = 0.4) -> tuple[np.ndarray, int]:
    """(found flag per true face, false detections), greedy on IoU."""
    hit = np.zeros(len(truth), bool)
    used = np.zeros(len(found), bool)
    m = iou(truth, found)
    for t, f in sorted(np.argwhere(m >= threshold).tolist(), key=lambda tf: -m[tf[0], tf[1]]):
        if not hit[t] and not used[f]:
            hit[t] = used[f] = True
    return hit, int((~used).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8, help="frames per frame size")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per frame and method")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="bundled", help="classifier: bundled, a weights file or an MLflow URI")
    ap.add_argument("--thresholds", default="", help="the product's P-, R-, O-net thresholds, e.g. 0.7,0.7,0.8")
    ap.add_argument("--factor", type=float, default=0.0, help="the product's pyramid step (default: the shipped)")
    args = ap.parse_args()
    from facenet_pytorch import MTCNN

    torch.set_num_threads(1)
    baseline = MTCNN(keep_all=True)
    options = {}
    if args.thresholds:
        options["thresholds"] = tuple(float(t) for t in args.thresholds.split(","))
    if args.factor:
        options["factor"] = args.factor
    pipeline = FacePipeline(load_model(args.model)[0], **options)
    srcs = sources(PHOTOS, baseline)
    backgrounds = [None, read_image(PHOTOS / "chelsea.png"), read_image(PHOTOS / "coffee.png")]
    rng = np.random.default_rng(args.seed)

    def ours(im):
        return np.array([f.box for f in pipeline.analyze(im).faces], dtype=np.float32).reshape(-1, 4)

    def theirs(im):
        boxes, _ = baseline.detect(im)
        return np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes, np.float32)[:, :4]

    widths, hits, false, ms = [], {ours: [], theirs: []}, {ours: 0, theirs: 0}, {}
    for size in SIZES:
        ms[size] = {ours: [], theirs: []}
        for _ in range(args.frames):
            frame, truth = compose(rng, size, srcs, backgrounds)
            widths.extend((truth[:, 2] - truth[:, 0]).tolist())
            for fn in (ours, theirs):
                found = fn(frame)  # also the warm-up
                hit, extra = match(truth, found)
                hits[fn].extend(hit.tolist())
                false[fn] += extra
            times = {ours: [], theirs: []}
            for _ in range(args.runs):
                for fn in (ours, theirs):
                    t = time.perf_counter()
                    fn(frame)
                    times[fn].append(time.perf_counter() - t)
            for fn in (ours, theirs):
                ms[size][fn].append(float(np.median(times[fn])) * 1000)
    widths = np.array(widths)
    n_frames = len(SIZES) * args.frames
    print(f"{n_frames} frames, {len(widths)} faces, torch {torch.__version__}, 1 thread")
    print(f"{'face width':<14}{'faces':>6}{'product':>10}{'MTCNN':>10}   recall")
    for lo, hi in BANDS:
        sel = (widths >= lo) & (widths < hi)
        r = [np.array(hits[fn])[sel].mean() if sel.any() else float("nan") for fn in (ours, theirs)]
        print(f"{f'{lo}-{hi - 1} px':<14}{int(sel.sum()):>6}{r[0]:>10.1%}{r[1]:>10.1%}")
    sel = widths >= 40
    r = [np.array(hits[fn])[sel].mean() for fn in (ours, theirs)]
    print(f"{'40 px and up':<14}{int(sel.sum()):>6}{r[0]:>10.1%}{r[1]:>10.1%}")
    print(f"{'false/frame':<14}{'':>6}{false[ours] / n_frames:>10.2f}{false[theirs] / n_frames:>10.2f}")
    print(f"\n{'frame size':<14}{'product ms':>12}{'MTCNN ms':>10}{'ratio':>8}")
    for size in SIZES:
        a, b = (float(np.mean(ms[size][fn])) for fn in (ours, theirs))
        print(f"{f'{size[0]}x{size[1]}':<14}{a:>12.1f}{b:>10.1f}{b / a:>7.1f}×")


if __name__ == "__main__":
    main()
