"""Where MTCNN's face box sits in a FER2013 frame: the numbers behind the serving crop (fer/faces.py).

    .venv/bin/python benchmarks/face_framing.py [--data ../shared/data/fer2013] [--n 300] [--seed 0]

FER2013 faces are 48×48 crops; the classifier only ever saw that framing, so the serving crop around an
MTCNN box must reproduce it. This runs facenet-pytorch's MTCNN (default settings, keep_all=True,
post_process=False) on n Training images, sampled with a seed across all emotions, each upscaled 4×
(48 -> 192 px, bicubic), and reports the most probable box relative to the 48×48 frame, as fractions of the
frame side: width, height, and the offset of the box centre from the frame centre (x right, y down).

Three conditions:
  bare      the 192 px frame alone (the face touches the edges; MTCNN clips boxes there);
  canvas    the frame centred in a 384 px mid-grey canvas, so the whole face is inside the picture as in a
            photo: the numbers fer/faces.py uses;
  mirrored  canvas, flipped left-right: a framing offset of FER2013 would change sign, a bias of the
            detector would not;
  serving   canvas, through the product's detector (FacePipeline.detect: downscaled copy, stricter
            thresholds, coarser pyramid), to show its boxes have the same geometry.
Last, the check: the serving crop (fer.inference.faces.crop_box with the chosen constants) around each canvas box,
against the true frame (IoU, centre and side errors).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer import LABELS  # noqa: E402
from fer.inference.faces import FER_BOX_DX, FER_BOX_DY, FER_BOX_HEIGHT, FER_BOX_WIDTH, FacePipeline, crop_box  # noqa: E402
from fer.model import create_model  # noqa: E402

UPSCALE = 4
SIDE = 48 * UPSCALE
PAD = SIDE // 2


def sample(data: Path, n: int, seed: int) -> list[Path]:
    files = sorted(p for lab in LABELS for p in (data / "train" / lab).glob("*.jpg"))
    if not files:
        sys.exit(f"no FER2013 training images under {data}/train/<emotion>/")
    random.Random(seed).shuffle(files)
    return files[:n]


def measure(detect, files: list[Path], pad: int, mirror: bool) -> np.ndarray:
    """(found, 5) rows: box width, height, centre dx, dy (fractions of the frame side), probability."""
    rows = []
    for f in files:
        face = Image.open(f).convert("L").resize((SIDE, SIDE), Image.Resampling.BICUBIC)
        if mirror:
            face = ImageOps.mirror(face)
        canvas = Image.new("L", (SIDE + 2 * pad, SIDE + 2 * pad), 128)
        canvas.paste(face, (pad, pad))
        boxes, probs = detect(canvas.convert("RGB"))
        if boxes is None or not len(boxes):
            continue
        i = int(np.argmax(probs))
        x1, y1, x2, y2 = (boxes[i][:4] - pad) / SIDE
        rows.append((x2 - x1, y2 - y1, (x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5, probs[i]))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def report(name: str, rows: np.ndarray, n: int) -> None:
    print(f"\n{name}: a face found in {len(rows)} of {n} images")
    print(f"  {'':<18}{'mean':>8}{'median':>8}{'q25':>8}{'q75':>8}{'std':>8}")
    for label, col in zip(("box width", "box height", "centre dx", "centre dy", "probability"), rows.T):
        q25, med, q75 = np.percentile(col, [25, 50, 75])
        print(f"  {label:<18}{col.mean():>8.3f}{med:>8.3f}{q25:>8.3f}{q75:>8.3f}{col.std():>8.3f}")


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def check(rows: np.ndarray) -> None:
    """The serving crop around each measured box, in frame-side units, against the true frame [0, 0, 1, 1]."""
    ious, dc, ds = [], [], []
    for w, h, dx, dy, _ in rows:
        box = (0.5 + dx - w / 2, 0.5 + dy - h / 2, 0.5 + dx + w / 2, 0.5 + dy + h / 2)
        left, top, side = crop_box(box)
        ious.append(iou((left, top, left + side, top + side), (0.0, 0.0, 1.0, 1.0)))
        dc.append(np.hypot(left + side / 2 - 0.5, top + side / 2 - 0.5))
        ds.append(side - 1.0)
    print(
        f"\nserving crop (width {FER_BOX_WIDTH}, height {FER_BOX_HEIGHT}, dx {FER_BOX_DX}, dy {FER_BOX_DY}) "
        "against the true frame, over the canvas faces:"
    )
    print(
        f"  IoU             mean {np.mean(ious):.3f}  median {np.median(ious):.3f}  q25 {np.percentile(ious, 25):.3f}"
    )
    print(f"  centre error    median {np.median(dc):.3f} of the side ({np.median(dc) * 48:.1f} px of 48)")
    print(f"  side error      median {np.median(ds):+.3f} of the side (mean {np.mean(ds):+.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/fer2013"))
    ap.add_argument("--n", type=int, default=300, help="Training images to sample")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample")
    args = ap.parse_args()

    from facenet_pytorch import MTCNN

    torch.set_num_threads(1)
    files = sample(Path(args.data), args.n, args.seed)
    mtcnn = MTCNN(keep_all=True, post_process=False)
    print(
        f"{len(files)} FER2013 Training images, {UPSCALE}× bicubic to {SIDE} px, MTCNN defaults; fractions of the side"
    )
    t0 = time.perf_counter()
    report("bare 192 px frame", measure(mtcnn.detect, files, pad=0, mirror=False), len(files))
    canvas = measure(mtcnn.detect, files, pad=PAD, mirror=False)
    report(f"frame centred in a {SIDE + 2 * PAD} px grey canvas (used by fer/faces.py)", canvas, len(files))
    report("canvas, mirrored left-right", measure(mtcnn.detect, files, pad=PAD, mirror=True), len(files))
    serving = FacePipeline(create_model())  # the classifier is not used here
    report("canvas, the product's detector", measure(serving.detect, files, pad=PAD, mirror=False), len(files))
    check(canvas)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
