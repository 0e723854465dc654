"""Milliseconds per frame of the product's face pipeline against facenet-pytorch's MTCNN defaults, same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pipeline_speed.py [--runs 30] [--threads 1]

Frames, composed from the shared photos (../shared/data/photos), as the face-detection issue measured them:
  640×480    one face: astronaut.png resized to 480×480 in a grey frame (a webcam frame);
  1280×720   four faces: astronaut.png at 360×360, four times on a grey canvas (faces about 65 px wide);
  1920×1080  ten faces: astronaut.png at 300×300, ten times (faces about 55 px wide).
Product: fer.inference.faces.FacePipeline with the bundled model, `analyze` = detection of every face of 40 px and up +
crop + one classifier batch (what `fer predict` does per photo). Baseline: `MTCNN(keep_all=True).detect` on the
full frame, detection only.
Runs alternate between the two so that load from other processes hits both alike; each number is the
median of --runs after two warm-up calls, in wall-clock and in this process's CPU time.
Target: ratio baseline/product >= 5 on every frame, with the same faces found.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer.inference.faces import FacePipeline  # noqa: E402
from fer.inference.images import read_image  # noqa: E402
from fer.inference.weights import load_model  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "data" / "photos"


def tiled(face: Image.Image, size: tuple[int, int], n: int, side: int) -> Image.Image:
    """n copies of `face` (side×side) in rows on a grey canvas."""
    frame = Image.new("RGB", size, (90, 90, 90))
    tile = face.resize((side, side), Image.Resampling.BICUBIC)
    cols = (size[0] - 10) // (side + 10)
    for i in range(n):
        frame.paste(tile, (10 + (i % cols) * (side + 10), 10 + (i // cols) * (side + 10)))
    return frame


def frames(photos: Path) -> dict[str, Image.Image]:
    astronaut = read_image(photos / "astronaut.png")
    webcam = Image.new("RGB", (640, 480), (90, 90, 90))
    webcam.paste(astronaut.resize((480, 480), Image.Resampling.BICUBIC), (80, 0))
    return {
        "640x480, 1 face": webcam,
        "1280x720, 4 faces": tiled(astronaut, (1280, 720), 4, 360),  # faces about 65 px wide
        "1920x1080, 10 faces": tiled(astronaut, (1920, 1080), 10, 300),  # about 55 px wide
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", default=str(PHOTOS), help="folder with astronaut.png and camera.png")
    ap.add_argument("--model", default="bundled", help="classifier: bundled, a weights file or an MLflow URI")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per frame and method")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()

    from facenet_pytorch import MTCNN

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model)
    pipeline = FacePipeline(model)
    baseline = MTCNN(keep_all=True)

    def ours(im):
        return len(pipeline.analyze(im).faces)

    def theirs(im):
        boxes, _ = baseline.detect(im)
        return 0 if boxes is None else len(boxes)

    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.runs} runs after 2 warm-up calls")
    print("wall: elapsed ms per frame; cpu: this process's CPU ms per frame (steadier when the machine is busy)")
    print(f"{'frame':<19}{'':<6}{'pipeline':>10}{'MTCNN':>10}{'ratio':>8}    faces found (pipeline, MTCNN)")
    for name, im in frames(Path(args.photos)).items():
        found = (ours(im), theirs(im))
        ours(im), theirs(im)
        wall, cpu = {ours: [], theirs: []}, {ours: [], theirs: []}
        for _ in range(args.runs):
            for fn in (ours, theirs):
                t, c = time.perf_counter(), time.process_time()
                fn(im)
                wall[fn].append(time.perf_counter() - t)
                cpu[fn].append(time.process_time() - c)
        for kind, times in (("wall", wall), ("cpu", cpu)):
            a, b = (float(np.median(times[fn])) * 1000 for fn in (ours, theirs))
            faces = f"    {found[0]}, {found[1]}" if kind == "wall" else ""
            print(f"{name if kind == 'wall' else '':<19}{kind:<6}{a:>10.1f}{b:>10.1f}{b / a:>7.1f}×{faces}")


if __name__ == "__main__":
    main()
