"""How the product reads real photographs: faces found and emotions read on ../shared/data/realphotos-dev.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_photos.py [--model bundled] [--model runs/X/best.pt ...]

668 labelled photos (happy 300, neutral 300, surprise 68; Apache-2.0, see the set's README), mostly 350×350
public-figure photos with the face near the centre. Each photo goes through what `fer predict` does
(fer.faces.FacePipeline.analyze: MTCNN, the FER2013 framing, the classifier with its test-time augmentation);
its largest face is its reading. A photo with no face found counts as wrong, as in the figure the set's README
gives for the `fer` package (52.5%; measured by whoever built the set, not by this script).

Accuracy is over the seven emotions (a happy face read as surprise is wrong), overall and per class, with the
row of the confusion matrix for each of the three labels. A check outside FER2013, not a set to tune on:
choose models on FER2013's validation split.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer import LABELS  # noqa: E402
from fer.faces import FacePipeline  # noqa: E402
from fer.images import read_image  # noqa: E402
from fer.weights import load_model  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "realphotos-dev"
FER_PACKAGE = {"overall": 52.5, "happy": 78.0, "neutral": 32.0, "surprise": 28.0, "no face": 16}  # the set's README


def labelled(folder: Path) -> list[tuple[Path, str]]:
    with open(folder / "labels.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(folder / "images" / r["image"], r["emotion"]) for r in rows]


def read_all(pipeline: FacePipeline, photos: list[tuple[Path, str]]) -> tuple[list[str | None], float]:
    """The emotion of each photo's largest face (None: no face found), and the median ms per photo."""
    readings, times = [], []
    for path, _ in photos:
        image = read_image(path)
        t0 = time.perf_counter()
        faces = pipeline.analyze(image).faces
        times.append(time.perf_counter() - t0)
        if not faces:
            readings.append(None)
            continue
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        readings.append(largest.emotion)
    return readings, float(np.median(times) * 1000)


def report(name: str, photos: list[tuple[Path, str]], readings: list[str | None], ms: float) -> None:
    truth = [label for _, label in photos]
    right = [r == t for r, t in zip(readings, truth)]
    print(
        f"\n{name}: {100 * np.mean(right):.1f}% of {len(truth)} photos; no face found in "
        f"{sum(r is None for r in readings)}; {ms:.0f} ms a photo (median)"
    )
    print(f"| label | n | accuracy | read as: {' | '.join(LABELS)} | no face |")
    print("|---|---:|---:|" + "---:|" * (len(LABELS) + 1))
    for label in sorted(set(truth), key=LABELS.index):
        mine = [r for r, t in zip(readings, truth) if t == label]
        counts = [sum(r == lab for r in mine) for lab in LABELS] + [sum(r is None for r in mine)]
        acc = 100 * counts[LABELS.index(label)] / len(mine)
        print(f"| {label} | {len(mine)} | {acc:.1f}% | " + " | ".join(str(c) for c in counts) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="bundled (default), a weights file or an MLflow URI; repeatable")
    ap.add_argument("--data", type=Path, default=REAL, help="the labelled set: labels.tsv and images/")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not (args.data / "labels.tsv").exists():
        print(f"error: no labelled real photos at {args.data} (labels.tsv and images/ expected)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    photos = labelled(args.data)
    pipeline = None
    for spec in args.model or ["bundled"]:
        model, _ = load_model(spec)
        if pipeline is None:
            pipeline = FacePipeline(model)
        else:
            pipeline.set_model(model)
        readings, ms = read_all(pipeline, photos)
        report(spec, photos, readings, ms)
    print(
        f"\nthe `fer` package, as the set's README gives it: {FER_PACKAGE['overall']}% (happy "
        f"{FER_PACKAGE['happy']:.0f}%, neutral {FER_PACKAGE['neutral']:.0f}%, surprise "
        f"{FER_PACKAGE['surprise']:.0f}%), no face found in {FER_PACKAGE['no face']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
