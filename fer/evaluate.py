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

from fer import LABELS
from fer.calibration import expected_calibration_error
from fer.preprocess import normalize


@dataclass
class Metrics:
    loss: float
    accuracy: float
    n: int
    confusion: np.ndarray  # (7, 7) counts, rows true, columns predicted
    ece: float = float("nan")  # expected calibration error, 15 equal-width confidence bins (fer.calibration)

    @property
    def per_class(self) -> dict[str, float]:
        totals = self.confusion.sum(axis=1)
        return {
            lab: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan") for i, lab in enumerate(LABELS)
        }

    def report(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per class."""
        cm = self.confusion.astype(float)
        out = {}
        for i, lab in enumerate(LABELS):
            tp, pred, true = cm[i, i], cm[:, i].sum(), cm[i].sum()
            p = tp / pred if pred else 0.0
            r = tp / true if true else 0.0
            out[lab] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": int(true)}
        return out

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "n": self.n,
            "ece": self.ece,
            "labels": list(LABELS),
            "per_class": self.per_class,
            "confusion_matrix": self.confusion.astype(int).tolist(),
        }


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    batch_size: int = 32,
) -> torch.Tensor:
    """(N, H, W) uint8 faces -> (N, 7) logits as served: test-time augmentation and temperature included."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start : start + batch_size]).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(x).float().cpu())
    model.train(was_training)
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


def metrics_from_proba(proba: torch.Tensor, labels: np.ndarray | torch.Tensor) -> Metrics:
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    loss = F.nll_loss(proba.clamp_min(1e-12).log(), y).item() if len(y) else float("nan")
    pred = proba.argmax(1)
    cm = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(cm, (y.numpy(), pred.numpy()), 1)
    return Metrics(
        loss=loss,
        accuracy=float((pred == y).float().mean()) if len(y) else float("nan"),
        n=len(y),
        confusion=cm,
        ece=expected_calibration_error(proba, y),
    )


def evaluate_arrays(model, images, labels, device="cpu", channels_last=True) -> Metrics:
    """Metrics of `model` on uint8 faces, as served (test-time augmentation and temperature included)."""
    return metrics_from_proba(predict_proba(model, images, device, channels_last), labels)


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
    for lab in LABELS:
        r = rep[lab]
        lines.append(f"{lab:<10}{r['recall']:>10.3f}{r['precision']:>11.3f}{r['f1']:>8.3f}{r['support']:>7d}")
    lines.append(f"{'overall':<10}{m.accuracy:>10.4f}{'':>11}{'':>8}{m.n:>7d}")
    lines.append(f"expected calibration error (15 bins): {m.ece:.4f}")
    return "\n".join(lines)
