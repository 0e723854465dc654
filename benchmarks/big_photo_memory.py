"""Peak memory of `fer predict` on a 48-megapixel JPEG beside the same photo at 512×512, tiled and untiled.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/big_photo_memory.py [--min-face 40 100] [--keep DIR]

The photo is built here: an 8000×6000 canvas (a smooth gradient with grain, as a camera's) with 6 faces from
../shared/data/realphotos-dev pasted at 700-1400 px (so the 512×512 copy shows them at 45-90 px, above the
smallest face, and both photos classify the same faces: the classifier's memory grows with the faces, not the
pixels), saved as a JPEG of quality 90. Each figure is the maximum resident set size (VmHWM) of a fresh
`python -m fer predict PHOTO --json` process, so start-up, the model and the decoded photo are all counted.
Baseline: the same photo resized to 512×512, in the same run. "untiled" runs P-net over every pyramid level
whole (FaceDetector.tile = None), as before tiling (the R- and O-nets' crops are cut from bounded regions in
both); the faces found must be the same. Goal (issue 38): at most +100 MB over the small photo at the default
smallest face. A folder of three such photos shows that a run of many keeps one at a time in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "realphotos-dev" / "images"

# The peak is the process's own VmHWM, read as it exits: a child's ru_maxrss starts from its parent's size at the
# fork, which the 8000×6000 canvas built here would dominate.
RUNNER = """
import atexit, sys
from pathlib import Path
from fer.detection.detector import FaceDetector
if sys.argv[1] == "untiled":
    FaceDetector.tile = None
status = Path("/proc/self/status")
atexit.register(lambda: sys.stderr.write(next(l for l in status.read_text().splitlines() if l.startswith("VmHWM"))))
from fer.cli import main
sys.exit(main(sys.argv[2:]))
"""


def build_photo(path: Path, width: int = 8000, height: int = 6000, faces: int = 6, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 90 + 60 * (x / width) + 40 * (y / height)
    canvas = np.empty((height, width, 3), np.uint8)
    for c, tint in enumerate((1.0, 0.9, 0.8)):
        canvas[..., c] = np.clip(base * tint + rng.normal(0, 4, (height, width)), 0, 255)
    del y, x, base
    photo = Image.fromarray(canvas)
    sources = sorted(FACES.glob("*.jpg"))[:: max(1, len(list(FACES.glob("*.jpg"))) // faces)][:faces]
    cols, rows = 3, 2
    for i, src in enumerate(sources):
        side = int(rng.integers(700, 1400))
        face = Image.open(src).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        cx = (i % cols + 0.5) * width / cols + rng.integers(-300, 300)
        cy = (i // cols + 0.5) * height / rows + rng.integers(-300, 300)
        photo.paste(face, (int(cx - side / 2), int(cy - side / 2)))
    photo.save(path, quality=90)


def peak(photo: Path, mode: str, min_face: int) -> tuple[float, list]:
    """(maximum resident set size in MB, faces found) of one `fer predict` process."""
    cmd = [sys.executable, "-c", RUNNER, mode, "predict", str(photo), "--json", "--min-face", str(min_face)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"fer predict {photo.name} failed: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)[0]
    kb = int(proc.stderr.rsplit("VmHWM:", 1)[1].split()[0])
    return kb / 1024, [f["box"] for f in result["faces"]]  # (a folder: its first photo's)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-face", type=int, nargs="+", default=[40, 100], help="smallest faces to run at (px)")
    ap.add_argument("--keep", default="", help="build the photos in this folder and keep them")
    args = ap.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="fer-big-photo-"))
    folder.mkdir(parents=True, exist_ok=True)
    big, small = folder / "big.jpg", folder / "small.jpg"
    if not big.exists():
        build_photo(big)
    Image.open(big).resize((512, 512), Image.Resampling.BOX).save(small, quality=90)
    (folder / "three").mkdir(exist_ok=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):  # analysed one after the other, never two at once
        if not (folder / "three" / name).exists():
            os.link(big, folder / "three" / name)
    w, h = Image.open(big).size
    print(f"{big.name}: {w}×{h} ({w * h / 1e6:.0f} MP, {big.stat().st_size / 1e6:.1f} MB); {small.name}: 512×512")
    print(f"{'photo':10s} {'min-face':>8s} {'P-net':>8s} {'peak RSS MB':>12s} {'over small':>11s} {'faces':>6s}")
    for min_face in args.min_face:
        base, faces = peak(small, "tiled", min_face)
        print(f"{'512×512':10s} {min_face:8d} {'tiled':>8s} {base:12.0f} {'':>11s} {len(faces):6d}")
        found = {}
        for mode in ("tiled", "untiled"):
            mb, found[mode] = peak(big, mode, min_face)
            print(f"{'48 MP':10s} {min_face:8d} {mode:>8s} {mb:12.0f} {mb - base:+11.0f} {len(found[mode]):6d}")
        same = "the same faces" if found["tiled"] == found["untiled"] else "DIFFERENT faces"
        print(f"  tiled and untiled found {same}")
        mb, _ = peak(folder / "three", "tiled", min_face)
        print(f"{'3 × 48 MP':10s} {min_face:8d} {'tiled':>8s} {mb:12.0f} {mb - base:+11.0f}  (a folder of three)")


if __name__ == "__main__":
    main()
