"""Accuracy, per-class accuracy and confusion matrix of a model on a FER2013 split.

    python -m fer evaluate --data ../shared/data/fer2013 --split test --model bundled --json

`--json` prints one object: accuracy (0-1), n, labels, per_class (label ->
accuracy), confusion_matrix (counts; rows are true labels in `labels` order).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer import EMOTIONS, LABELS
from fer.data.preprocess import normalize

ECE_BINS = 15


def expected_calibration_error(proba: torch.Tensor, labels, bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence|, weighted by the bin's share."""
    rows = reliability(proba, labels, bins)
    total = sum(r["n"] for r in rows)
    if not total:
        return float("nan")
    return sum(r["n"] / total * abs(r["accuracy"] - r["confidence"]) for r in rows if r["n"])


def reliability(proba: torch.Tensor, labels, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: its range, how many predictions fall in it, their mean confidence and accuracy."""
    proba = torch.as_tensor(proba, dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    conf, pred = proba.max(dim=1)
    correct = (pred == y).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    rows = []
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        inside = (conf > lo) & (conf <= hi)
        n = int(inside.sum())
        rows.append(
            {
                "lo": lo,
                "hi": hi,
                "n": n,
                "confidence": conf[inside].mean().item() if n else None,
                "accuracy": correct[inside].mean().item() if n else None,
            }
        )
    return rows


@dataclass
class Metrics:
    loss: float
    accuracy: float
    n: int
    confusion: np.ndarray  # (C, C) counts, rows true, columns predicted
    ece: float = float("nan")  # expected calibration error, 15 equal-width confidence bins (fer.evaluation.calibration)
    classes: tuple[str, ...] = LABELS  # the emotions of the rows and columns
    kl: float = float("nan")  # mean KL divergence from the crowd's votes to the predicted distribution (FER+)

    @property
    def per_class(self) -> dict[str, float]:
        totals = self.confusion.sum(axis=1)
        return {
            lab: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan")
            for i, lab in enumerate(self.classes)
        }

    def report(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per class."""
        cm = self.confusion.astype(float)
        out = {}
        for i, lab in enumerate(self.classes):
            tp, pred, true = cm[i, i], cm[:, i].sum(), cm[i].sum()
            p = tp / pred if pred else 0.0
            r = tp / true if true else 0.0
            out[lab] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": int(true)}
        return out

    def to_dict(self) -> dict:
        out = {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "n": self.n,
            "ece": self.ece,
            "labels": list(self.classes),
            "per_class": self.per_class,
            "confusion_matrix": self.confusion.astype(int).tolist(),
        }
        if not np.isnan(self.kl):
            out["mean_kl"] = self.kl
        return out


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    batch_size: int = 32,
) -> torch.Tensor:
    """(N, H, W) uint8 faces -> (N, C) logits as served: test-time augmentation and temperature included. `model`
    may be a served one (fer.inference.weights.serve: a frozen graph or an ONNX Runtime session)."""
    was_training = getattr(model, "training", False)  # (a frozen TorchScript graph has no training mode)
    if was_training:
        model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start : start + batch_size]).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(x).float().cpu())
    if was_training:
        model.train()
    return torch.cat(out) if out else torch.zeros(0, len(LABELS))


def predict_proba(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    batch_size: int = 32,
) -> torch.Tensor:
    """(N, H, W) uint8 faces -> (N, 7) probabilities, with whatever test-time augmentation the model does."""
    return torch.softmax(predict_logits(model, images, device, channels_last, batch_size), dim=1)


def metrics_from_proba(
    proba: torch.Tensor, labels: np.ndarray | torch.Tensor, votes=None, n_labels: int | None = None
) -> Metrics:
    """Metrics of (N, C) probabilities against labels in fer.EMOTIONS order, of which there are `n_labels` (7:
    FER2013's, 8: FER+'s; default C). A model with more emotions than the labels know (an 8-emotion model on
    FER2013) is scored by its top one of those they know. `votes`, (N, 8) vote distributions, adds the mean KL
    divergence from the crowd to the prediction."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    n_labels = n_labels or proba.shape[1]
    if proba.shape[1] > n_labels:
        proba = proba[:, :n_labels] / proba[:, :n_labels].sum(1, keepdim=True)
    elif proba.shape[1] < n_labels:  # a 7-emotion model against the crowd's 8: it never says contempt
        proba = F.pad(proba, (0, n_labels - proba.shape[1]))
    classes = EMOTIONS[: proba.shape[1]]
    loss = F.nll_loss(proba.clamp_min(1e-12).log(), y).item() if len(y) else float("nan")
    pred = proba.argmax(1)
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(cm, (y.numpy(), pred.numpy()), 1)
    kl = float("nan")
    if votes is not None and len(y):
        p = torch.as_tensor(np.asarray(votes), dtype=torch.float64)
        q = proba.double().clamp_min(1e-12)
        kl = (p * (p.clamp_min(1e-12).log() - q.log())).sum(1).mean().item()
    return Metrics(
        loss=loss,
        accuracy=float((pred == y).float().mean()) if len(y) else float("nan"),
        n=len(y),
        confusion=cm,
        ece=expected_calibration_error(proba, y),
        classes=classes,
        kl=kl,
    )


def evaluate_arrays(model, images, labels, device="cpu", channels_last=True, votes=None, n_labels=None) -> Metrics:
    """Metrics of `model` on uint8 faces, as served (test-time augmentation and temperature included); see
    metrics_from_proba for `votes` and `n_labels`."""
    return metrics_from_proba(predict_proba(model, images, device, channels_last), labels, votes, n_labels)


@torch.no_grad()
def ms_per_face(model: nn.Module, runs: int = 300, warmup: int = 30, threads: int = 1) -> float:
    """Median milliseconds to classify one 48×48 face (batch of one, in inference: any test-time
    augmentation the model does included) on `threads` torch threads (one core: the other is
    left to face detection)."""
    was_training, threads_before = getattr(model, "training", False), torch.get_num_threads()  # (frozen: none)
    torch.set_num_threads(threads)
    if was_training:
        model.eval()
    x = torch.rand(1, 1, 48, 48)
    times = []
    try:
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:  # a failing model leaves the caller's thread count and mode as they were
        if was_training:
            model.train()
        torch.set_num_threads(threads_before)
    return float(np.median(times) * 1000)


def format_table(m: Metrics, title: str) -> str:
    rep = m.report()
    lines = [title, f"{'emotion':<10}{'accuracy':>10}{'precision':>11}{'f1':>8}{'n':>7}"]
    for lab in m.classes:
        r = rep[lab]
        lines.append(f"{lab:<10}{r['recall']:>10.3f}{r['precision']:>11.3f}{r['f1']:>8.3f}{r['support']:>7d}")
    lines.append(f"{'overall':<10}{m.accuracy:>10.4f}{'':>11}{'':>8}{m.n:>7d}")
    lines.append(f"expected calibration error (15 bins): {m.ece:.4f}")
    if not np.isnan(m.kl):
        lines.append(f"mean KL divergence from the crowd's votes: {m.kl:.4f}")
    return "\n".join(lines)
