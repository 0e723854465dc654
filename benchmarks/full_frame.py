"""What the detector's second look for a face that fills the photo finds, and what it costs a photo without a face.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/full_frame.py [--runs 7]

Found: astronaut.png (../shared/data/photos, public domain) cropped to its face, chin and hair cut by the edges,
350×350 (as realphotos-dev's Abdullah_Gul_0019.jpg), at every smallest face from 12 to 350, with the second look
(fer.detection.detector.FULL_FRAME_MARGIN) and without it (margin 0), in the same run.
Cost: the second look runs only when no face is found, so the photos timed have none: the cat and the coffee
(chelsea.png, coffee.png) and a grey 640×480 frame, smallest face 40; median of --runs, alternating.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

import fer.detection.detector as detect  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "data" / "photos"
MIN_FACES = (12, 20, 30, 40, 60, 80, 100, 150, 200, 250, 300, 350)


def full_frame_face(side: int = 350) -> Image.Image:
    x1, y1, x2, y2 = 178, 61, 266, 172  # MTCNN's box of the astronaut's face
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.9 * (x2 - x1) / 2
    face = Image.open(PHOTOS / "astronaut.png").convert("RGB")
    return face.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half))).resize((side, side))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    if not PHOTOS.is_dir():
        raise SystemExit(f"error: {PHOTOS} is absent: this benchmark needs the shared photos beside the repository")
    torch.set_num_threads(1)
    detector = detect.FaceDetector()
    shipped = detect.FULL_FRAME_MARGIN
    face = full_frame_face()
    for margin, name in ((0.0, "without the second look"), (shipped, "with it (shipped)")):
        detect.FULL_FRAME_MARGIN = margin
        found = [m for m in MIN_FACES if len(detector.detect(face, m)[0])]
        print(f"full-frame face, {name}: found at {len(found)} of {len(MIN_FACES)} smallest faces {found}")

    empty = [Image.open(PHOTOS / n).convert("RGB") for n in ("chelsea.png", "coffee.png")]
    empty.append(Image.new("RGB", (640, 480), (90, 90, 90)))
    times: dict[float, list[float]] = {0.0: [], shipped: []}
    for run in range(args.runs + 1):
        for margin in times:
            detect.FULL_FRAME_MARGIN = margin
            start = time.perf_counter()
            for image in empty:
                assert not len(detector.detect(image, 40)[0])
            if run:  # the first round warms up
                times[margin].append((time.perf_counter() - start) / len(empty))
    detect.FULL_FRAME_MARGIN = shipped
    base, second = statistics.median(times[0.0]), statistics.median(times[shipped])
    print(
        f"a photo without a face (median of {args.runs}): {1000 * base:.1f} ms without the second look, "
        f"{1000 * second:.1f} ms with it ({second / base:.2f}×)"
    )


if __name__ == "__main__":
    main()
