"""How the product reads real photographs: faces found and emotions read on ../shared/data/realphotos-dev.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_photos.py [--model bundled] [--model runs/X/best.pt ...]

668 labelled photos (happy 300, neutral 300, surprise 68; Apache-2.0, see the set's README), mostly 350×350
public-figure photos with the face near the centre. Each photo goes through what `fer predict` does
(fer.inference.faces.FacePipeline.analyze: MTCNN, the FER2013 framing, the classifier with its test-time augmentation);
its largest face is its reading. A photo with no face found counts as wrong, as in the figure the set's README
gives for the `fer` package (52.5%; measured by whoever built the set, not by this script).

Accuracy is over the model's emotions (a happy face read as surprise, or as contempt by an 8-emotion model, is
wrong), overall and per class, with the row of the confusion matrix for each of the three labels. A check
outside FER2013, not a set to tune on: choose models on FER2013's validation split.

`--variants` also reads each photo's largest face framed other ways than the product frames it (the same
MTCNN box): `upright` (the photo rolled about the face so the eyes are level, MTCNN's eye landmarks), `margin0.9`
/ `margin1.1` (the square 10% tighter / looser), `equalize` (the 48×48 face's histogram equalised) and
`upright+equalize`; `--ferplus-check` gives the FER+ PublicTest accuracy of each contrast variant, since a
step added to serving must not cost accuracy on FER2013's own crops.
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

from PIL import Image, ImageOps  # noqa: E402

from fer import EMOTIONS  # noqa: E402
from fer.inference.faces import FacePipeline, crop_faces  # noqa: E402
from fer.inference.images import read_image, to_rgb  # noqa: E402
from fer.inference.weights import load_model  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "realphotos-dev"
FER_PACKAGE = {"overall": 52.5, "happy": 78.0, "neutral": 32.0, "surprise": 28.0, "no face": 16}  # the set's README


def labelled(folder: Path) -> list[tuple[Path, str]]:
    with open(folder / "labels.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(folder / "images" / r["image"], r["emotion"]) for r in rows]


VARIANTS = ("upright", "margin0.9", "margin1.1", "equalize", "upright+equalize")


def equalize(faces: np.ndarray) -> np.ndarray:
    """(N, 48, 48) uint8 faces, each with its grey-level histogram equalised."""
    return np.stack([np.asarray(ImageOps.equalize(Image.fromarray(f))) for f in faces]) if len(faces) else faces


def framed(image: Image.Image, box: np.ndarray, eyes: np.ndarray, variant: str) -> np.ndarray:
    """(1, 48, 48): the face in `box` (MTCNN's, unclipped) framed as `variant` says."""
    box = box.astype(np.float64).copy()
    if variant.startswith("margin"):
        k = float(variant[len("margin") :])
        c, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * k
        box = np.concatenate([c - half, c + half])
    if "upright" in variant:
        (lx, ly), (rx, ry) = eyes
        angle = np.degrees(np.arctan2(ry - ly, rx - lx))  # the eyes' tilt; PIL rotates counter-clockwise
        centre = tuple((box[:2] + box[2:]) / 2)
        image = to_rgb(image).rotate(angle, resample=Image.Resampling.BICUBIC, center=centre, fillcolor=(0, 0, 0))
    faces = crop_faces(image, box[None])
    return equalize(faces) if "equalize" in variant else faces


def read_variants(pipeline: FacePipeline, photos, variants) -> dict[str, list[str | None]]:
    """The emotion of each photo's largest face framed each way of `variants` (None: no face found). A photo
    read whole (no face found in a small one) reads the same in every variant."""
    out: dict[str, list[str | None]] = {v: [] for v in variants}
    for path, _ in photos:
        image = read_image(path)
        analysis = pipeline.analyze(image)
        raw, _ = pipeline.detect(image)
        if not analysis.faces or analysis.faces[0].whole_image or not len(raw):
            reading = max(analysis.faces, key=lambda f: f.box[2] - f.box[0]).emotion if analysis.faces else None
            for v in variants:
                out[v].append(reading)
            continue
        box = raw[np.argmax((raw[:, 2] - raw[:, 0]) * (raw[:, 3] - raw[:, 1]))]
        eyes = pipeline.detector.landmarks(image, box[None])[0, :2]
        for v in variants:
            p = pipeline.classify(framed(image, box, eyes, v))[0]
            out[v].append(pipeline.classes[int(p.argmax())])
    return out


def ferplus_check(model, variants) -> None:
    """FER+ PublicTest accuracy (crowd majority) of `model` with each contrast variant applied to the faces."""
    from fer.data.fer2013 import load
    from fer.data.votes import default_votes, read_votes
    from fer.evaluation.metrics import evaluate_arrays

    ds = load(ROOT.parent / "shared" / "data" / "fer2013", quiet=True)
    test = np.flatnonzero(ds.usage_mask("PublicTest"))
    votes = read_votes(default_votes(ds.source), list(ds.keys[test]))
    keep = votes.majority() >= 0
    x, y = ds.images[test[keep]], votes.majority()[keep]
    for v in ("crop", *(v for v in variants if "equalize" in v)):
        faces = equalize(x) if "equalize" in v else x
        m = evaluate_arrays(model, faces, y, channels_last=False, n_labels=len(EMOTIONS))
        print(f"  FER+ PublicTest ({len(y)} faces with a crowd majority), {v}: {100 * m.accuracy:.2f}%")


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
        f"{sum(r is None for r in readings)}" + (f"; {ms:.0f} ms a photo (median)" if ms == ms else "")
    )
    print(f"| label | n | accuracy | read as: {' | '.join(EMOTIONS)} | no face |")
    print("|---|---:|---:|" + "---:|" * (len(EMOTIONS) + 1))
    for label in sorted(set(truth), key=EMOTIONS.index):
        mine = [r for r, t in zip(readings, truth) if t == label]
        counts = [sum(r == lab for r in mine) for lab in EMOTIONS] + [sum(r is None for r in mine)]
        acc = 100 * counts[EMOTIONS.index(label)] / len(mine)
        print(f"| {label} | {len(mine)} | {acc:.1f}% | " + " | ".join(str(c) for c in counts) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="bundled (default), a weights file or an MLflow URI; repeatable")
    ap.add_argument("--data", type=Path, default=REAL, help="the labelled set: labels.tsv and images/")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", action="store_true", help="also read each face framed the other ways (above)")
    ap.add_argument("--ferplus-check", action="store_true", help="with --variants: FER+ PublicTest per contrast")
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
        if args.variants:
            for variant, mine in read_variants(pipeline, photos, VARIANTS).items():
                report(f"{spec}, {variant}", photos, mine, float("nan"))
            if args.ferplus_check:
                ferplus_check(model, VARIANTS)
    print(
        f"\nthe `fer` package, as the set's README gives it: {FER_PACKAGE['overall']}% (happy "
        f"{FER_PACKAGE['happy']:.0f}%, neutral {FER_PACKAGE['neutral']:.0f}%, surprise "
        f"{FER_PACKAGE['surprise']:.0f}%), no face found in {FER_PACKAGE['no face']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
