"""When to call a reading unsure: how often candidate rules flag a face, and how right the flagged and unflagged
faces are, on the validation split the model was selected on.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/uncertainty.py --model bundled [--labels fer2013|ferplus] \
        [--data ../shared/data/fer2013] [--figure unsure.png]

The faces are drawn as `fer evaluate --split val` draws them (the split in the model's card, else 20% of Training
with seed 0, --seed to override); with `--labels ferplus` each face's label is the FER+ crowd's strict majority and
faces with a tie or voted 'unknown' / 'not a face' are left out, as `fer.training.trainer.training_faces` scores a
FER+ run. Probabilities are the served ones (test-time augmentation and temperature included).

Rules: the top probability under X (`top<X`), the top two within Y points (`gap<Y`), and the product's rule
(`fer.inference.faces.UNSURE_TOP` / `UNSURE_GAP`, either one). For each: the share of faces flagged, and the
accuracy of the flagged and of the unflagged faces. A useful rule flags faces that are right about as often as
a coin toss between two emotions, and leaves the rest clearly better than the model's average.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer.data import fer2013 as data  # noqa: E402
from fer.inference.faces import UNSURE_GAP, UNSURE_TOP, unsure_mask  # noqa: E402
from fer.inference.weights import load_model  # noqa: E402

TOPS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6)
GAPS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


def validation_faces(args, card: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """(faces, labels, words) of the validation split `fer evaluate --split val` scores."""
    from fer.training.config import validation_split

    ds = data.load(args.data, quiet=True)
    own = validation_split(card)
    if own is None:
        fraction, seed = 0.2, args.seed or 0
        print(f"warning: {args.model} names no validation split; drawing 20% of Training, seed {seed}", file=sys.stderr)
    else:
        _, fraction, seed = own
        if own[0] == "public":
            print(f"warning: {args.model} was validated on PublicTest; 'val' below holds faces it trained on")
        seed = seed if args.seed is None else args.seed
    _, index = data.train_val_index(ds, "split", fraction, seed)
    words = f"{len(index)} faces, {fraction:.0%} of Training drawn with seed {seed}"
    if args.labels == "fer2013":
        return ds.images[index], ds.labels[index], words + ", FER2013 labels"
    from fer.data.votes import default_votes, read_votes

    path = args.votes or default_votes(args.data)
    if not path:
        raise SystemExit(f"error: no FER+ votes beside {args.data}; give --votes PATH/votes.csv")
    majority = read_votes(path, list(ds.keys[index])).majority()
    kept = majority >= 0
    words += f"; the {int(kept.sum())} with a FER+ crowd majority (ties and non-faces left out)"
    return ds.images[index[kept]], majority[kept], words


def probabilities(model, faces: np.ndarray) -> np.ndarray:
    from fer.evaluation.metrics import predict_proba

    return predict_proba(model, faces, channels_last=False).numpy()


def row(name: str, flagged: np.ndarray, right: np.ndarray) -> str:
    def acc(mask):
        return f"{100 * right[mask].mean():5.1f}%" if mask.any() else "    -"

    return f"| {name:<22} | {100 * flagged.mean():5.1f}% | {acc(flagged)} | {acc(~flagged)} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="bundled", help="bundled, bundled:NAME, a weights file or an MLflow URI")
    ap.add_argument("--labels", default="fer2013", choices=("fer2013", "ferplus"), help="what a face is scored against")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013"), help="FER2013 folder or CSV")
    ap.add_argument("--votes", default="", help="FER+ votes.csv for --labels ferplus (default: beside --data)")
    ap.add_argument("--seed", type=int, default=None, help="split seed (default: the model's own)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--figure", default="", help="also draw accuracy against the top probability and the gap here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    model, card = load_model(args.model)
    faces, labels, words = validation_faces(args, card)
    p = probabilities(model, faces)
    ordered = np.sort(p, axis=1)
    top, gap = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
    right = p.argmax(1) == labels
    print(f"{args.model}, {p.shape[1]} emotions, validation: {words}")
    print(f"accuracy over all {len(right)} faces: {100 * right.mean():.1f}%\n")
    print("| rule (unsure when ...)  | flagged | accuracy flagged | accuracy unflagged |")
    print("|---|---:|---:|---:|")
    for x in TOPS:
        print(row(f"top < {x:.0%}", top < x, right))
    for y in GAPS:
        print(row(f"top two within {y * 100:.0f} pts", gap < y, right))
    for x, y in ((0.4, 0.1), (0.4, 0.15), (0.5, 0.1), (0.5, 0.15), (0.5, 0.2)):
        print(row(f"top < {x:.0%} or gap < {y * 100:.0f}", (top < x) | (gap < y), right))
    chosen = unsure_mask(p)
    print(row(f"product: {UNSURE_TOP:.0%} / {UNSURE_GAP * 100:.0f} pts", chosen, right))
    if args.figure:
        figure(top, gap, right, args.figure, f"{args.model} on validation ({len(right)} faces)")
        print(f"\nfigure: {args.figure}")
    return 0


def figure(top: np.ndarray, gap: np.ndarray, right: np.ndarray, path: str, title: str) -> None:
    """Accuracy and share of faces per band of the top probability and of the gap between the top two."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, value, name, line in (
        (axes[0], top, "top probability", UNSURE_TOP),
        (axes[1], gap, "top two apart by (points / 100)", UNSURE_GAP),
    ):
        edges = np.linspace(0, 1, 21)
        band = np.clip(np.digitize(value, edges) - 1, 0, len(edges) - 2)
        acc = [right[band == b].mean() if (band == b).any() else np.nan for b in range(len(edges) - 1)]
        share = np.bincount(band, minlength=len(edges) - 1) / len(band)
        ax.bar(edges[:-1], acc, width=0.05, align="edge", color="#0072B2", label="accuracy")
        ax.plot(edges[:-1] + 0.025, share, "o-", color="#E69F00", label="share of faces")
        ax.axvline(line, color="black", ls="--", label="the product's rule")
        ax.set(xlabel=name, xlim=(0, 1), ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
