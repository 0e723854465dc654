"""Figures people would rather look at than read: the training curves (the paper's
Fig. 2) and the confusion matrix (Fig. 3)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(history: list[dict]):
    epochs = [r["epoch"] for r in history]
    fig, (ax_acc, ax_loss, ax_lr) = plt.subplots(1, 3, figsize=(14, 4))
    for key, style in (("train", "-"), ("val", "--")):
        ax_acc.plot(epochs, [r[f"{key}_acc"] for r in history], style, label=key)
        ax_loss.plot(epochs, [r[f"{key}_loss"] for r in history], style, label=key)
    ax_acc.set(title="accuracy", xlabel="epoch")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_lr.plot(epochs, [r["lr"] for r in history])
    ax_lr.set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix(cm: np.ndarray, labels, title: str):
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True).clip(min=1)
    frac = cm / rows
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{frac[i, j]:.2f}\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if frac[i, j] > 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def reliability_diagram(calibration: dict, split: str = "PublicTest"):
    """Accuracy against confidence per bin, before and after temperature scaling (the report of
    fer.evaluation.calibration.calibrate); a calibrated model's bars follow the diagonal, the grey line in each bin
    shows the share of faces in it."""
    c = calibration
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    panels = (
        (axes[0], c["test_reliability_before"], "before (temperature 1)", c["test_ece_before"]),
        (axes[1], c["test_reliability_after"], f"after (temperature {c['temperature']:.2f})", c["test_ece_after"]),
    )
    for ax, rows, name, ece in panels:
        total = max(sum(r["n"] for r in rows), 1)
        for r in rows:
            if not r["n"]:
                continue
            width = r["hi"] - r["lo"]
            ax.bar(r["lo"], r["accuracy"], width=width, align="edge", color="tab:blue", edgecolor="white")
            gap = r["confidence"] - r["accuracy"]
            ax.bar(r["lo"], gap, bottom=r["accuracy"], width=width, align="edge", color="tab:red", alpha=0.35)
            ax.plot([r["lo"], r["hi"]], [r["n"] / total] * 2, color="dimgray", lw=3)
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", title=f"{name}: ECE {ece:.3f}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (blue), gap to confidence (red), share of faces (grey)")
    axes[0].legend(loc="upper left")
    fig.suptitle(f"{split}: reliability, temperature fitted on the validation split ({c['bins']} bins)")
    fig.tight_layout()
    return fig


def timeline(
    history: dict[int, list[tuple[float, list[float]]]],
    title: str,
    smooth: float = 0.0,
    max_tracks: int = 8,
    classes: tuple[str, ...] | list[str] = (),
):
    """Each face track's probabilities over time (of `classes`, default FER2013's 7), one panel per track (the
    `max_tracks` longest), in percent. The lines take the boxes' colours (fer.inference.faces._COLOURS, a palette
    colour-blind readers tell apart), so the page needs one legend for both."""
    from fer import LABELS
    from fer.inference.faces import _COLOURS

    classes = list(classes or LABELS)

    tracks = sorted(history, key=lambda k: -len(history[k]))[:max_tracks]
    tracks.sort()
    fig, axes = plt.subplots(len(tracks), 1, figsize=(11, 2.2 * len(tracks) + 0.6), sharex=True, squeeze=False)
    for ax, track in zip(axes[:, 0], tracks):
        t = np.array([row[0] for row in history[track]])
        p = 100 * np.array([row[1] for row in history[track]])
        for j, label in enumerate(classes):
            colour = np.array(_COLOURS.get(label, (0, 0, 0))) / 255
            ax.plot(t, p[:, j], ".-" if len(t) < 40 else "-", color=colour, label=label, lw=1.6, ms=3)
        ax.set(ylim=(0, 100), ylabel=f"face #{track} (%)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(ncol=len(classes), loc="lower left", bbox_to_anchor=(0, 1.02), fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("time (s)")
    note = f", smoothed over {smooth:g} s" if smooth else ""
    more = f" ({len(history) - len(tracks)} shorter tracks not shown)" if len(history) > len(tracks) else ""
    fig.suptitle(title + note + more, y=1.0 + 0.12 / len(tracks))
    fig.tight_layout()
    return fig
