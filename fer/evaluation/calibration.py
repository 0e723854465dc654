"""Probabilities that mean what they say: temperature scaling and the expected calibration error.

    python -m fer bundle runs/production   # fits the temperature on the validation split, reports ECE

A network trained with cross-entropy tends to be over-confident: of the faces
it calls "happy, 90%", fewer than 90% are happy. One scalar T, fitted after
training by minimising the negative log-likelihood of the validation split
(Guo et al., 2017), divides the logits inside the served graph; the argmax,
and so the accuracy, does not change.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from fer.evaluation.metrics import ECE_BINS, expected_calibration_error, predict_logits, reliability


def fit_temperature(logits: torch.Tensor, labels, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T > 0 that minimises the mean NLL of softmax(logits / T): golden-section search on log T (the NLL
    is convex in 1/T, so unimodal in log T)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    labels = np.asarray(labels)  # (N,) class indices, or (N, C) target distributions (the crowd's votes)
    y = torch.as_tensor(labels, dtype=torch.float64 if labels.ndim == 2 else torch.long)
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on an empty split")

    def nll(log_t: float) -> float:
        return F.cross_entropy(z / math.exp(log_t), y).item()

    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(d)
    return round(math.exp((a + b) / 2), 4)


def logits_of(model, images) -> torch.Tensor:
    """(N, H, W) uint8 faces -> (N, C) logits as served (test-time augmentation included), at temperature 1."""

    t_before = model.cfg.temperature
    model.cfg.temperature = 1.0
    try:
        return predict_logits(model, images, channels_last=False)
    finally:
        model.cfg.temperature = t_before


def calibrate(model, x_val, y_val, x_test=None, y_test=None, fit_to=None) -> dict:
    """Fit the model's temperature on the validation faces, set it, and report the ECE (15 bins) before and
    after on the test faces (and on validation). `fit_to`: the validation faces' vote distributions, to fit the
    temperature to the crowd's split instead of to the labels (the ECE stays measured against `y_val`)."""
    val_logits = logits_of(model, x_val)
    t = fit_temperature(val_logits, y_val if fit_to is None else fit_to)
    model.cfg.temperature = t
    report = {
        "temperature": t,
        "fitted_on": "validation" if fit_to is None else "validation, to the crowd's vote distributions",
        "bins": ECE_BINS,
        "val_ece_before": expected_calibration_error(val_logits.softmax(1), y_val),
        "val_ece_after": expected_calibration_error((val_logits / t).softmax(1), y_val),
    }
    if x_test is not None and len(x_test):
        test_logits = logits_of(model, x_test)
        before, after = test_logits.softmax(1), (test_logits / t).softmax(1)
        report.update(
            test_ece_before=expected_calibration_error(before, y_test),
            test_ece_after=expected_calibration_error(after, y_test),
            test_reliability_before=reliability(before, y_test),
            test_reliability_after=reliability(after, y_test),
        )
    return report
