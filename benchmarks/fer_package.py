"""The `fer` package's classifier (Justin Shenk's, MIT) on PublicTest: against FER2013's labels and the FER+ crowd.

    python3 -m venv /tmp/ferpkg && /tmp/ferpkg/bin/pip install fer==25.10.3
    cd /tmp && /tmp/ferpkg/bin/python /path/to/benchmarks/fer_package.py --data ../shared/data/fer2013

Run it in an environment of its own: that package is also called `fer` (and pins its own torch), so this
script imports nothing of this product and reads the data itself. Each PublicTest JPEG is a face already, so
only the package's classifier runs, with its own preprocessing (`FER.detect_emotions`: resize to its input
size with OpenCV, x / 255, then (x - 0.5) × 2): once with its default quantised TFLite model and once with its
Keras model. Scored against FER2013's label and, as `fer evaluate --labels ferplus` scores, against the FER+
crowd's majority (faces with a strict majority among the eight emotions; the package has no contempt).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # the package's output order
VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
AS_LABEL = {"happiness": "happy", "sadness": "sad", "anger": "angry"}


def crowd_majority(row: dict) -> str | None:
    """The emotion with strictly the most votes; None for a tie, no votes, or 'unknown'/'not a face' on top."""
    counts = {AS_LABEL.get(k, k): int(row[k] or 0) for k in VOTES}
    other = max(int(row["unknown"] or 0), int(row["NF"] or 0))
    top = max(counts.values())
    winners = [k for k, v in counts.items() if v == top]
    if top == 0 or other > top or len(winners) > 1:
        return None
    return winners[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    ap.add_argument("--votes", type=Path, default=None, help="default: ../ferplus/votes.csv beside --data")
    args = ap.parse_args()
    votes_path = args.votes or args.data.parent / "ferplus" / "votes.csv"
    with open(votes_path, newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    files = sorted(p for p in (args.data / "test").rglob("*.jpg"))
    if not files:
        print(f"error: no PublicTest JPEGs under {args.data / 'test'}", file=sys.stderr)
        return 2
    from fer.fer import FER  # the package, not this product

    labels = [p.parent.name for p in files]
    crowd = [crowd_majority(rows[p.relative_to(args.data).as_posix()]) for p in files]
    faces = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files])
    for name, tflite in (("TFLite (the default)", True), ("Keras", False)):
        model = FER(use_tflite=tflite)
        size = (64, 64)
        x = np.stack([cv2.resize(f, size) for f in faces]).astype("float32") / 255.0
        x = (x - 0.5) * 2.0
        proba = np.concatenate([np.asarray(model._classify_emotions(x[i : i + 64])) for i in range(0, len(x), 64)])
        pred = [FER2013[i] for i in proba.argmax(1)]
        own = np.mean([p == t for p, t in zip(pred, labels)])
        scored = [(p, c) for p, c in zip(pred, crowd) if c is not None]
        vs_crowd = np.mean([p == c for p, c in scored])
        print(f"`fer` package, {name}: FER2013 labels {100 * own:.2f}% of {len(labels)}; FER+ crowd majority "
              f"{100 * vs_crowd:.2f}% of {len(scored)}")  # fmt: skip
        for emotion in (*FER2013, "contempt"):
            mine = [p == c for p, c in scored if c == emotion]
            if mine:
                print(f"  crowd says {emotion}: {100 * np.mean(mine):.1f}% of {len(mine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
